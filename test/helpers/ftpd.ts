/**
 * A real FTPS server (Debian's vsftpd) in a child process, for the FTPS source tests: explicit
 * TLS (AUTH TLS) with a self-signed certificate made here, passive mode, one local user with a
 * password, everything else of the system's vsftpd setup unused (own config, own chroot dir).
 *
 * vsftpd rather than pure-ftpd (the two packages conflict): it offers LIST only, no MLSD, so the
 * tests go through the MDTM path every LIST-only server needs; it is the most common FTPS server
 * on Linux hosts; and it logs in real system users through PAM, so no password-hash tuning.
 *
 * Never skipped: without vsftpd or root `startFtpd` throws and the tests that need it fail.
 * vsftpd has to start as root (it authenticates system users); scripts/install-test-deps.sh
 * installs it. The user it logs in is made here (useradd) when missing.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, launchServer, runTool } from './servers.js';

export interface FtpServer {
  host: '127.0.0.1';
  port: number;
  username: string;
  password: string;
  /** an empty folder the tests fill; the user can read everything put under it (umask 022) */
  root: string;
  /** the server's self-signed certificate (PEM): trust it with caFile */
  certFile: string;
  /**
   * Stops the server and every session it forked (open connections break); removes its temp dir
   * unless keepData, so that `start()` brings back the same server with the same files.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** after `stop`: the server again, on the same port; else a no-op */
  start(): Promise<void>;
}

const VSFTPD = process.env.VSFTPD_BIN ?? '/usr/sbin/vsftpd';
const USER = 'cerberus-ftp';
// fixed: test files running at once share the system user, so they must agree on its password
const PASSWORD = 'ftp-Pa55:w0rd #1';
const READY_TIMEOUT_MS = 20_000;

/**
 * Creates the system user when missing, and (re)sets its password. Its home is '/': vsftpd
 * refuses a login whose home it cannot enter (before it goes to local_root), and the user must
 * not own anything the tests serve.
 */
export async function ensureSystemUser(name: string, password: string): Promise<void> {
  // useradd and chpasswd lock /etc/passwd and /etc/shadow and give up when another holds them:
  // the FTPS and SFTP test files start their servers at the same time
  for (let attempt = 1; ; attempt++) {
    try {
      if (spawnSync('id', ['-u', name]).status !== 0) {
        // a login shell listed in /etc/shells: PAM's pam_shells refuses the others
        const r = spawnSync('/usr/sbin/useradd', ['--no-create-home', '--home-dir', '/', '--shell', '/bin/sh', name], { encoding: 'utf8' });
        // 9: another test file made it meanwhile
        if (r.status !== 0 && r.status !== 9) throw new Error(`useradd ${name} failed: ${r.stderr.trim()}`);
      }
      await runTool('/usr/sbin/chpasswd', [], { input: `${name}:${password}\n` });
      return;
    } catch (err) {
      if (attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    }
  }
}

/** Every descendant of a process, deepest last: servers whose sessions leave the process group. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    // the command name may hold spaces and parentheses: the fields after the last ')' are fixed
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const list = children.get(ppid) ?? [];
    list.push(Number(name));
    children.set(ppid, list);
  }
  const out: number[] = [];
  const visit = (p: number) => {
    for (const c of children.get(p) ?? []) {
      out.push(c);
      visit(c);
    }
  };
  visit(pid);
  return out;
}

/** Stops a server and all its descendants at once, as a crash or a reboot would. */
export async function killTree(child: ChildProcess | undefined): Promise<void> {
  if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pids = [child.pid, ...descendants(child.pid)];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
  await exited;
}

/** Answers true once the server greets with 220. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('data', (d: Buffer) => done(d.toString().startsWith('220')));
    sock.once('error', () => done(false));
  });
}

function config(dir: string, root: string, port: number): string {
  return [
    'listen=YES',
    'listen_ipv6=NO',
    'listen_address=127.0.0.1',
    `listen_port=${port}`,
    'background=NO',
    'anonymous_enable=NO',
    'local_enable=YES',
    'write_enable=NO',
    // the user's home does not exist: every login starts here instead
    `local_root=${root}`,
    'chroot_local_user=NO',
    'pam_service_name=vsftpd',
    // the seccomp sandbox kills the session on the TLS calls; clone(CLONE_NEWPID|NEWNET) is refused in containers
    'seccomp_sandbox=NO',
    'isolate=NO',
    'isolate_network=NO',
    `secure_chroot_dir=${path.join(dir, 'empty')}`,
    'ssl_enable=YES',
    `rsa_cert_file=${path.join(dir, 'cert.pem')}`,
    `rsa_private_key_file=${path.join(dir, 'key.pem')}`,
    'force_local_logins_ssl=YES',
    'force_local_data_ssl=YES',
    'allow_anon_ssl=NO',
    // as a careful server is set up: the data connection must resume the control one's TLS session
    'require_ssl_reuse=YES',
    'pasv_enable=YES',
    'pasv_address=127.0.0.1',
    'connect_from_port_20=NO',
    // MDTM and LIST in UTC, as RFC 3659 says for MDTM
    'use_localtime=NO',
    'syslog_enable=NO',
    `vsftpd_log_file=${path.join(dir, 'vsftpd.log')}`,
    'xferlog_enable=YES',
    'log_ftp_protocol=YES',
    '',
  ].join('\n');
}

export async function startFtpd(): Promise<FtpServer> {
  if (!fs.existsSync(VSFTPD)) throw new Error(`vsftpd not found at ${VSFTPD}: run scripts/install-test-deps.sh (as root), or set VSFTPD_BIN`);
  if (process.getuid?.() !== 0) throw new Error('vsftpd has to start as root to log in system users: run the FTPS tests as root (CI does)');
  await ensureSystemUser(USER, PASSWORD);

  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'cerberus-ftpd-'));
  // the FTP user has to pass through to the served folder
  await fsp.chmod(dir, 0o755);
  const root = path.join(dir, 'root');
  const confFile = path.join(dir, 'vsftpd.conf');
  const logFile = path.join(dir, 'stderr.log');
  let port = 0;
  let child: ChildProcess | undefined;

  const launch = (p: number) =>
    launchServer('vsftpd', VSFTPD, [confFile], {
      cwd: dir,
      logFile,
      as: undefined,
      timeoutMs: READY_TIMEOUT_MS,
      ready: () => greets(p),
      stop: { signal: 'SIGTERM', graceMs: 5000 },
    });

  try {
    await fsp.mkdir(root, { mode: 0o755 });
    // vsftpd wants it root-owned and not writable by anyone else
    await fsp.mkdir(path.join(dir, 'empty'), { mode: 0o755 });
    await runTool('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ]);
    await fsp.chmod(path.join(dir, 'key.pem'), 0o600);
    for (let attempt = 0; ; attempt++) {
      const p = await freePort();
      await fsp.writeFile(confFile, config(dir, root, p), { mode: 0o600 });
      try {
        child = await launch(p);
        port = p;
        break;
      } catch (err) {
        if (attempt >= 2 || !/could not bind|Address already in use/i.test((err as Error).message)) throw err;
      }
    }
  } catch (err) {
    await killTree(child);
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }

  return {
    host: '127.0.0.1',
    port,
    username: USER,
    password: PASSWORD,
    root,
    certFile: path.join(dir, 'cert.pem'),
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
