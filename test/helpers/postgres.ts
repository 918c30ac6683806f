/**
 * A throwaway real PostgreSQL cluster (Debian's 15, else the newest installed) in a child
 * process, for the database-source tests. Each cluster has its own data dir (under /dev/shm
 * when it exists), socket dir and port; nothing of the system's clusters is used. It listens
 * on 127.0.0.1 with scram-sha-256 password login, so clients take the password path.
 *
 * Never skipped: without the server binaries `startPostgres` throws and the tests that need
 * it fail, so a run cannot go green without a real server. scripts/install-test-deps.sh
 * installs them. PG_BIN overrides the folder of initdb, postgres, psql and the rest.
 *
 * initdb and postgres refuse to run as root: as root, they run as the `postgres` user the
 * Debian package creates, and the cluster's folder belongs to it.
 */
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, launchServer, runTool, serverUser, stopGroup } from './servers.js';

export interface PostgresServer {
  /** `postgres://user:password@127.0.0.1:port/db`, user and password percent-encoded */
  url(db: string): string;
  port: number;
  user: string;
  password: string;
  /** the folder of the server's unix socket */
  socketDir: string;
  /** the folder of this version's initdb, postgres, psql, pg_restore… */
  binDir: string;
  /** the major version, e.g. 15 */
  version: number;
  /** libpq variables for a client of this server (password included), to spread into a child's env */
  clientEnv(db?: string): Record<string, string>;
  /** runs SQL with psql (unaligned, tuples only), stops at the first error; resolves with stdout */
  psql(sql: string, db?: string): Promise<string>;
  createDb(name: string): Promise<void>;
  /** stops the server and removes its folder */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const PG_ROOT = '/usr/lib/postgresql';

/** PG_BIN, else /usr/lib/postgresql/15/bin, else the newest version there; undefined when none has initdb. */
export function postgresBinDir(): string | undefined {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const has = (dir: string) => fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'postgres'));
  const preferred = path.join(PG_ROOT, '15', 'bin');
  if (has(preferred)) return preferred;
  const versions = (fs.existsSync(PG_ROOT) ? fs.readdirSync(PG_ROOT) : []).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const dir = path.join(PG_ROOT, v, 'bin');
    if (has(dir)) return dir;
  }
  return undefined;
}

export async function startPostgres(opts: { user?: string; password?: string } = {}): Promise<PostgresServer> {
  const binDir = postgresBinDir();
  if (binDir === undefined || !['initdb', 'postgres', 'pg_isready', 'psql'].every((b) => fs.existsSync(path.join(binDir, b)))) {
    throw new Error(`PostgreSQL server binaries (initdb, postgres, pg_isready, psql) not found in ${binDir ?? `${PG_ROOT}/*/bin`}: run scripts/install-test-deps.sh (as root), or set PG_BIN`);
  }
  const version = Number(/(\d+)(?:\.\d+)?\/bin\/?$/.exec(binDir)?.[1] ?? (await runTool(path.join(binDir, 'postgres'), ['--version'])).match(/(\d+)/)?.[1]);
  const bin = (name: string) => path.join(binDir, name);
  const user = opts.user ?? 'cerberus';
  // characters that must be percent-encoded in a URL and quoted in a shell
  const password = opts.password ?? 'p@ss:w/rd #1 ü%$';
  const as = serverUser('postgres', 'initdb and postgres as: install the postgresql package (scripts/install-test-deps.sh)');

  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'cerberus-pg-'));
  const dataDir = path.join(dir, 'data');
  const socketDir = path.join(dir, 'sock');
  const logFile = path.join(dir, 'server.log');
  let port = 0;
  let child: ChildProcess | undefined;

  const launch = (p: number): Promise<ChildProcess> =>
    launchServer(
      'postgres',
      bin('postgres'),
      ['-D', dataDir, '-k', socketDir, '-p', String(p), '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off', '-c', 'max_connections=30'],
      {
        cwd: dir,
        logFile,
        as,
        timeoutMs: READY_TIMEOUT_MS,
        stop: { signal: 'SIGINT', graceMs: 10_000 },
        // pg_isready exits 0 once it takes connections (1: starting up; 2: no answer yet)
        ready: async () =>
          spawnSync(bin('pg_isready'), ['-q', '-h', '127.0.0.1', '-p', String(p), '-t', '1'], { env: { ...process.env, PGCONNECT_TIMEOUT: '1' } }).status === 0,
      },
    );

  try {
    await fsp.mkdir(socketDir);
    const pwfile = path.join(dir, 'pwfile');
    await fsp.writeFile(pwfile, `${password}\n`, { mode: 0o600 });
    if (as) {
      await fsp.chown(dir, as.uid, as.gid);
      await fsp.chown(socketDir, as.uid, as.gid);
      await fsp.chown(pwfile, as.uid, as.gid);
    }
    await runTool(bin('initdb'), ['-D', dataDir, '-U', user, `--pwfile=${pwfile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--no-locale', '--no-sync', '--no-instructions'], {
      cwd: dir,
      as,
      env: { ...process.env, LC_ALL: 'C' },
    });
    await fsp.rm(pwfile);
    // a port another process grabbed between probing and binding: try another
    for (let attempt = 0; ; attempt++) {
      const p = await freePort();
      try {
        child = await launch(p);
        port = p;
        break;
      } catch (err) {
        if (attempt >= 2 || !/could not bind|Address already in use/i.test((err as Error).message)) throw err;
      }
    }
  } catch (err) {
    await stopGroup(child, 'SIGINT', 10_000);
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }

  const clientEnv = (db = 'postgres'): Record<string, string> => ({
    PGHOST: '127.0.0.1',
    PGPORT: String(port),
    PGUSER: user,
    PGPASSWORD: password,
    PGDATABASE: db,
    PGCONNECT_TIMEOUT: '10',
  });
  const psql = (sql: string, db = 'postgres') =>
    runTool(bin('psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-f', '-'], { env: { ...process.env, ...clientEnv(db) }, input: sql }).then((s) => s.replace(/\n$/, ''));

  return {
    url: (db: string) => `postgres://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
    port,
    user,
    password,
    socketDir,
    binDir,
    version,
    clientEnv,
    psql,
    async createDb(name: string) {
      await psql(`CREATE DATABASE "${name.replace(/"/g, '""')}"`);
    },
    async stop() {
      await stopGroup(child, 'SIGINT', 10_000);
      child = undefined;
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
