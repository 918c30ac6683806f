/**
 * A throwaway real MariaDB server (Debian 12's 10.11) in a child process, for the MySQL
 * database-source tests. Each server has its own folder (under /dev/shm when it exists) with
 * its data dir, socket and log, and its own port on 127.0.0.1; nothing of the system's
 * server or option files (/etc/mysql, ~/.my.cnf) is used.
 *
 * Two logins: `user`, with a password full of characters that need quoting in a URL, an
 * option file, SQL and a shell, over TCP (the path cerberus takes); and an admin through the
 * socket by unix_socket authentication, which has no password at all.
 *
 * Never skipped: without the binaries `startMariadb` throws, so a run cannot go green without
 * a real server. scripts/install-test-deps.sh installs them.
 *
 * mariadbd refuses to run as root: as root, the server and mariadb-install-db run as the
 * `mysql` user the Debian package creates, and the server's folder belongs to it.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { freePort, launchServer, runTool, serverUser, stopGroup } from './servers.js';

export interface MariadbServer {
  /** `mysql://user:password@127.0.0.1:port/db`, every part percent-encoded */
  url(db: string): string;
  port: number;
  user: string;
  password: string;
  /** the server's unix socket */
  socket: string;
  /** e.g. `10.11.19-MariaDB-0+deb12u1` */
  version: string;
  /** a `[client]` option file that logs `user` in over TCP, password included: a ~/.my.cnf */
  clientOptions: string;
  /** runs SQL as `user` with the mysql client (batch, no column names), stops at the first error; resolves with stdout */
  sql(statements: string, db?: string): Promise<string>;
  /** the same as the server's admin, through the socket */
  admin(statements: string, db?: string): Promise<string>;
  /** a database (utf8mb4) that `user` may do everything in */
  createDb(name: string): Promise<void>;
  /** stops the server and removes its folder */
  stop(): Promise<void>;
}

const READY_TIMEOUT_MS = 30_000;
const STOP_GRACE_MS = 10_000;

/** The first of `names` on PATH or in the sbin folders (not on a user's PATH on Debian). */
function findBin(names: string[]): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean), '/usr/sbin', '/usr/local/sbin', '/usr/bin'];
  for (const name of names) {
    for (const dir of dirs) {
      const p = path.join(dir, name);
      try {
        fs.accessSync(p, fs.constants.X_OK);
        return p;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

/** A value of an option file, quoted: mysys then reads `#`, quotes and spaces as they are. */
const optionValue = (s: string) => `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
/** A string literal for the server's default sql_mode, where backslash escapes. */
const sqlString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

export async function startMariadb(opts: { user?: string; password?: string } = {}): Promise<MariadbServer> {
  const mariadbd = findBin(['mariadbd', 'mysqld']);
  const installDb = findBin(['mariadb-install-db', 'mysql_install_db']);
  const client = findBin(['mariadb', 'mysql']);
  const adminTool = findBin(['mariadb-admin', 'mysqladmin']);
  if (!mariadbd || !installDb || !client || !adminTool) {
    throw new Error('MariaDB binaries (mariadbd, mariadb-install-db, mariadb, mariadb-admin) not found on PATH or in /usr/sbin: run scripts/install-test-deps.sh (as root)');
  }
  const user = opts.user ?? 'cerberus';
  // a URL's @ : / # %, SQL's ' and \, an option file's " # ; and spaces, and a non-ASCII letter
  const password = opts.password ?? `p@ss:w/rd'"#1; ü\\%`;
  const as = serverUser('mysql', 'mariadbd as: install the mariadb-server package (scripts/install-test-deps.sh)');
  // unix_socket authentication: the admin is whoever runs the tests, with no password anywhere
  const adminUser = os.userInfo().username;

  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dir = await fsp.mkdtemp(path.join(base, 'cerberus-mariadb-'));
  const dataDir = path.join(dir, 'data');
  const tmpDir = path.join(dir, 'tmp');
  const socket = path.join(dir, 'mysqld.sock');
  const logFile = path.join(dir, 'server.log');
  const clientFile = path.join(dir, 'client.cnf');
  let port = 0;
  let child: ChildProcess | undefined;
  let version = '';

  // small and careless: the data is thrown away, and /dev/shm is memory
  const innodb = [
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=8M',
    '--innodb-flush-log-at-trx-commit=0',
    '--innodb-doublewrite=0',
    // containers often forbid io_uring and libaio (seccomp)
    '--innodb-use-native-aio=0',
  ];

  const adminArgs = ['--no-defaults', `--socket=${socket}`, `--user=${adminUser}`];
  const admin = (statements: string, db?: string) =>
    runTool(client, [...adminArgs, '--default-character-set=utf8mb4', '--batch', '--skip-column-names', ...(db ? [db] : [])], { input: statements }).then((s) => s.replace(/\n$/, ''));

  const launch = (p: number): Promise<ChildProcess> =>
    launchServer(
      'mariadbd',
      mariadbd,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        `--socket=${socket}`,
        `--port=${p}`,
        '--bind-address=127.0.0.1',
        `--pid-file=${path.join(dir, 'mariadbd.pid')}`,
        `--log-error=${logFile}`,
        `--tmpdir=${tmpDir}`,
        // no DNS lookup per login; accounts are by address
        '--skip-name-resolve',
        '--innodb-buffer-pool-load-at-startup=0',
        '--innodb-buffer-pool-dump-at-shutdown=0',
        '--max-connections=30',
        ...innodb,
      ],
      {
        cwd: dir,
        logFile,
        as,
        timeoutMs: READY_TIMEOUT_MS,
        stop: { signal: 'SIGTERM', graceMs: STOP_GRACE_MS },
        ready: async () =>
          fs.existsSync(socket) &&
          runTool(adminTool, [...adminArgs, '--connect-timeout=1', 'ping']).then(
            () => true,
            () => false,
          ),
      },
    );

  try {
    await fsp.mkdir(tmpDir);
    if (as) {
      await fsp.chown(dir, as.uid, as.gid);
      await fsp.chown(tmpDir, as.uid, as.gid);
    }
    await runTool(
      installDb,
      [
        '--no-defaults',
        `--datadir=${dataDir}`,
        '--auth-root-authentication-method=socket',
        `--auth-root-socket-user=${adminUser}`,
        '--skip-test-db',
        ...innodb,
      ],
      { cwd: dir, as },
    );
    // a port another process grabbed between probing and binding: try another
    for (let attempt = 0; ; attempt++) {
      const p = await freePort();
      try {
        child = await launch(p);
        port = p;
        break;
      } catch (err) {
        if (attempt >= 2 || !/Address already in use/i.test((err as Error).message)) throw err;
        await fsp.rm(socket, { force: true });
      }
    }
    // the admin's connection is utf8mb4, so the hash is of the password's UTF-8 bytes, as clients send them
    await admin(`CREATE USER ${sqlString(user)}@'%' IDENTIFIED BY ${sqlString(password)};`);
    await fsp.writeFile(
      clientFile,
      `[client]\nhost=127.0.0.1\nport=${port}\nuser=${optionValue(user)}\npassword=${optionValue(password)}\ndefault-character-set=utf8mb4\n`,
      { mode: 0o600 },
    );
    version = await admin('SELECT VERSION()');
  } catch (err) {
    await stopGroup(child, 'SIGTERM', STOP_GRACE_MS);
    await fsp.rm(dir, { recursive: true, force: true });
    throw err;
  }
  const clientOptions = await fsp.readFile(clientFile, 'utf8');

  return {
    url: (db: string) => `mysql://${encodeURIComponent(user)}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(db)}`,
    port,
    user,
    password,
    socket,
    version,
    clientOptions,
    // --defaults-file: this file alone, the password never in argv
    sql: (statements: string, db?: string) =>
      runTool(client, [`--defaults-file=${clientFile}`, '--batch', '--skip-column-names', ...(db ? [db] : [])], { input: statements }).then((s) => s.replace(/\n$/, '')),
    admin,
    async createDb(name: string) {
      const id = `\`${name.replace(/`/g, '``')}\``;
      await admin(`CREATE DATABASE ${id} CHARACTER SET utf8mb4; GRANT ALL ON ${id}.* TO ${sqlString(user)}@'%';`);
    },
    async stop() {
      await stopGroup(child, 'SIGTERM', STOP_GRACE_MS);
      child = undefined;
      await fsp.rm(dir, { recursive: true, force: true });
    },
  };
}
