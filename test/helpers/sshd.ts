/**
 * A real OpenSSH server in a child process, for the SFTP source tests: `sshd -D -e -f CONF` on
 * 127.0.0.1 and a free port, its own host key and config in a temp dir (nothing of /etc/ssh is
 * read), internal-sftp, and one test user who logs in with a password or an ed25519 key.
 *
 * Never skipped: without sshd or root `startSshd` throws and the tests that need it fail. sshd
 * has to run as root to log in another user (and to read /etc/shadow for passwords);
 * scripts/install-test-deps.sh installs it. The user is made here (useradd) when missing.
 */
import { type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureSystemUser, killTree } from './ftpd.js';
import { freePort, launchServer, runTool } from './servers.js';

export interface SshServer {
  host: '127.0.0.1';
  port: number;
  username: string;
  password: string;
  /** the user's authorized key, OpenSSH format, no passphrase */
  privateKey: string;
  /** the same kind of key, authorized too, protected by `passphrase` */
  encryptedKey: string;
  passphrase: string;
  /** a key the server does not know */
  strangerKey: string;
  /** the host key's fingerprint as `ssh-keygen -lf` prints it: `SHA256:…` */
  hostKey: string;
  /** an empty folder the tests fill; the user can read everything put under it (umask 022) */
  root: string;
  /**
   * Stops sshd and every session it forked (open connections break: sessions call setsid, so
   * the process group is not enough); removes its temp dir unless keepData, so that `start()`
   * brings back the same server with the same files.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** after `stop`: the server again, on the same port with the same host key; else a no-op */
  start(): Promise<void>;
}

const SSHD = process.env.SSHD_BIN ?? '/usr/sbin/sshd';
const USER = 'cerberus-sftp';
// fixed: test files running at once share the system user, so they must agree on its password
const PASSWORD = 'sftp-Pa55:w0rd #1';
const PASSPHRASE = 'key passphrase 1';
const READY_TIMEOUT_MS = 20_000;

/** Answers true once the server sends its SSH version line. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('data', (d: Buffer) => done(d.toString().startsWith('SSH-')));
    sock.once('error', () => done(false));
  });
}

function config(dir: string, port: number): string {
  return [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${path.join(dir, 'host_key')}`,
    `PidFile ${path.join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${path.join(dir, 'authorized_keys')}`,
    // the temp dir is not laid out as a home: skip the ownership checks of the key file's path
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication yes',
    'KbdInteractiveAuthentication no',
    // passwords straight from /etc/shadow: no PAM session setup in a container
    'UsePAM no',
    'PermitRootLogin no',
    `AllowUsers ${USER}`,
    'Subsystem sftp internal-sftp',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

export async function startSshd(): Promise<SshServer> {
  if (!fs.existsSync(SSHD)) throw new Error(`sshd not found at ${SSHD}: run scripts/install-test-deps.sh (as root), or set SSHD_BIN`);
  if (process.getuid?.() !== 0) throw new Error('sshd has to run as root to log in the test user: run the SFTP tests as root (CI does)');
  await ensureSystemUser(USER, PASSWORD);
  // the privilege separation folder, which only the package's init script makes
  await fsp.mkdir('/run/sshd', { recursive: true, mode: 0o755 });

  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'cerberus-sshd-'));
  // the user reads authorized_keys and the served folder through it
  await fsp.chmod(dir, 0o755);
  const root = path.join(dir, 'root');
  const confFile = path.join(dir, 'sshd_config');
  const logFile = path.join(dir, 'sshd.log');
  const keygen = (file: string, passphrase = '') => runTool('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-C', path.basename(file), '-f', file]);
  let port = 0;
  let child: ChildProcess | undefined;
  let hostKey = '';

  const launch = (p: number) =>
    launchServer('sshd', SSHD, ['-D', '-e', '-f', confFile], {
      cwd: dir,
      logFile,
      as: undefined,
      timeoutMs: READY_TIMEOUT_MS,
      ready: () => greets(p),
      stop: { signal: 'SIGTERM', graceMs: 5000 },
    });

  try {
    await fsp.mkdir(root, { mode: 0o755 });
    await Promise.all([
      keygen(path.join(dir, 'host_key')),
      keygen(path.join(dir, 'user_key')),
      keygen(path.join(dir, 'user_key_enc'), PASSPHRASE),
      keygen(path.join(dir, 'stranger_key')),
    ]);
    const authorized = await Promise.all(['user_key.pub', 'user_key_enc.pub'].map((f) => fsp.readFile(path.join(dir, f), 'utf8')));
    await fsp.writeFile(path.join(dir, 'authorized_keys'), authorized.join(''), { mode: 0o644 });
    // `256 SHA256:… comment (ED25519)`
    hostKey = (await runTool('ssh-keygen', ['-lf', path.join(dir, 'host_key.pub')])).split(' ')[1] ?? '';
    for (let attempt = 0; ; attempt++) {
      const p = await freePort();
      await fsp.writeFile(confFile, config(dir, p), { mode: 0o600 });
      try {
        child = await launch(p);
        port = p;
        break;
      } catch (err) {
        if (attempt >= 2 || !/Address already in use|Cannot bind/i.test((err as Error).message)) throw err;
      }
    }
  } catch (err) {
    await killTree(child);
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }

  const read = (f: string) => fs.readFileSync(path.join(dir, f), 'utf8');
  return {
    host: '127.0.0.1',
    port,
    username: USER,
    password: PASSWORD,
    privateKey: read('user_key'),
    encryptedKey: read('user_key_enc'),
    passphrase: PASSPHRASE,
    strangerKey: read('stranger_key'),
    hostKey,
    root,
    async stop(opts = {}) {
      await killTree(child);
      child = undefined;
      if (!opts.keepData) await fsp.rm(dir, { recursive: true, force: true });
    },
    async start() {
      if (child) return;
      child = await launch(port);
    },
  };
}
