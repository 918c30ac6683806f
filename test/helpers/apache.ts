/**
 * A real Apache httpd 2.4 with mod_dav / mod_dav_fs in a child process, for tests of the
 * WebDAV backend. Each server has its own config, port and temp dir (under /dev/shm when it
 * exists); nothing of the system's Apache setup is used.
 *
 * Never skipped: without apache2 `startApache` throws and the tests that need it fail, so a
 * run cannot go green without talking to a real server. scripts/install-test-deps.sh installs it.
 *
 * The access log has one line per request: `"%r" status len=<Content-Length> te=<Transfer-Encoding>
 * depth=<Depth>`, request headers as the client sent them; read it with `accessLog()`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, stopGroup, tailOf } from './servers.js';

export interface ApacheServer {
  /** the WebDAV root, without trailing '/': `http://127.0.0.1:<port>/dav` */
  url: string;
  port: number;
  username: string;
  password: string;
  /** the folder served at `url` */
  dataDir: string;
  /** the access log's lines so far (see the top of this file) */
  accessLog(): Promise<string[]>;
  /**
   * Stops the server and removes its temp dir; with keepData the dir stays, so `start()` brings
   * back the same server with the same files.
   */
  stop(opts?: { keepData?: boolean }): Promise<void>;
  /** after `stop`: the server again, on the same port (and data, see `stop`); else a no-op */
  start(): Promise<void>;
}

const APACHE = process.env.APACHE2_BIN ?? '/usr/sbin/apache2';
const MODULES = process.env.APACHE2_MODULES ?? '/usr/lib/apache2/modules';
const NEEDED = ['mod_mpm_event', 'mod_authz_core', 'mod_authn_core', 'mod_authn_file', 'mod_auth_basic', 'mod_authz_user', 'mod_alias', 'mod_dav', 'mod_dav_fs', 'mod_mime'];
const READY_TIMEOUT_MS = 20_000;
const PREFIX = '/dav';

function htpasswdBin(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/bin', '/usr/sbin'])) {
    const p = path.join(dir, 'htpasswd');
    if (dir && fs.existsSync(p)) return p;
  }
  return undefined;
}

export function apacheAvailable(): boolean {
  return fs.existsSync(APACHE) && htpasswdBin() !== undefined && NEEDED.every((m) => fs.existsSync(path.join(MODULES, `${m}.so`)));
}



function config(dir: string, port: number, asRoot: boolean): string {
  const q = (p: string) => `"${p}"`;
  const mods = NEEDED.map((m) => `LoadModule ${m.slice(4)}_module ${q(path.join(MODULES, `${m}.so`))}`);
  return [
    ...mods,
    `ServerRoot ${q(dir)}`,
    'ServerName 127.0.0.1',
    `Listen 127.0.0.1:${port}`,
    ...(asRoot ? ['User www-data', 'Group www-data'] : []),
    `PidFile ${q(path.join(dir, 'run/httpd.pid'))}`,
    `DefaultRuntimeDir ${q(path.join(dir, 'run'))}`,
    `Mutex file:${path.join(dir, 'run')} default`,
    `ErrorLog ${q(path.join(dir, 'logs/error.log'))}`,
    'LogLevel warn',
    'LogFormat "\\"%r\\" %>s len=%{Content-Length}i te=%{Transfer-Encoding}i depth=%{Depth}i" dav',
    `CustomLog ${q(path.join(dir, 'logs/access.log'))} dav`,
    'StartServers 1',
    'ThreadsPerChild 25',
    'MaxRequestWorkers 50',
    'Timeout 60',
    // since 2.4.54 the default is 1 GiB, and a larger PUT gets 413
    'LimitRequestBody 0',
    // our own (empty) list: every file is served as application/octet-stream
    `TypesConfig ${q(path.join(dir, 'mime.types'))}`,
    'DefaultType none',
    `DocumentRoot ${q(path.join(dir, 'htdocs'))}`,
    `DavLockDB ${q(path.join(dir, 'lock/DavLock'))}`,
    `Alias ${PREFIX} ${q(path.join(dir, 'data'))}`,
    '<Directory />',
    '  AllowOverride None',
    '  Require all denied',
    '</Directory>',
    `<Directory ${q(path.join(dir, 'data'))}>`,
    '  Dav On',
    '  AuthType Basic',
    '  AuthName "cerberus test"',
    '  AuthBasicProvider file',
    `  AuthUserFile ${q(path.join(dir, 'htpasswd'))}`,
    '  Require valid-user',
    '</Directory>',
    '',
  ].join('\n');
}

function waitForPort(port: number, child: ChildProcess, deadline: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`apache2 exited with ${child.signalCode ?? child.exitCode}`));
      if (Date.now() > deadline) return reject(new Error(`apache2 not answering on port ${port} after ${READY_TIMEOUT_MS} ms`));
      const sock = net.connect(port, '127.0.0.1');
      sock.once('connect', () => {
        sock.destroy();
        resolve();
      });
      sock.once('error', () => {
        sock.destroy();
        setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}



async function prepare(dir: string, username: string, password: string, port: number): Promise<string> {
  const asRoot = process.getuid?.() === 0;
  for (const sub of ['data', 'run', 'logs', 'lock', 'htdocs']) await fsp.mkdir(path.join(dir, sub), { recursive: true });
  await fsp.writeFile(path.join(dir, 'mime.types'), '');
  const conf = path.join(dir, 'httpd.conf');
  await fsp.writeFile(conf, config(dir, port, asRoot));
  const htpasswd = path.join(dir, 'htpasswd');
  if (!fs.existsSync(htpasswd)) {
    const r = spawnSync(htpasswdBin()!, ['-B', '-c', '-i', htpasswd, username], { input: password, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`htpasswd failed: ${r.stderr || r.error?.message}`);
  }
  if (asRoot) {
    // the workers run as www-data and must write the data and the lock database
    const pw = spawnSync('id', ['-u', 'www-data'], { encoding: 'utf8' });
    const gr = spawnSync('id', ['-g', 'www-data'], { encoding: 'utf8' });
    const uid = Number(pw.stdout.trim());
    const gid = Number(gr.stdout.trim());
    if (pw.status !== 0 || !Number.isInteger(uid)) throw new Error('running as root, but there is no www-data user for the Apache workers');
    await fsp.chown(dir, uid, gid);
    for (const sub of ['data', 'run', 'lock']) await chownTree(path.join(dir, sub), uid, gid);
    await fsp.chmod(htpasswd, 0o644);
  }
  return conf;
}

async function chownTree(p: string, uid: number, gid: number): Promise<void> {
  await fsp.lchown(p, uid, gid);
  const st = await fsp.lstat(p);
  if (!st.isDirectory()) return;
  for (const n of await fsp.readdir(p)) await chownTree(path.join(p, n), uid, gid);
}

async function launch(conf: string, dir: string, port: number): Promise<ChildProcess> {
  const child = spawn(APACHE, ['-f', conf, '-DFOREGROUND'], { detached: true, stdio: ['ignore', 'ignore', 'pipe'] });
  child.unref();
  (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < 8192) stderr += d.toString();
  });
  child.on('error', () => undefined);
  try {
    await waitForPort(port, child, Date.now() + READY_TIMEOUT_MS);
    return child;
  } catch (err) {
    await stopGroup(child, 'SIGTERM', 5000);
    const log = await tailOf(path.join(dir, 'logs/error.log'));
    throw new Error(`apache2 did not start: ${(err as Error).message}\n${[stderr.trim(), log].filter(Boolean).join('\n')}`);
  }
}

export async function startApache(opts: { username?: string; password?: string } = {}): Promise<ApacheServer> {
  if (!apacheAvailable()) {
    throw new Error(`apache2 with mod_dav (${APACHE}, ${MODULES}) or htpasswd is not installed: run scripts/install-test-deps.sh (as root)`);
  }
  const username = opts.username ?? 'cerberus';
  const password = opts.password ?? 'sekrit pässword #1';
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'cerberus-apache-'));
  const dataDir = path.join(dir, 'data');
  let port = 0;
  let child: ChildProcess | undefined;
  const boot = async () => {
    // a port another process grabbed between probing and Listen: try another
    for (let attempt = 0; ; attempt++) {
      const p = port || (await freePort());
      const conf = await prepare(dir, username, password, p);
      try {
        child = await launch(conf, dir, p);
        port = p;
        return;
      } catch (err) {
        if (port || attempt >= 2 || !/could not bind|Address already in use/i.test((err as Error).message)) throw err;
      }
    }
  };
  try {
    await boot();
  } catch (err) {
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const url = `http://127.0.0.1:${port}${PREFIX}`;
  const accessLogFile = path.join(dir, 'logs/access.log');

  return {
    url,
    port,
    username,
    password,
    dataDir,
    async accessLog() {
      // Apache logs a request after answering it: a marker request, logged last, flushes those before
      const marker = `/__log-marker-${Math.random().toString(36).slice(2)}`;
      if (child) {
        await new Promise<void>((resolve) => {
          http.get({ host: '127.0.0.1', port, path: marker, agent: false }, (res) => res.resume().on('end', resolve)).on('error', () => resolve());
        });
        const deadline = Date.now() + 5000;
        while (Date.now() < deadline && !(await fsp.readFile(accessLogFile, 'utf8').catch(() => '')).includes(marker)) {
          await new Promise((r) => setTimeout(r, 10));
        }
      }
      const text = await fsp.readFile(accessLogFile, 'utf8').catch(() => '');
      return text.split('\n').filter((l) => l !== '' && !l.includes('/__log-marker-'));
    },
    async start() {
      if (child) return;
      await boot();
    },
    async stop(o = {}) {
      await stopGroup(child, 'SIGTERM', 5000);
      child = undefined;
      if (o.keepData) return;
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
