import { spawn } from 'node:child_process';

export interface GpgResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/** Runs gpg in batch mode against its own home; never the user's keyring. */
export function gpg(home: string, args: string[], input?: Buffer): Promise<GpgResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('gpg', ['--homedir', home, '--batch', '--no-tty', '--pinentry-mode', 'loopback', ...args], {
      env: { PATH: process.env.PATH, GNUPGHOME: home, LC_ALL: 'C' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? Buffer.alloc(0));
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr }));
  });
}

/** Stops the agents gpg started for these homes. */
export async function killAgents(homes: string[]): Promise<void> {
  for (const home of homes) {
    await new Promise((resolve) => spawn('gpgconf', ['--homedir', home, '--kill', 'all'], { env: { PATH: process.env.PATH } }).on('close', resolve));
  }
}
