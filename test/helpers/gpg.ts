import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair, readPrivateKey, readPublicKeys } from '../../src/formats/openpgp/keys.js';

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

/**
 * A fresh key pair in `dir` (pub.asc, sec.asc), read by cerberus and imported into a gpg home
 * of its own (`dir/gnupg`), so a test can check what gpg makes of cerberus's output.
 */
export async function keyPairWithGpg(dir: string, name: string, passphrase: string) {
  const pair = await generateKeyPair({ name, rsa: false, passphrase });
  await fsp.writeFile(path.join(dir, 'pub.asc'), pair.publicArmored);
  await fsp.writeFile(path.join(dir, 'sec.asc'), pair.privateArmored);
  const pub = (await readPublicKeys([path.join(dir, 'pub.asc')]))[0]!;
  const priv = await readPrivateKey(path.join(dir, 'sec.asc'), passphrase);
  const home = path.join(dir, 'gnupg');
  await fsp.mkdir(home, { mode: 0o700 });
  const imported = await gpg(home, ['--passphrase', passphrase, '--import', path.join(dir, 'sec.asc')]);
  if (imported.code !== 0) throw new Error(`gpg --import failed: ${imported.stderr}`);
  return { pair, pub, priv, home };
}
