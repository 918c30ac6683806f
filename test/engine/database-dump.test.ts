import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dumpCommand, dumpFileName, startDump, type DatabaseSource, type DumpProcess } from '../../src/engine/database-dump.js';
import { CerberusError } from '../../src/errors.js';
import { errorOf } from '../helpers/errors.js';
import { startMariadb, type MariadbServer } from '../helpers/mariadb.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

let tmp: string;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-dbdump-'));
});

afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const PW = 'S3cr3t:p@ss/w#rd ü+%';
const pg = (url: string, name = 'nextcloud'): DatabaseSource => ({ type: 'postgres', url, name });
const my = (url: string, name = 'shop'): DatabaseSource => ({ type: 'mysql', url, name });
const enc = encodeURIComponent;

/** Everything a source's messages and argv must never show. */
function expectNoSecret(text: string, secret = PW): void {
  expect(text).not.toContain(secret);
  expect(text).not.toContain(enc(secret));
}

function configError(fn: () => unknown): CerberusError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(CerberusError);
  const e = err as CerberusError;
  expect(e.code).toBe('CONFIG');
  expect(e.message).not.toMatch(/\n/);
  return e;
}

/** Reads a dump process's stdout into memory; rejects when the stream ends early. */
async function collect(d: DumpProcess): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await pipeline(
    d.stdout,
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    }),
  );
  return Buffer.concat(chunks);
}

describe('dumpCommand (postgres)', () => {
  it('passes the whole connection through the environment, nothing of it in argv', () => {
    const cmd = dumpCommand(pg(`postgres://${enc('nc user')}:${enc(PW)}@db.example.org:6543/${enc('next cloud')}?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=a+b`));
    expect(cmd.command).toBe('pg_dump');
    expect(cmd.args).toEqual(['--format=custom', '--no-password']);
    expect(cmd.env).toEqual({
      PGHOST: 'db.example.org',
      PGPORT: '6543',
      PGUSER: 'nc user',
      PGPASSWORD: PW,
      PGDATABASE: 'next cloud',
      PGSSLMODE: 'verify-full',
      PGSSLROOTCERT: '/etc/ca.pem',
      // libpq does not read '+' as a space
      PGAPPNAME: 'a+b',
      PGCONNECT_TIMEOUT: '30',
    });
    expectNoSecret(cmd.args.join(' '));
    expect(cmd.secretFile).toBeUndefined();
  });

  it('reads postgresql://, a socket folder as ?host= or percent-encoded, IPv6, and the query password', () => {
    expect(dumpCommand(pg('postgresql:///nextcloud?host=/var/run/postgresql&port=5433')).env).toEqual({
      PGHOST: '/var/run/postgresql',
      PGPORT: '5433',
      PGDATABASE: 'nextcloud',
      PGCONNECT_TIMEOUT: '30',
    });
    expect(dumpCommand(pg('postgres://backup@%2Frun%2Fpostgresql/nextcloud')).env.PGHOST).toBe('/run/postgresql');
    // libpq's own form for a socket with credentials: no host between '@' and '/'
    expect(dumpCommand(pg(`postgres://backup:${enc(PW)}@/nextcloud?host=/run/postgresql`)).env).toEqual({
      PGHOST: '/run/postgresql',
      PGUSER: 'backup',
      PGPASSWORD: PW,
      PGDATABASE: 'nextcloud',
      PGCONNECT_TIMEOUT: '30',
    });
    expect(dumpCommand(pg('postgres://backup@/nextcloud')).env.PGHOST).toBeUndefined();
    expect(dumpCommand(pg('postgres://[::1]:5432/nextcloud')).env.PGHOST).toBe('::1');
    const q = dumpCommand(pg(`postgres://u@h/nextcloud?password=${enc(PW)}&connect_timeout=5`));
    expect(q.env.PGPASSWORD).toBe(PW);
    expect(q.env.PGCONNECT_TIMEOUT).toBe('5');
    expectNoSecret(q.args.join(' '));
  });

  it('takes the tool from CERBERUS_PG_DUMP', () => {
    expect(dumpCommand(pg('postgres://h/db'), { env: { CERBERUS_PG_DUMP: '/usr/lib/postgresql/17/bin/pg_dump' } }).command).toBe('/usr/lib/postgresql/17/bin/pg_dump');
  });

  it.each([
    ['h:5432/nextcloud', /must start with postgres:\/\/ or postgresql:\/\//],
    [`mysql://u:${enc(PW)}@h/nextcloud`, /must start with postgres:\/\//],
    ['not a url', /not a valid URL/],
    [`postgres://u:${enc(PW)}@h:5432`, /names no database/],
    [`postgres://u:${enc(PW)}@h:5432/`, /names no database/],
    [`postgres://u:${enc(PW)}@h:99999/db`, /not a valid URL/],
    [`postgres://u:${enc(PW)}@h/db?sslmdoe=require`, /unknown parameter "sslmdoe"/],
    [`postgres://u:${enc(PW)}@h/db?sslmode`, /without a value/],
    [`postgres://u:${enc(PW)}@h/db?constructor=x`, /unknown parameter "constructor"/],
    [`postgres://u:pa%zz${enc(PW)}@h/db`, /broken percent-encoding in its password/],
    [`postgres://u:S3cr3t:p@ss/w#rd@h/db`, /.+/],
    [`postgres:nextcloud`, /no "\/\/"/],
  ])('%s is a CONFIG error naming the source, not the password', (url, problem) => {
    const e = configError(() => startDump(pg(url)));
    expect(e.message).toMatch(/^database source "nextcloud": url /);
    expect(e.message).toMatch(problem);
    expect(e.hint).toMatch(/postgres:\/\/user:password@host:5432\//);
    expectNoSecret(`${e.message} ${e.hint} ${String(e.cause)}`);
    expect(e.message).not.toContain('S3cr3t');
  });
});

describe('dumpCommand (mysql)', () => {
  it('puts the password in an option file given as the first argument, never in argv', () => {
    const cmd = dumpCommand(my(`mysql://${enc('shop')}:${enc(PW)}@db.example.org:3307/shop_prod?ssl-mode=REQUIRED`), { secretDir: '/private/x' });
    expect(cmd.command).toBe('mysqldump');
    expect(cmd.args).toEqual([
      '--defaults-extra-file=/private/x/client.cnf',
      '--single-transaction',
      '--routines',
      '--triggers',
      '--events',
      '--hex-blob',
      '--no-tablespaces',
      '--host=db.example.org',
      '--port=3307',
      '--user=shop',
      '--ssl-mode=REQUIRED',
      '--default-character-set=utf8mb4',
      'shop_prod',
    ]);
    expect(cmd.env).toEqual({});
    expect(cmd.secretFile).toEqual({ path: '/private/x/client.cnf', content: `[client]\npassword="${PW}"\n` });
    expectNoSecret(cmd.args.join(' '));
    expect(cmd.args.join(' ')).not.toContain('S3cr3t');
  });

  it('escapes what the option file reader would take for a quote, a comment or an escape', () => {
    const pw = 'a"b\\c#d\'e\nf';
    const cmd = dumpCommand(my(`mariadb://root:${enc(pw)}@localhost/shop`), { secretDir: '/p' });
    expect(cmd.secretFile?.content).toBe('[client]\npassword="a\\"b\\\\c#d\'e\\nf"\n');
  });

  it('without a password, needs no file; a socket comes as ?socket=', () => {
    const cmd = dumpCommand(my('mysql://backup@localhost/shop?socket=/run/mysqld/mysqld.sock&default-character-set=latin1'));
    expect(cmd.secretFile).toBeUndefined();
    expect(cmd.args).toEqual([
      '--single-transaction',
      '--routines',
      '--triggers',
      '--events',
      '--hex-blob',
      '--no-tablespaces',
      '--host=localhost',
      '--user=backup',
      '--socket=/run/mysqld/mysqld.sock',
      '--default-character-set=latin1',
      'shop',
    ]);
    expect(dumpFileName(my('mysql://h/shop'))).toBe('shop.sql');
    expect(dumpFileName(pg('postgres://h/nc', 'nc'))).toBe('nc.dump');
  });

  it.each([
    [`postgres://u:${enc(PW)}@h/shop`, /must start with mysql:\/\/ or mariadb:\/\//],
    [`mysql://u:${enc(PW)}@h`, /names no database/],
    [`mysql://u:${enc(PW)}@h/shop/x`, /"\/" in its database name/],
    [`mysql://u:${enc(PW)}@h/-shop`, /starts with "-"/],
    [`mysql://u:${enc(PW)}@h/shop?init-command=DROP`, /unknown parameter "init-command"/],
  ])('%s is a CONFIG error', (url, problem) => {
    const e = configError(() => startDump(my(url), { privateDir: tmp }));
    expect(e.message).toMatch(/^database source "shop": url /);
    expect(e.message).toMatch(problem);
    expectNoSecret(`${e.message} ${e.hint}`);
  });
});

describe('startDump with a stand-in tool', () => {
  let tools: string;
  const tool = async (name: string, script: string) => {
    const file = path.join(tools, name);
    await fsp.writeFile(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
    return file;
  };
  const withTool = (file: string): NodeJS.ProcessEnv => ({ ...process.env, CERBERUS_PG_DUMP: file });
  const url = `postgres://nc:${enc(PW)}@127.0.0.1:1/nextcloud`;

  beforeAll(async () => {
    tools = await fsp.mkdtemp(path.join(tmp, 'tools-'));
  });

  it('a failure after the output ended rejects done, and the output never ends cleanly', async () => {
    const t = await tool(
      'late-failure',
      `printf 'PGDMP partial'
exec 1>&-
sleep 0.2
echo "pg_dump: error: query failed: server closed the connection unexpectedly" >&2
echo "pg_dump: detail: password was $PGPASSWORD" >&2
exit 3`,
    );
    const d = startDump(pg(url), { env: withTool(t) });
    const read = await errorOf(collect(d));
    const e = await errorOf(d.done);
    expect(read).toBe(e);
    expect(e.code).toBe('SERVICE');
    expect(e.message).toMatch(/^database source "nextcloud": pg_dump failed \(exit status 3\): pg_dump: error: query failed: server closed the connection unexpectedly \| pg_dump: detail: password was \*\*\*$/);
    expect(e.hint).toMatch(/source\.databases\[\]\.url of "nextcloud".*pg_dump can reach the server/);
    expectNoSecret(`${e.message} ${e.hint}`);
  });

  it('success: every byte, then the stream ends, then done resolves', async () => {
    const t = await tool('ok', `[ "$*" = "--format=custom --no-password" ] || exit 9
[ "$PGPASSWORD" = '${PW.replace(/'/g, "'\\''")}' ] || exit 8
[ "$PGDATABASE" = nextcloud ] || exit 7
head -c 300000 /dev/zero; echo "pg_dump: warning: harmless" >&2`);
    const d = startDump(pg(url), { env: withTool(t) });
    const [bytes] = await Promise.all([collect(d), d.done]);
    expect(bytes.length).toBe(300_000);
  });

  it('keeps only the last lines of a long stderr', async () => {
    const t = await tool('noisy', 'i=0; while [ $i -lt 500 ]; do echo "noise line $i" >&2; i=$((i+1)); done; echo "the last word" >&2; exit 1');
    const d = startDump(pg(url), { env: withTool(t) });
    d.stdout.resume();
    const e = await errorOf(d.done);
    expect(e.message).toMatch(/noise line 499 \| the last word$/);
    expect(e.message).not.toMatch(/noise line 0 /);
    expect(e.message.length).toBeLessThan(400);
  });

  it('a tool killed by a signal rejects', async () => {
    const t = await tool('killed', 'printf PGDMP; kill -KILL $$');
    const d = startDump(pg(url), { env: withTool(t) });
    const read = collect(d);
    const e = await errorOf(d.done);
    expect(e.message).toMatch(/pg_dump was killed by SIGKILL$/);
    await expect(read).rejects.toBe(e);
  });

  it('kill() and an aborted signal stop the tool; done rejects', async () => {
    const t = await tool('slow', 'printf PGDMP; exec sleep 30');
    const d = startDump(pg(url), { env: withTool(t) });
    const read = collect(d);
    d.kill();
    const e = await errorOf(d.done);
    expect(e.message).toMatch(/pg_dump was stopped before it finished \(SIGTERM\)$/);
    await expect(read).rejects.toBe(e);

    const ac = new AbortController();
    const d2 = startDump(pg(url), { env: withTool(t), signal: ac.signal });
    ac.abort();
    expect((await errorOf(d2.done)).message).toMatch(/was stopped/);
  });

  it('a reader that gives up stops the tool', async () => {
    const t = await tool('endless', 'exec cat /dev/zero');
    const d = startDump(pg(url), { env: withTool(t) });
    const sink = new PassThrough();
    d.stdout.pipe(sink);
    await new Promise((r) => sink.once('data', r));
    d.stdout.destroy();
    expect((await errorOf(d.done)).message).toMatch(/pg_dump was stopped before it finished/);
    expect(() => process.kill(d.pid!, 0)).toThrow();
  });

  it('a missing tool says which package to install', async () => {
    const empty = await fsp.mkdtemp(path.join(tmp, 'empty-'));
    const d = startDump(pg(url), { env: { PATH: empty } });
    const read = collect(d);
    const e = await errorOf(d.done);
    expect(e.code).toBe('CONFIG');
    expect(e.message).toBe('database source "nextcloud": pg_dump is not installed; install the postgresql-client package');
    await expect(read).rejects.toBeDefined();

    const o = startDump(pg(url), { env: { PATH: empty, CERBERUS_PG_DUMP: path.join(empty, 'pg_dump17') } });
    expect((await errorOf(o.done)).message).toMatch(/pg_dump17 \(from CERBERUS_PG_DUMP\) does not exist$/);

    const m = startDump(my(`mysql://u:${enc(PW)}@h/shop`), { env: { PATH: empty }, privateDir: tmp });
    expect((await errorOf(m.done)).message).toMatch(/mysqldump is not installed; install the default-mysql-client \(or mariadb-client\) package/);
  });

  it('mysql: the option file is 0600 in a 0700 folder while the tool runs, and gone after', async () => {
    const privateDir = await fsp.mkdtemp(path.join(tmp, 'private-'));
    const t = await tool(
      'fake-mysqldump',
      `for a; do echo "arg $a"; done
f=\${1#--defaults-extra-file=}
echo "mode $(stat -c %a "$f") $(stat -c %a "$(dirname "$f")")"
cat "$f"`,
    );
    const d = startDump(my(`mysql://shop:${enc(PW)}@127.0.0.1:3306/shop`), { env: { ...process.env, CERBERUS_MYSQLDUMP: t }, privateDir });
    const [out] = await Promise.all([collect(d), d.done]);
    const text = out.toString();
    const file = /^arg --defaults-extra-file=(.+)$/m.exec(text)?.[1];
    expect(path.dirname(path.dirname(file!))).toBe(privateDir);
    expect(text).toContain('mode 600 700');
    expect(text).toContain(`[client]\npassword="${PW}"\n`);
    const args = text.split('\n').filter((l) => l.startsWith('arg '));
    expect(args.at(-1)).toBe('arg shop');
    expectNoSecret(args.join('\n'));
    expect(await fsp.readdir(privateDir)).toEqual([]);
  });
});

describe('pg_dump against PostgreSQL', () => {
  let server: PostgresServer;

  beforeAll(async () => {
    server = await startPostgres();
    await server.createDb('nextcloud');
    await server.psql(
      `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), added timestamptz NOT NULL);
       INSERT INTO items (name, price, added)
         SELECT 'item ' || i || ' Grüße 日本語 🐘', i * 1.25, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
         FROM generate_series(1, 5000) AS i;
       CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
       INSERT INTO blobs SELECT i, decode(repeat(md5(i::text), 32), 'hex') FROM generate_series(1, 300) AS i;
       INSERT INTO blobs SELECT 0, string_agg(set_byte('\\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) AS b;
       CREATE TABLE notes (id int PRIMARY KEY, body text);
       INSERT INTO notes VALUES (1, E'line\\nbreak\\ttab ''quoted'' "double" \\\\ backslash'), (2, NULL), (3, ''), (4, 'Ωμέγα ✓');
       CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 6000;`,
      'nextcloud',
    );
  });

  afterAll(async () => {
    await server?.stop();
  });

  const checksums = (db: string) =>
    server.psql(
      ['items', 'blobs', 'notes']
        .map((t) => `SELECT '${t}', count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM ${t} t;`)
        .concat(["SELECT 'view', count(*) FROM expensive;"])
        .join('\n'),
      db,
    );

  it('dumps a database that pg_restore brings back row for row', async () => {
    const file = path.join(tmp, 'nextcloud.dump');
    const d = startDump(pg(server.url('nextcloud')));
    await Promise.all([pipeline(d.stdout, fs.createWriteStream(file)), d.done]);
    const head = Buffer.alloc(5);
    const fh = await fsp.open(file);
    await fh.read(head, 0, 5, 0);
    await fh.close();
    expect(head.toString()).toBe('PGDMP');

    await server.createDb('restored');
    await new Promise<void>((resolve, reject) => {
      const child = spawn(path.join(server.binDir, 'pg_restore'), ['--exit-on-error', '--no-owner', '--dbname=restored', file], {
        env: { ...process.env, ...server.clientEnv('restored') },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_restore exited ${code}: ${stderr}`))));
    });
    const before = await checksums('nextcloud');
    expect(before.split('\n')).toHaveLength(4);
    expect(before).toMatch(/^items\|5000\|[0-9a-f]{32}\nblobs\|301\|[0-9a-f]{32}\nnotes\|4\|[0-9a-f]{32}\nview\|\d+$/);
    expect(await checksums('restored')).toBe(before);
  });

  it('dumps through the unix socket given as ?host=', async () => {
    const url = `postgresql://${enc(server.user)}:${enc(server.password)}@/nextcloud?host=${enc(server.socketDir)}&port=${server.port}`;
    const d = startDump(pg(url));
    const [bytes] = await Promise.all([collect(d), d.done]);
    expect(bytes.subarray(0, 5).toString()).toBe('PGDMP');
  });

  it('a database that does not exist: done rejects with the server\'s complaint and the source name, not the password', async () => {
    const d = startDump(pg(server.url('nope'), 'nextcloud-db'));
    const read = collect(d);
    const e = await errorOf(d.done);
    await expect(read).rejects.toBe(e);
    expect(e.code).toBe('SERVICE');
    expect(e.message).toMatch(/^database source "nextcloud-db": pg_dump failed \(exit status 1\): .*database "nope" does not exist/);
    expect(e.hint).toMatch(/check source\.databases\[\]\.url of "nextcloud-db"/);
    expectNoSecret(`${e.message} ${e.hint}`, server.password);
  });

  it('a wrong password rejects', async () => {
    const url = server.url('nextcloud').replace(`:${enc(server.password)}@`, `:${enc('wrong password')}@`);
    const d = startDump(pg(url));
    d.stdout.resume();
    const e = await errorOf(d.done);
    expect(e.message).toMatch(/password authentication failed for user "cerberus"/);
    expectNoSecret(`${e.message} ${e.hint}`, server.password);
  });

  it('the running pg_dump has no password in its argv; kill() stops it mid-dump', async () => {
    // an open transaction holds a lock pg_dump must wait for: it stays running long enough to look at
    const locker = spawn(path.join(server.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1'], {
      env: { ...process.env, ...server.clientEnv('nextcloud') },
      stdio: ['pipe', 'ignore', 'inherit'],
    });
    try {
      locker.stdin.write("BEGIN; SET application_name = 'locker'; LOCK TABLE notes IN ACCESS EXCLUSIVE MODE;\n");
      await waitFor(async () => (await server.psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'locker' AND l.mode = 'AccessExclusiveLock' AND l.granted")) === '1');
      const d = startDump(pg(server.url('nextcloud')));
      const read = collect(d);
      await waitFor(async () => (await server.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_dump' AND wait_event_type = 'Lock'")) === '1');
      const argv = (await fsp.readFile(`/proc/${d.pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      expect(path.basename(argv[0]!)).toBe('pg_dump');
      expect(argv.slice(1)).toEqual(['--format=custom', '--no-password']);
      expectNoSecret(argv.join(' '), server.password);
      // only this user (and root) can read the environment that does hold it
      expect((await fsp.stat(`/proc/${d.pid}/environ`)).mode & 0o077).toBe(0);

      d.kill();
      const e = await errorOf(d.done);
      expect(e.message).toMatch(/^database source "nextcloud": pg_dump was stopped before it finished/);
      await expect(read).rejects.toBe(e);
    } finally {
      locker.stdin.end('ROLLBACK;\n');
      await new Promise((r) => locker.once('close', r));
    }
    // the server is fine afterwards, and so is the next dump
    const d = startDump(pg(server.url('nextcloud')));
    await Promise.all([collect(d), d.done]);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('mysqldump against MariaDB', () => {
  let server: MariadbServer;
  // a backup account apart from the owner, with only the grants the privilege hint names
  const BACKUP_PW = 'b@ck:up/pw #3 ü"';
  const backupUrl = (password = BACKUP_PW) => `mysql://backup:${enc(password)}@127.0.0.1:${server.port}/shop`;

  beforeAll(async () => {
    server = await startMariadb();
    await server.createDb('shop');
    // created by the owner, as an application does: the backup account defined none of it
    await server.sql(
      `CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(100), data BLOB);
       INSERT INTO items SELECT seq, CONCAT('item ', seq, ' 🐬'), UNHEX(MD5(seq)) FROM seq_1_to_500;
       CREATE VIEW expensive AS SELECT id FROM items WHERE id > 400;
       CREATE TRIGGER items_name BEFORE INSERT ON items FOR EACH ROW SET NEW.name = TRIM(NEW.name);
       CREATE PROCEDURE cheap() SELECT COUNT(*) FROM items WHERE id < 10;
       CREATE EVENT nightly ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM items WHERE id < 0;`,
      'shop',
    );
    await server.admin(
      `CREATE USER backup@'%' IDENTIFIED BY '${BACKUP_PW}';
       GRANT SELECT, SHOW VIEW, TRIGGER, EVENT ON shop.* TO backup@'%';
       GRANT SELECT ON mysql.proc TO backup@'%';`,
    );
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('a backup user with the grants the hint names dumps every kind of object', async () => {
    const d = startDump(my(backupUrl()), { privateDir: tmp });
    const [bytes] = await Promise.all([collect(d), d.done]);
    const text = bytes.toString('utf8');
    for (const what of [/CREATE TABLE `items`/, /VIEW `expensive`/, /TRIGGER `?items_name`?/, /PROCEDURE `cheap`/, /EVENT `nightly`/, /INSERT INTO `items` VALUES\s*\(1,'item 1 🐬',0x[0-9A-F]{32}\)/]) {
      expect(text).toMatch(what);
    }
    expect(text).toMatch(/\n-- Dump completed on [^\n]+\n$/);
  });

  it('without EVENT: done rejects naming the source and the grants, not the password', async () => {
    await server.admin("REVOKE EVENT ON shop.* FROM backup@'%'");
    try {
      const d = startDump(my(backupUrl()), { privateDir: tmp });
      d.stdout.resume();
      const e = await errorOf(d.done);
      expect(e.code).toBe('SERVICE');
      expect(e.message).toMatch(/^database source "shop": mysqldump failed \(exit status 2\): .*'show events': Access denied for user 'backup'@'%' to database 'shop' \(1044\)$/);
      expect(e.hint).toMatch(/SELECT, SHOW VIEW, TRIGGER and EVENT/);
      expectNoSecret(`${e.message} ${e.hint}`, BACKUP_PW);
    } finally {
      await server.admin("GRANT EVENT ON shop.* TO backup@'%'");
    }
  });

  it('a wrong password: done rejects with the server\'s answer, not either password', async () => {
    const wrong = 'wr0ng"pw #4';
    const d = startDump(my(backupUrl(wrong)), { privateDir: tmp });
    d.stdout.resume();
    const e = await errorOf(d.done);
    expect(e.message).toMatch(/^database source "shop": mysqldump failed \(exit status 2\): .*1045.*Access denied for user 'backup'@'127\.0\.0\.1' \(using password: YES\)/);
    expect(e.hint).toMatch(/check source\.databases\[\]\.url of "shop"/);
    expectNoSecret(`${e.message} ${e.hint}`, BACKUP_PW);
    expectNoSecret(`${e.message} ${e.hint}`, wrong);
  });

  it('the running mysqldump has no password in its argv, only its 0600 option file; kill() stops it mid-dump', async () => {
    const privateDir = await fsp.mkdtemp(path.join(tmp, 'private-'));
    // a table locked for writing holds mysqldump at its first read, long enough to look at it
    const locker = server.sql('LOCK TABLES items WRITE; SELECT SLEEP(60);', 'shop').catch(() => undefined);
    const lockerId = async () => server.admin("SELECT ID FROM information_schema.PROCESSLIST WHERE INFO = 'SELECT SLEEP(60)'");
    await waitFor(async () => (await lockerId()) !== '');
    try {
      const d = startDump(my(backupUrl()), { privateDir });
      const read = collect(d);
      // the password file is removed before done rejects: the stream's error comes first
      read.catch(() => undefined);
      await waitFor(async () => (await server.admin("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'backup' AND STATE LIKE 'Waiting for table metadata lock%'")) === '1');
      const argv = (await fsp.readFile(`/proc/${d.pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
      expect(path.basename(argv[0]!)).toBe('mysqldump');
      const file = /^--defaults-extra-file=(.+)$/.exec(argv[1]!)?.[1];
      expect(path.dirname(path.dirname(file!))).toBe(privateDir);
      expect((await fsp.stat(file!)).mode & 0o777).toBe(0o600);
      expect((await fsp.stat(path.dirname(file!))).mode & 0o777).toBe(0o700);
      expectNoSecret(argv.join(' '), BACKUP_PW);

      d.kill();
      const e = await errorOf(d.done);
      expect(e.message).toMatch(/^database source "shop": mysqldump was stopped before it finished/);
      await expect(read).rejects.toBe(e);
      expect(await fsp.readdir(privateDir)).toEqual([]);
    } finally {
      await server.admin(`KILL ${await lockerId()}`);
      await locker;
    }
    const d = startDump(my(backupUrl()), { privateDir });
    await Promise.all([collect(d), d.done]);
  });
});
