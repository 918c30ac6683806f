/**
 * Database sources: a dump tool (`pg_dump`, `mysqldump`) as a child process whose output
 * the backup stores as one file, `databases/<name>.dump` (`.sql` for MySQL).
 *
 * Secrets never reach argv (anyone on the machine can read it in `ps`): PostgreSQL gets the
 * password as PGPASSWORD, MySQL in an option file of its own (see `mysqlCommand`). Messages
 * name the source by its `name`, never by its URL, which may carry the password.
 *
 * A failed dump never looks complete: `stdout` ends only once the tool exited 0, otherwise
 * it is destroyed, and `done` rejects.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { CerberusError, ioError } from '../errors.js';

export type DatabaseSource = { type: 'postgres' | 'mysql'; url: string; name: string };

export interface DumpCommand {
  command: string;
  args: string[];
  /** added to the child's environment; may hold the password (PGPASSWORD) */
  env: Record<string, string>;
  /** written by `startDump` with mode 0600 before the tool starts, removed after: MySQL's password */
  secretFile?: { path: string; content: string };
}

export interface DumpCommandOptions {
  /** where `secretFile` goes (MySQL with a password only): a folder nobody else can read */
  secretDir?: string;
  /** CERBERUS_PG_DUMP / CERBERUS_MYSQLDUMP pick the tool; else it is found on PATH */
  env?: NodeJS.ProcessEnv;
}

export interface StartDumpOptions {
  /** the tool's environment (and PATH to find it); process.env when absent */
  env?: NodeJS.ProcessEnv;
  /**
   * A folder only this user can enter (mode 0700), for MySQL's password file; os.tmpdir()
   * when absent, which is still safe: the file goes into a fresh mkdtemp folder (always 0700).
   */
  privateDir?: string;
  /** aborting it is `kill()` */
  signal?: AbortSignal;
}

export interface DumpProcess {
  /**
   * The dump's bytes, for the caller to pipe. Ends only after the tool exited 0; when it
   * failed, the stream is destroyed instead (with `done`'s error when someone listens for
   * errors, as `pipeline` does). Destroying it stops the tool.
   */
  stdout: Readable;
  /**
   * Resolves once the tool exited 0 and `stdout` was read to its end (read it meanwhile:
   * `Promise.all([pipeline(stdout, …), done])`); rejects with a CerberusError otherwise.
   * Await it, always: a tool that fails after its last byte shows only here.
   */
  done: Promise<void>;
  pid: number | undefined;
  /** Stops the tool (SIGTERM, SIGKILL after a grace period); `done` then rejects. */
  kill(): void;
}

/** The folder at the top of every backup that holds the dumps. */
export const DUMP_DIR = 'databases';

/** The dump's file name inside the backup's `databases/` folder. */
export function dumpFileName(db: DatabaseSource): string {
  return db.type === 'postgres' ? `${db.name}.dump` : `${db.name}.sql`;
}

const KILL_GRACE_MS = 5_000;
/** After the tool exits, how long a child it left behind may hold its stderr open. */
const DRAIN_MS = 1_000;
/** How much of the tool's stderr is kept: its last words are the ones that say why. */
const STDERR_KEEP = 4096;
const STDERR_LINES = 5;

const TOOLS = {
  postgres: { tool: 'pg_dump', override: 'CERBERUS_PG_DUMP', pkg: 'postgresql-client' },
  mysql: { tool: 'mysqldump', override: 'CERBERUS_MYSQLDUMP', pkg: 'default-mysql-client (or mariadb-client)' },
} as const;

const label = (db: DatabaseSource) => `database source "${db.name}"`;

function urlError(db: DatabaseSource, problem: string, example: string): CerberusError {
  return new CerberusError('CONFIG', `${label(db)}: url ${problem}`, { hint: `write it as ${example}` });
}

const PG_EXAMPLE = 'postgres://user:password@host:5432/database?sslmode=require (percent-encode special characters)';
const MYSQL_EXAMPLE = 'mysql://user:password@host:3306/database (percent-encode special characters)';
const SCHEMES = { postgres: ['postgres', 'postgresql'], mysql: ['mysql', 'mariadb'] } as const;
const EXAMPLES = { postgres: PG_EXAMPLE, mysql: MYSQL_EXAMPLE } as const;

interface ParsedUrl {
  url: URL;
  user: string;
  password: string;
  /** without IPv6 brackets, percent-decoded */
  host: string;
  port: string;
  database: string;
  /** query parameters, percent-decoded, in order ('+' stays '+', as libpq reads it) */
  params: Array<[string, string]>;
}

const NO_HOST = 'no-host.invalid';

function decode(db: DatabaseSource, s: string, what: string, example: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw urlError(db, `has a broken percent-encoding in its ${what}`, example);
  }
}

function parseUrl(db: DatabaseSource, schemes: readonly string[], example: string): ParsedUrl {
  // libpq takes `user:pw@/db?host=/run/postgresql` (no host, a socket); WHATWG URL wants one there
  const emptyHost = /^[a-z]+:\/\/[^/?#]*@(?=[/?#]|$)/i.exec(db.url);
  let url: URL;
  try {
    url = new URL(emptyHost ? `${emptyHost[0]}${NO_HOST}${db.url.slice(emptyHost[0].length)}` : db.url);
  } catch {
    // never the URL itself, nor the TypeError (it carries the input): both may hold the password
    throw urlError(db, 'is not a valid URL', example);
  }
  const scheme = url.protocol.replace(/:$/, '');
  if (!schemes.includes(scheme)) throw urlError(db, `must start with ${schemes.map((s) => `${s}://`).join(' or ')} for type ${db.type}, not ${scheme}:`, example);
  if (!db.url.slice(url.protocol.length).startsWith('//')) throw urlError(db, `has no "//" after ${scheme}:`, example);
  if (url.hash !== '') throw urlError(db, 'has a "#" fragment (percent-encode a "#" in the password as %23)', example);
  const params: Array<[string, string]> = [];
  for (const part of url.search.replace(/^\?/, '').split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw urlError(db, `has a query parameter without a value ("${decode(db, eq < 0 ? part : '', 'query', example)}")`, example);
    params.push([decode(db, part.slice(0, eq), 'query', example), decode(db, part.slice(eq + 1), 'query', example)]);
  }
  return {
    url,
    user: decode(db, url.username, 'user name', example),
    password: decode(db, url.password, 'password', example),
    host: emptyHost ? '' : decode(db, url.hostname.replace(/^\[(.*)\]$/, '$1'), 'host', example),
    port: url.port,
    database: decode(db, url.pathname.replace(/^\//, ''), 'database name', example),
    params,
  };
}

/** libpq's URL query parameters, by the environment variable that sets each. */
const PG_PARAMS = new Map<string, string>(Object.entries({
  host: 'PGHOST',
  hostaddr: 'PGHOSTADDR',
  port: 'PGPORT',
  dbname: 'PGDATABASE',
  user: 'PGUSER',
  password: 'PGPASSWORD',
  passfile: 'PGPASSFILE',
  service: 'PGSERVICE',
  options: 'PGOPTIONS',
  application_name: 'PGAPPNAME',
  client_encoding: 'PGCLIENTENCODING',
  connect_timeout: 'PGCONNECT_TIMEOUT',
  channel_binding: 'PGCHANNELBINDING',
  sslmode: 'PGSSLMODE',
  sslcompression: 'PGSSLCOMPRESSION',
  sslcert: 'PGSSLCERT',
  sslkey: 'PGSSLKEY',
  sslrootcert: 'PGSSLROOTCERT',
  sslcrl: 'PGSSLCRL',
  sslcrldir: 'PGSSLCRLDIR',
  sslsni: 'PGSSLSNI',
  requirepeer: 'PGREQUIREPEER',
  ssl_min_protocol_version: 'PGSSLMINPROTOCOLVERSION',
  ssl_max_protocol_version: 'PGSSLMAXPROTOCOLVERSION',
  gssencmode: 'PGGSSENCMODE',
  krbsrvname: 'PGKRBSRVNAME',
  gsslib: 'PGGSSLIB',
  gssdelegation: 'PGGSSDELEGATION',
  require_auth: 'PGREQUIREAUTH',
  target_session_attrs: 'PGTARGETSESSIONATTRS',
  load_balance_hosts: 'PGLOADBALANCEHOSTS',
}));

/**
 * pg_dump connects from environment variables only: argv shows nothing of the server, the
 * user or the password. Variables the URL does not set are inherited, as libpq would.
 */
function postgresCommand(db: DatabaseSource, env: NodeJS.ProcessEnv): DumpCommand {
  const u = parseUrl(db, SCHEMES.postgres, PG_EXAMPLE);
  const out: Record<string, string> = {};
  if (u.host !== '') out.PGHOST = u.host;
  if (u.port !== '') out.PGPORT = u.port;
  if (u.user !== '') out.PGUSER = u.user;
  if (u.password !== '') out.PGPASSWORD = u.password;
  if (u.database !== '') out.PGDATABASE = u.database;
  for (const [key, value] of u.params) {
    const name = PG_PARAMS.get(key);
    if (name === undefined) throw urlError(db, `has an unknown parameter "${key}" (libpq knows e.g. sslmode, sslrootcert, host, connect_timeout, application_name)`, PG_EXAMPLE);
    out[name] = value;
  }
  if (out.PGDATABASE === undefined) throw urlError(db, 'names no database', PG_EXAMPLE.replace('/database', '/<database>'));
  // libpq waits for an unanswering server forever by default; a backup must not hang on one
  out.PGCONNECT_TIMEOUT ??= '30';
  return {
    command: env[TOOLS.postgres.override] || TOOLS.postgres.tool,
    // custom format: compressed, and pg_restore can pick tables from it; encrypted later by the backup
    args: ['--format=custom', '--no-password'],
    env: out,
  };
}

/** mysqldump options a URL may set as query parameters (`?socket=/run/mysqld/mysqld.sock`). */
const MYSQL_PARAMS = new Set(['socket', 'protocol', 'ssl-mode', 'ssl-ca', 'ssl-capath', 'ssl-cert', 'ssl-key', 'ssl-cipher', 'tls-version', 'default-character-set']);

/** A value of a MySQL option file, as mysys reads it back: quoted, with its escapes. */
function optionFileValue(s: string): string {
  return `"${s.replace(/[\\"\n\r\t]/g, (c) => ({ '\\': '\\\\', '"': '\\"', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c] ?? c)}"`;
}

/**
 * The password goes into an option file (mode 0600, in a fresh 0700 folder) given by
 * --defaults-extra-file, not MYSQL_PWD: MySQL deprecated that variable and says it may go.
 * Everything else is plain options; the database is the last argument, so the dump holds
 * its tables without a CREATE DATABASE and restores into any database.
 */
function mysqlCommand(db: DatabaseSource, opts: DumpCommandOptions): DumpCommand {
  const u = parseUrl(db, SCHEMES.mysql, MYSQL_EXAMPLE);
  if (u.database === '') throw urlError(db, 'names no database', MYSQL_EXAMPLE.replace('/database', '/<database>'));
  if (u.database.includes('/')) throw urlError(db, `has a "/" in its database name "${u.database}"`, MYSQL_EXAMPLE);
  if (u.database.startsWith('-')) throw urlError(db, `has a database name that starts with "-" ("${u.database}")`, MYSQL_EXAMPLE);
  let secretFile: DumpCommand['secretFile'];
  const args: string[] = [];
  if (u.password !== '') {
    if (opts.secretDir === undefined) throw new CerberusError('INTERNAL', `${label(db)}: no folder for the MySQL password file`);
    secretFile = { path: path.join(opts.secretDir, 'client.cnf'), content: `[client]\npassword=${optionFileValue(u.password)}\n` };
    // mysqldump reads --defaults-extra-file only as its first argument
    args.push(`--defaults-extra-file=${secretFile.path}`);
  }
  args.push(
    '--single-transaction', // a consistent InnoDB snapshot without locking the tables
    '--routines',
    '--triggers',
    '--events',
    '--hex-blob', // binary columns survive any client character set
    '--no-tablespaces', // needs the PROCESS privilege since MySQL 8.0.21, and a one-database dump has no use for it
  );
  if (u.host !== '') args.push(`--host=${u.host}`);
  if (u.port !== '') args.push(`--port=${u.port}`);
  if (u.user !== '') args.push(`--user=${u.user}`);
  const given = new Set<string>();
  for (const [key, value] of u.params) {
    if (!MYSQL_PARAMS.has(key)) throw urlError(db, `has an unknown parameter "${key}" (known: ${[...MYSQL_PARAMS].join(', ')})`, MYSQL_EXAMPLE);
    given.add(key);
    args.push(`--${key}=${value}`);
  }
  // older clients default to utf8 (3 bytes), which mangles emoji
  if (!given.has('default-character-set')) args.push('--default-character-set=utf8mb4');
  args.push(u.database);
  const command = opts.env?.[TOOLS.mysql.override] || TOOLS.mysql.tool;
  return secretFile ? { command, args, env: {}, secretFile } : { command, args, env: {} };
}

/**
 * How the dump tool is run for `db`: pure, so tests can see that no secret is in `args`.
 * Throws a CONFIG error for a URL it cannot use.
 */
export function dumpCommand(db: DatabaseSource, opts: DumpCommandOptions = {}): DumpCommand {
  return db.type === 'postgres' ? postgresCommand(db, opts.env ?? {}) : mysqlCommand(db, opts);
}

/** Keeps the last `STDERR_KEEP` bytes of a stream. */
function tailBuffer(): { push(b: Buffer): void; lines(): string[] } {
  let buf = Buffer.alloc(0);
  let cut = false;
  return {
    push(b) {
      buf = Buffer.concat([buf, b]);
      if (buf.length > STDERR_KEEP) {
        buf = buf.subarray(buf.length - STDERR_KEEP);
        cut = true;
      }
    },
    lines() {
      const lines = buf.toString('utf8').split(/\r?\n/);
      // the first line was cut in the middle (maybe in a character)
      if (cut) lines.shift();
      return lines.map((l) => l.trim()).filter((l) => l !== '').slice(-STDERR_LINES);
    },
  };
}

/**
 * Starts the dump of `db`. Throws (CONFIG) at once for a URL it cannot use; everything
 * else, a missing tool included, rejects `done`.
 */
export function startDump(db: DatabaseSource, opts: StartDumpOptions = {}): DumpProcess {
  const env = opts.env ?? process.env;
  const { tool, pkg } = TOOLS[db.type];
  // parse first: a bad URL makes no folder
  const { password } = parseUrl(db, SCHEMES[db.type], EXAMPLES[db.type]);
  let cmd: DumpCommand;
  let secretDir: string | undefined;
  if (db.type === 'mysql' && password !== '') {
    const parent = opts.privateDir ?? os.tmpdir();
    try {
      secretDir = fs.mkdtempSync(path.join(parent, 'cerberus-db-'));
      cmd = dumpCommand(db, { env, secretDir });
      if (cmd.secretFile) fs.writeFileSync(cmd.secretFile.path, cmd.secretFile.content, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if (secretDir !== undefined) fs.rmSync(secretDir, { recursive: true, force: true });
      if (err instanceof CerberusError) throw err;
      throw ioError(err, `${label(db)}: cannot write the password file for ${tool} in ${parent}`);
    }
  } else {
    cmd = dumpCommand(db, { env });
  }
  // a secret this short would blank out every match in the message; the tools never echo it anyway
  const secrets = [password, cmd.env.PGPASSWORD].filter((s): s is string => s !== undefined && s.length >= 4);

  const child = spawn(cmd.command, cmd.args, { env: { ...env, ...cmd.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = new PassThrough();
  child.stdout.pipe(out, { end: false });
  const stderr = tailBuffer();
  child.stderr.on('data', (b: Buffer) => stderr.push(b));

  let settled = false;
  let stopped = false;
  let stdoutEnded = false;
  let stderrClosed = false;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  let killTimer: NodeJS.Timeout | undefined;
  let resolveDone!: () => void;
  let rejectDone!: (err: CerberusError) => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // a caller busy piping stdout awaits done later; until then a rejection must not count as unhandled
  done.catch(() => undefined);

  const redact = (s: string) => secrets.reduce((acc, secret) => acc.split(secret).join('***'), s);
  const hint = () => {
    const text = stderr.lines().join('\n');
    if (/server version mismatch/i.test(text)) return `install a ${tool} at least as new as the server, or point ${TOOLS[db.type].override} at one`;
    // logged in but not allowed (1044 is also MySQL's answer for a database that does not exist):
    // --events and --routines need more than what reading the tables does
    if (db.type === 'mysql' && /\b(1044|1142|1227)\b|insufficient privileges/i.test(text)) {
      return `check the database name in source.databases[].url of "${db.name}", and that its user has SELECT, SHOW VIEW, TRIGGER and EVENT on it (and, unless it defined the stored routines, SELECT on mysql.proc; SHOW_ROUTINE on MySQL 8)`;
    }
    return `check source.databases[].url of "${db.name}" and that ${tool} can reach the server and read the whole database`;
  };

  const finish = (err?: CerberusError) => {
    if (settled) return;
    settled = true;
    clearTimeout(killTimer);
    opts.signal?.removeEventListener('abort', kill);
    if (err) {
      child.stdout.unpipe(out);
      child.stdout.destroy();
      // an 'error' nobody listens for would crash the process; a bare destroy still tells readers it ended early
      out.destroy(out.listenerCount('error') > 0 ? err : undefined);
    } else {
      out.end();
    }
    const cleanup = secretDir === undefined ? Promise.resolve() : fsp.rm(secretDir, { recursive: true, force: true }).catch(() => undefined);
    void cleanup.then(() => (err ? rejectDone(err) : resolveDone()));
  };

  const settle = () => {
    if (settled || exit === undefined || !stderrClosed) return;
    const { code, signal } = exit;
    if (code === 0 && !stopped) {
      // every byte must be through before the stream may end
      if (stdoutEnded) finish();
      return;
    }
    const said = stderr.lines().map(redact).join(' | ');
    const how = stopped
      ? `was stopped before it finished${signal ? ` (${signal})` : ''}`
      : code !== null
        ? `failed (exit status ${code})`
        : `was killed by ${signal}`;
    finish(new CerberusError('SERVICE', `${label(db)}: ${tool} ${how}${said ? `: ${said}` : ''}`, { hint: hint() }));
  };

  function kill(): void {
    if (settled || stopped) return;
    stopped = true;
    if (exit !== undefined) return settle();
    child.kill('SIGTERM');
    // a tool blocked writing to us gets EPIPE instead of waiting for a reader
    child.stdout.destroy();
    killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    killTimer.unref();
  }

  child.stdout.on('end', () => {
    stdoutEnded = true;
    settle();
  });
  child.stdout.on('error', () => undefined);
  child.stderr.on('close', () => {
    stderrClosed = true;
    settle();
  });
  child.on('exit', (code, signal) => {
    exit = { code, signal };
    setTimeout(() => {
      stderrClosed = true;
      settle();
    }, DRAIN_MS).unref();
    settle();
  });
  child.on('error', (err: NodeJS.ErrnoException) => {
    // after a successful spawn only a failed kill lands here; the exit still comes
    if (child.pid !== undefined) return;
    const override = TOOLS[db.type].override;
    finish(
      err.code !== 'ENOENT'
        ? new CerberusError('SERVICE', `${label(db)}: cannot start ${cmd.command}: ${err.code ?? err.message}`, { hint: hint() })
        : cmd.command !== tool
          ? new CerberusError('CONFIG', `${label(db)}: ${cmd.command} (from ${override}) does not exist`, { hint: `point ${override} at ${tool}, or unset it to use the one on PATH` })
          : new CerberusError('CONFIG', `${label(db)}: ${tool} is not installed; install the ${pkg} package`, { hint: `or put ${tool} on the PATH, or set ${override} to it` }),
    );
  });
  // the reader gave up (its upload failed, say): the tool must not block on a full pipe forever
  out.on('close', () => {
    if (!settled) kill();
  });
  opts.signal?.addEventListener('abort', kill, { once: true });
  if (opts.signal?.aborted) kill();

  return { stdout: out, done, pid: child.pid, kill };
}
