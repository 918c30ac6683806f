/**
 * Database sources end to end, through the built CLI, against a real PostgreSQL cluster:
 * the dump is stored as `databases/app.dump` of every restore point, comes back with
 * `cerberus restore` and with gpg + tar alone, and pg_restore rebuilds the database row for
 * row. A dump that fails fails the run, leaves nothing behind, and onError hears of it; the
 * password shows nowhere. The same for MySQL against a real MariaDB: `databases/shop.sql`,
 * loaded with the mysql client as RESTORE.md says. Never skipped: without PostgreSQL or
 * MariaDB the tests fail.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTrees, PASSPHRASE, snapshotTree, tempDir, workspace, type RunResult, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { reports } from '../helpers/reports.js';
import { startMariadb, type MariadbServer } from '../helpers/mariadb.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';

const T1 = '2026-01-05T03:00:00Z';
const ID1 = '2026-01-05T030000Z';
const T2 = '2026-01-06T03:00:00Z';
const ID2 = '2026-01-06T030000Z';
const VAULT_PASSWORD = 'vault pässword 42';

const FILL = `
CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, price numeric(10,2), added timestamptz NOT NULL);
INSERT INTO items (name, price, added)
  SELECT 'item ' || i || ' Grüße 日本語 🐘', i * 1.25, timestamptz '2026-01-01 00:00:00+00' + i * interval '1 minute'
  FROM generate_series(1, 8000) AS i;
CREATE TABLE blobs (id int PRIMARY KEY, data bytea NOT NULL);
INSERT INTO blobs SELECT i, decode(repeat(md5(i::text), 64), 'hex') FROM generate_series(1, 2000) AS i;
INSERT INTO blobs SELECT 0, string_agg(set_byte('\\x00'::bytea, 0, b), ''::bytea ORDER BY b) FROM generate_series(0, 255) AS b;
CREATE TABLE notes (id int PRIMARY KEY, body text);
INSERT INTO notes VALUES (1, E'line\\nbreak\\ttab ''quoted'' "double" \\\\ backslash'), (2, NULL), (3, ''), (4, 'Ωμέγα ✓ ﷺ 𝄞');
CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 6000;
`;
const TABLES = ['items', 'blobs', 'notes'];

let pg: PostgresServer;
let tools: NodeJS.ProcessEnv;

beforeAll(async () => {
  pg = await startPostgres();
  await pg.createDb('app');
  await pg.psql(FILL, 'app');
  // the cluster's own pg_dump: the one on PATH may be another major version
  tools = { CERBERUS_PG_DUMP: path.join(pg.binDir, 'pg_dump') };
}, 120_000);

afterAll(async () => {
  await pg?.stop();
});

/** Row count and md5 of every table, in a fixed order, and the view's count. */
const checksums = (db: string) =>
  pg.psql(
    TABLES.map((t) => `SELECT '${t}', count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY id), '')) FROM ${t} t;`)
      .concat(["SELECT 'view', count(*) FROM expensive;"])
      .join('\n'),
    db,
  );

/** RESTORE.md's steps, run as written: createdb -T template0, then pg_restore. */
function pgRestore(db: string, file: string): Promise<void> {
  const script = `createdb -T template0 "$1" && pg_restore --dbname="$1" --no-owner --exit-on-error "$2"`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script, 'restore', db, file], {
      env: { ...process.env, PATH: `${pg.binDir}:${process.env.PATH}`, ...pg.clientEnv('postgres') },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`pg_restore exited ${code}: ${stderr}`))));
  });
}

/** Every spelling of the password the URL carries. */
function expectNoPassword(text: string): void {
  expect(text).not.toContain(pg.password);
  expect(text).not.toContain(encodeURIComponent(pg.password));
}

async function filesUnder(dir: string): Promise<string> {
  const out: string[] = [];
  for (const name of await fsp.readdir(dir, { recursive: true })) {
    const p = path.join(dir, name);
    if ((await fsp.stat(p)).isFile()) out.push(await fsp.readFile(p, 'utf8'));
  }
  return out.join('\n');
}

/** What is left in the state dir's scratch folders (dump spools, volume spools). */
async function scratchLeft(ws: Workspace): Promise<string[]> {
  const tmp = path.join(ws.state, 'docs', 'tmp');
  return fs.existsSync(tmp) ? fsp.readdir(tmp, { recursive: true }) : [];
}

/** The job's `source:` line replaced: databases beside (or instead of) the folder. */
async function withDatabases(ws: Workspace, source: string, extra = ''): Promise<void> {
  const text = await fsp.readFile(ws.config, 'utf8');
  expect(text).toContain('    source: { paths: [src] }\n');
  await fsp.writeFile(ws.config, text.replace('    source: { paths: [src] }\n', `    source: ${source}\n`) + extra);
}

const APP = '{ type: postgres, url: "${PG_URL}", name: app }';

function ok(r: RunResult, what: string): void {
  expect(r.code, `${what}: ${r.stderr}`).toBe(0);
}

interface BackupJson {
  targets: Array<{ id: string; level: string; status: string; suspicious: string[]; stats: { files: number; storedFiles: number; changedFiles: number } }>;
}

async function fillSource(ws: Workspace): Promise<void> {
  await fsp.mkdir(path.join(ws.src, 'letters'), { recursive: true });
  await fsp.writeFile(path.join(ws.src, 'letters', 'a.txt'), 'first letter\n');
  await fsp.writeFile(path.join(ws.src, 'letters', 'Zoë.txt'), 'Grüße\n'.repeat(500));
  await fsp.writeFile(path.join(ws.src, 'photo.jpg'), Buffer.alloc(400_000, 7));
  await fsp.writeFile(path.join(ws.src, 'notes.md'), '# notes\n');
  await fsp.writeFile(path.join(ws.src, 'todo.txt'), 'nothing\n');
}

/** The restored tree without its databases folder, and that folder's dump (`file`, which starts with `magic`). */
async function splitRestore(to: string, file = 'app.dump', magic: RegExp = /^PGDMP/): Promise<{ files: Map<string, TreeEntry>; dump: string }> {
  const files = await snapshotTree(to);
  const rel = `databases/${file}`;
  const dump = path.join(to, rel);
  expect(files.get('databases')).toMatchObject({ type: 'dir', mode: 0o700 });
  expect(files.get(rel)).toMatchObject({ type: 'file', mode: 0o600 });
  expect([...files.keys()].filter((k) => k.startsWith('databases'))).toEqual(['databases', rel]);
  files.delete('databases');
  files.delete(rel);
  const head = Buffer.alloc(200);
  const fh = await fsp.open(dump);
  const { bytesRead } = await fh.read(head, 0, head.length, 0);
  await fh.close();
  expect(head.subarray(0, bytesRead).toString('latin1')).toMatch(magic);
  return { files, dump };
}

const sha256 = async (file: string) => createHash('sha256').update(await fsp.readFile(file)).digest('hex');

describe('a PostgreSQL database in an OpenPGP repository', () => {
  let ws: Workspace;
  let env: NodeJS.ProcessEnv;
  let gnupgHome: string;
  let source: Map<string, TreeEntry>;
  let dumpSha: string;

  beforeAll(async () => {
    ws = await workspace();
    // a strict mass-change guard: the dump, new every run, must not trip it
    await withDatabases(ws, `{ paths: [src], databases: [${APP}] }`, '    guards: { maxChanged: 5% }\n');
    env = { ...tools, PG_URL: pg.url('app') };
    ok(await ws.run(['init', '-c', ws.config], { PG_URL: pg.url('app') }), 'init');
    await fillSource(ws);
    source = await snapshotTree(ws.src);
  });

  afterAll(async () => {
    if (gnupgHome) await new Promise((resolve) => spawn('gpgconf', ['--homedir', gnupgHome, '--kill', 'all']).on('close', resolve).on('error', resolve));
  });

  it('backs the dump up beside the files; cerberus restore and pg_restore bring the database back row for row', async () => {
    // without --json: the log lines are what is checked here
    const r = await ws.run(['backup', '-c', ws.config, '--now', T1, '--report', 'report1'], env);
    ok(r, 'backup');
    // five files and the dump
    expect((await reports(path.join(ws.dir, 'report1'))).json.targets[0]).toMatchObject({ id: ID1, level: 'quarterly', status: 'committed', files: 6, changedFiles: 6 });
    expect(r.stderr).toMatch(/dumping database app \(postgres\)…/);
    expect(r.stderr).toMatch(/dumped database app \(postgres\): [\d.]+ (KiB|MiB) in [\d.]+ s/);
    expectNoPassword(r.stdout + r.stderr + (await filesUnder(path.join(ws.dir, 'report1'))));
    expect(await scratchLeft(ws)).toEqual([]);

    const to = path.join(ws.dir, 'restored1');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], env), 'restore');
    const { files, dump } = await splitRestore(to);
    expect(diffTrees(source, files)).toEqual([]);
    dumpSha = await sha256(dump);

    await pgRestore('restored1', dump);
    const want = await checksums('app');
    expect(want).toMatch(/^items\|8000\|[0-9a-f]{32}\nblobs\|2001\|[0-9a-f]{32}\nnotes\|4\|[0-9a-f]{32}\nview\|\d+$/);
    expect(await checksums('restored1')).toBe(want);
  });

  it('gpg and tar alone get the dump back, and pg_restore reads it', async () => {
    gnupgHome = await tempDir('cerberus-gnupg-');
    await fsp.chmod(gnupgHome, 0o700);
    const pw = path.join(gnupgHome, 'pw');
    await fsp.writeFile(pw, PASSPHRASE);
    await fsp.writeFile(path.join(gnupgHome, 'gpg.conf'), `batch\npinentry-mode loopback\npassphrase-file ${pw}\n`);
    const by = path.join(ws.dir, 'by-hand');
    await fsp.mkdir(by);
    const script = [
      `gpg --import "${path.join(ws.keys, 'cerberus.key.asc')}" 2>/dev/null`,
      `cd "${by}"`,
      `cat "${ws.repo}/quarterly/${ID1}"/data.tar.gpg.* | gpg -d 2>/dev/null | tar -x`,
      'rm -rf .cerberus',
    ].join('\n');
    await new Promise<void>((resolve, reject) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { env: { ...process.env, GNUPGHOME: gnupgHome }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`gpg | tar exited ${code}: ${stderr}`))));
    });
    const { files, dump } = await splitRestore(by);
    expect(diffTrees(source, files, 0n)).toEqual([]);
    expect(await sha256(dump)).toBe(dumpSha);
    await pgRestore('by_hand', dump);
    expect(await checksums('by_hand')).toBe(await checksums('app'));
  });

  it('a second run stores the dump again though nothing changed, and is not suspicious', async () => {
    const r = await ws.run(['backup', '-c', ws.config, '--now', T2, '--json'], env);
    ok(r, 'second backup');
    const t = (JSON.parse(r.stdout) as BackupJson).targets[0]!;
    expect(t).toMatchObject({ id: ID2, level: 'daily', status: 'committed', suspicious: [] });
    // only the dump: every file of the source is unchanged (a dump taken in the same second
    // as the last can be byte for byte the same: stored all the same)
    expect(t.stats.storedFiles).toBe(1);
    expect(r.stderr).not.toMatch(/guard/);
    expect(await scratchLeft(ws)).toEqual([]);

    const to = path.join(ws.dir, 'restored2');
    ok(await ws.run(['restore', '-c', ws.config, '--at', ID2, '--to', to], env), 'restore daily');
    const { files, dump } = await splitRestore(to);
    expect(diffTrees(source, files)).toEqual([]);
    await pgRestore('restored2', dump);
    expect(await checksums('restored2')).toBe(await checksums('app'));
  });

  it('a dry run dumps nothing and says so', async () => {
    const r = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-07T03:00:00Z', '--dry-run'], env);
    ok(r, 'dry run');
    expect(r.stderr).toMatch(/\[dry run\] not dumping database app/);
    expect(r.stderr).not.toMatch(/dumping database app \(postgres\)…/);
  });

  it('RESTORE.md says how to load the dump', async () => {
    const doc = await fsp.readFile(path.join(ws.repo, 'RESTORE.md'), 'utf8');
    expect(doc).toContain('createdb -T template0 NAME');
    expect(doc).toContain('pg_restore --dbname=NAME --no-owner --exit-on-error databases/NAME.dump');
    expect(doc).toContain('mysql NAME < databases/NAME.sql');
  });
});

describe('a job of databases only', () => {
  it('backs up with paths: [], every night without a guard tripping, and restores just the dump', async () => {
    await pg.createDb('solo');
    await pg.psql('CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items VALUES (1, \'one\');', 'solo');
    const count = () => pg.psql("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM items t", 'solo');
    const ws = await workspace();
    await withDatabases(ws, `{ paths: [], databases: [{ type: postgres, url: "\${PG_URL}", name: app }] }`);
    const env = { ...tools, PG_URL: pg.url('solo') };
    ok(await ws.run(['init', '-c', ws.config], env), 'init');
    for (const [when, level, changed] of [[T1, 'quarterly', 0], [T2, 'daily', 1]] as const) {
      const r = await ws.run(['backup', '-c', ws.config, '--now', when, '--json'], env);
      ok(r, `backup ${when}`);
      // the second time one file of one changed: 100 %, which the mass-change guard does not count
      expect((JSON.parse(r.stdout) as BackupJson).targets[0]).toMatchObject({ level, suspicious: [], stats: { files: 1, storedFiles: 1, changedFiles: changed } });
      if (when === T1) await pg.psql("INSERT INTO items VALUES (2, 'two')", 'solo');
    }
    const to = path.join(ws.dir, 'restored');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], env), 'restore');
    const { files, dump } = await splitRestore(to);
    expect([...files.keys()]).toEqual([]);
    await pgRestore('solo_restored', dump);
    expect(await pg.psql("SELECT count(*), md5(string_agg(t::text, ',' ORDER BY id)) FROM items t", 'solo_restored')).toBe(await count());
    expect(await count()).toMatch(/^2\|/);
  });
});

describe('a dump that fails', () => {
  it('fails the run: exit 1, nothing committed or left behind, onError told which source, no password anywhere', async () => {
    const ws = await workspace({
      yamlExtra: [
        '    hooks:',
        `      onError: { run: 'printf "%s\\n%s\\n" "$CERBERUS_STATUS" "$CERBERUS_ERROR" > onerror.txt', shell: true }`,
      ].join('\n'),
    });
    await withDatabases(ws, `{ paths: [src], databases: [${APP}] }`);
    await fillSource(ws);
    ok(await ws.run(['init', '-c', ws.config], { PG_URL: pg.url('app') }), 'init');
    const r = await ws.run(['backup', '-c', ws.config, '--now', T1, '--report', 'report'], { ...tools, PG_URL: pg.url('no_such_db') });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/cerberus: error: database source "app": pg_dump failed \(exit status 1\): .*database "no_such_db" does not exist/);

    const [status, error] = (await fsp.readFile(path.join(ws.dir, 'onerror.txt'), 'utf8')).split('\n');
    expect(status).toBe('failed');
    expect(error).toMatch(/^database source "app": pg_dump failed .*does not exist/);
    expectNoPassword(r.stdout + r.stderr + (await fsp.readFile(path.join(ws.dir, 'onerror.txt'), 'utf8')) + (await filesUnder(path.join(ws.dir, 'report'))));

    // no restore point, no unfinished one, no lock, no spool
    for (const level of ['quarterly', 'monthly', 'weekly', 'daily']) expect(await fsp.readdir(path.join(ws.repo, level)).catch(() => [])).toEqual([]);
    expect(await fsp.readdir(path.join(ws.repo, 'locks')).catch(() => [])).toEqual([]);
    expect(await scratchLeft(ws)).toEqual([]);
    const report = await reports(path.join(ws.dir, 'report'));
    expect(JSON.stringify(report.failures)).toMatch(/database source \\"app\\"/);
  });

  it('a source with its own top-level databases folder is refused, naming it and the fix', async () => {
    const ws = await workspace();
    await withDatabases(ws, `{ paths: [src], databases: [${APP}] }`);
    await fillSource(ws);
    await fsp.mkdir(path.join(ws.src, 'databases'));
    ok(await ws.run(['init', '-c', ws.config], { PG_URL: pg.url('app') }), 'init');
    const r = await ws.run(['backup', '-c', ws.config, '--now', T1], { ...tools, PG_URL: pg.url('app') });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`source ${path.join(ws.src, 'databases')} would be backed up as databases, where the dumps of source.databases go`);
    expect(r.stderr).toContain(`source.exclude: ["${path.join(ws.src, 'databases')}"]`);
    expect(await fsp.readdir(path.join(ws.repo, 'quarterly')).catch(() => [])).toEqual([]);
  });
});

describe('a PostgreSQL database in a Cryptomator repository', () => {
  it('is a file of the vault: restored, and pg_restore reads it; the second vault holds it again', async () => {
    const ws = await workspace({ keygen: false });
    await fsp.writeFile(
      ws.config,
      [
        'jobs:',
        '  docs:',
        `    source: { paths: [src], databases: [${APP}] }`,
        '    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }',
        '    targets:',
        '      - { name: usb, type: local, path: repo }',
        '    timezone: UTC',
        '    guards: { maxChanged: 5% }',
      ].join('\n') + '\n',
    );
    const env = { ...tools, PG_URL: pg.url('app'), VAULT_PASSWORD };
    await fillSource(ws);
    const source = await snapshotTree(ws.src);
    ok(await ws.run(['init', '-c', ws.config], env), 'init');
    const first = await ws.run(['backup', '-c', ws.config, '--now', T1, '--json', '--report', 'report'], env);
    ok(first, 'backup');
    expect((JSON.parse(first.stdout) as BackupJson).targets[0]).toMatchObject({ id: ID1, suspicious: [], stats: { files: 6, storedFiles: 6 } });
    expectNoPassword(first.stdout + first.stderr + (await filesUnder(path.join(ws.dir, 'report'))));
    expect(await scratchLeft(ws)).toEqual([]);

    const second = await ws.run(['backup', '-c', ws.config, '--now', T2, '--json'], env);
    ok(second, 'second backup');
    expect((JSON.parse(second.stdout) as BackupJson).targets[0]).toMatchObject({ id: ID2, suspicious: [], stats: { files: 6, storedFiles: 1 } });
    expect(await scratchLeft(ws)).toEqual([]);
    const dry = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-07T03:00:00Z', '--dry-run'], env);
    ok(dry, 'dry run');
    expect(dry.stderr).toMatch(/\[dry run\] not dumping database app/);

    for (const id of [ID1, ID2]) {
      const to = path.join(ws.dir, `restored-${id}`);
      ok(await ws.run(['restore', '-c', ws.config, '--at', id, '--to', to], env), `restore ${id}`);
      const { files, dump } = await splitRestore(to);
      expect(diffTrees(source, files)).toEqual([]);
      const db = `vault_${id.slice(8, 10)}`;
      await pgRestore(db, dump);
      expect(await checksums(db)).toBe(await checksums('app'));
    }
  });
});

describe('a PostgreSQL database through a plain stage', () => {
  it('is streamed into the stage tree, copied off-site encrypted by the stages, and restores from both', async () => {
    const ws = await workspace();
    await withDatabases(ws, `{ paths: [src], databases: [${APP}] }`);
    const text = await fsp.readFile(ws.config, 'utf8');
    await fsp.writeFile(
      ws.config,
      text.replace('      - { name: usb, type: local, path: repo }', '      - { name: stage, type: local, path: stage, snapshots: hardlink }\n      - { name: usb, type: local, path: repo }') +
        '    stages: [stage, usb]\n',
    );
    const env = { ...tools, PG_URL: pg.url('app') };
    ok(await ws.run(['init', '-c', ws.config], env), 'init');
    await fillSource(ws);
    const source = await snapshotTree(ws.src);
    for (const [t, id] of [[T1, ID1], [T2, ID2]] as const) {
      const r = await ws.run(['backup', '-c', ws.config, '--now', t, '--json'], env);
      ok(r, 'backup');
      const result = JSON.parse(r.stdout) as BackupJson;
      expect(result.targets.map((x) => `${x.status} ${x.id} ${x.suspicious.length}`)).toEqual([`committed ${id} 0`, `committed ${id} 0`]);
      // the dump is written into the tree as it comes; nothing is left in the state dir
      expect(await scratchLeft(ws)).toEqual([]);
    }
    const staged = path.join(ws.dir, 'stage', 'daily', ID2, 'files', 'databases', 'app.dump');
    expect((await fsp.stat(staged)).mode & 0o777).toBe(0o600);
    const want = await checksums('app');
    for (const target of ['stage', 'usb']) {
      const to = path.join(ws.dir, `from-${target}`);
      ok(await ws.run(['restore', '-c', ws.config, '--target', target, '--at', 'latest', '--to', to], env), `restore ${target}`);
      const { files, dump } = await splitRestore(to);
      expect(diffTrees(source, files)).toEqual([]);
      await pgRestore(`staged_${target}`, dump);
      expect(await checksums(`staged_${target}`)).toBe(want);
    }
  });
});

/** Every byte value once, for a BLOB: mysqldump --hex-blob must carry them all. */
const ALL_BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex');

// a trigger before the rows it logs: the dump must create it after its table's rows, or the restore logs them twice
const MY_FILL = `
CREATE TABLE items (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, price DECIMAL(10,2), added DATETIME NOT NULL, seen TIMESTAMP NULL);
INSERT INTO items (name, price, added, seen)
  SELECT CONCAT('item ', seq, ' Grüße 日本語 🐬'), seq * 1.25, '2026-01-01 00:00:00' + INTERVAL seq MINUTE, FROM_UNIXTIME(1767225600 + seq * 60)
  FROM seq_1_to_8000;
CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB NOT NULL);
INSERT INTO blobs SELECT seq, UNHEX(REPEAT(MD5(seq), 32)) FROM seq_1_to_2000;
INSERT INTO blobs VALUES (0, UNHEX('${ALL_BYTES}'));
CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, note_id INT NOT NULL);
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
CREATE TRIGGER notes_audit AFTER INSERT ON notes FOR EACH ROW INSERT INTO audit (note_id) VALUES (NEW.id);
INSERT INTO notes VALUES (1, 'line\\nbreak\\ttab ''quoted'' "double" \\\\ backslash'), (2, NULL), (3, ''), (4, 'Ωμέγα ✓ ﷺ 𝄞'), (5, 'NUL \\0 byte');
CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 9000;
CREATE PROCEDURE cheap(IN lim DECIMAL(10,2)) SELECT COUNT(*) FROM items WHERE price < lim;
CREATE EVENT purge_audit ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE DO DELETE FROM audit WHERE id < 0;
`;

describe('a MariaDB database in an OpenPGP repository', () => {
  let my: MariadbServer;
  let ws: Workspace;
  let home: string;
  const SHOP = '{ type: mysql, url: "${MY_URL}", name: shop }';

  beforeAll(async () => {
    my = await startMariadb();
    await my.createDb('shop');
    await my.sql(MY_FILL, 'shop');
    ws = await workspace();
    await withDatabases(ws, `{ paths: [src], databases: [${SHOP}] }`, '    guards: { maxChanged: 5% }\n');
    ok(await ws.run(['init', '-c', ws.config], { MY_URL: my.url('shop') }), 'init');
    await fillSource(ws);
    // RESTORE.md: "Connection and password come as usual for these tools (… ~/.my.cnf)"
    home = await tempDir('cerberus-home-');
    await fsp.writeFile(path.join(home, '.my.cnf'), my.clientOptions, { mode: 0o600 });
  }, 120_000);

  afterAll(async () => {
    await my?.stop();
  });

  /** Row count and md5 of every table, each table's CHECKSUM TABLE, and the view, routine, trigger and event. */
  const checksums = async (db: string) => {
    const rows = (table: string, cols: string) => `SELECT '${table}', COUNT(*), MD5(GROUP_CONCAT(${cols} ORDER BY id SEPARATOR ',')) FROM ${table};`;
    const out = await my.sql(
      [
        'SET SESSION group_concat_max_len = 1073741824;',
        rows('items', "CONCAT_WS('|', id, HEX(name), price, added, UNIX_TIMESTAMP(seen))"),
        rows('blobs', "CONCAT(id, ':', HEX(data))"),
        rows('notes', "CONCAT(id, ':', IFNULL(HEX(body), 'NULL'))"),
        rows('audit', "CONCAT(id, ':', note_id)"),
        'CHECKSUM TABLE items, blobs, notes, audit EXTENDED;',
        "SELECT 'view', COUNT(*) FROM expensive;",
        'CALL cheap(100);',
        `SELECT 'objects',
           (SELECT GROUP_CONCAT(TRIGGER_NAME) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()),
           (SELECT GROUP_CONCAT(CONCAT(ROUTINE_NAME, ' ', DATABASE_COLLATION)) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()),
           (SELECT GROUP_CONCAT(CONCAT(EVENT_NAME, ' ', STATUS)) FROM information_schema.EVENTS WHERE EVENT_SCHEMA = DATABASE());`,
        // a CREATE DATABASE without a character set takes the server's: latin1 on this one
        "SELECT 'charset', DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE();",
      ].join('\n'),
      db,
    );
    // CHECKSUM TABLE names each table with its database
    return out.split(`${db}.`).join('');
  };

  /** RESTORE.md's mysql lines, run as written in the restored folder, with the connection from ~/.my.cnf. */
  async function mysqlRestore(db: string, folder: string): Promise<void> {
    // what the restoring DBA has: a database of that name to fill
    await my.admin(`GRANT ALL ON \`${db}\`.* TO '${my.user}'@'%'`);
    const doc = await fsp.readFile(path.join(ws.repo, 'RESTORE.md'), 'utf8');
    const lines = doc.split('\n').filter((l) => l.startsWith('    mysql ')).map((l) => l.trim());
    expect(lines).toEqual(["mysql -e 'CREATE DATABASE NAME CHARACTER SET utf8mb4'", 'mysql NAME < databases/NAME.sql']);
    const script = lines.join('\n').split('databases/NAME.sql').join('databases/shop.sql').split('NAME').join(db);
    await new Promise<void>((resolve, reject) => {
      const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { cwd: folder, env: { PATH: process.env.PATH, HOME: home }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`mysql exited ${code}: ${stderr}`))));
    });
  }

  const expectNoMyPassword = (text: string, ...passwords: string[]) => {
    for (const pw of [my.password, ...passwords]) {
      expect(text).not.toContain(pw);
      expect(text).not.toContain(encodeURIComponent(pw));
    }
  };

  it('backs the dump up beside the files; cerberus restore and the mysql client bring the database back row for row', async () => {
    const source = await snapshotTree(ws.src);
    const r = await ws.run(['backup', '-c', ws.config, '--now', T1, '--report', 'report1'], { MY_URL: my.url('shop') });
    ok(r, 'backup');
    expect((await reports(path.join(ws.dir, 'report1'))).json.targets[0]).toMatchObject({ id: ID1, level: 'quarterly', status: 'committed', files: 6, changedFiles: 6 });
    expect(r.stderr).toMatch(/dumped database shop \(mysql\): [\d.]+ (KiB|MiB) in [\d.]+ s/);
    expectNoMyPassword(r.stdout + r.stderr + (await filesUnder(path.join(ws.dir, 'report1'))));
    expect(await scratchLeft(ws)).toEqual([]);

    const to = path.join(ws.dir, 'restored1');
    ok(await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], { MY_URL: my.url('shop') }), 'restore');
    // MariaDB's client since 10.5.25 starts its dumps with a line for its sandbox mode
    const { files, dump } = await splitRestore(to, 'shop.sql', /^(\/\*M!999999\\- enable the sandbox mode \*\/ ?\n)?-- MariaDB dump /);
    expect(diffTrees(source, files)).toEqual([]);
    const text = await fsp.readFile(dump, 'utf8');
    // mysqldump writes this last, and only when all went well
    expect(text).toMatch(/\n-- Dump completed on [^\n]+\n$/);
    // no CREATE DATABASE or USE: the dump loads into a database of any name
    expect(text).not.toMatch(/^(CREATE DATABASE|USE )/m);
    expectNoMyPassword(text);

    await mysqlRestore('shop_restored', to);
    const want = await checksums('shop');
    expect(want).toMatch(/^items\t8000\t[0-9a-f]{32}\nblobs\t2001\t[0-9a-f]{32}\nnotes\t5\t[0-9a-f]{32}\naudit\t5\t[0-9a-f]{32}\n(\w+\t\d+\n){4}view\t800\n79\nobjects\tnotes_audit\tcheap utf8mb4_general_ci\tpurge_audit DISABLED\ncharset\tutf8mb4$/);
    expect(await checksums('shop_restored')).toBe(want);
  });

  it('a wrong password fails the run: exit 1, the source named, nothing committed, no password anywhere', async () => {
    const wrong = `wr0ng'pa"ss #2 ü\\%`;
    const url = my.url('shop').replace(encodeURIComponent(my.password), encodeURIComponent(wrong));
    expect(url).not.toBe(my.url('shop'));
    const before = await fsp.readdir(path.join(ws.repo, 'daily')).catch(() => []);
    const r = await ws.run(['backup', '-c', ws.config, '--now', T2, '--report', 'report2'], { MY_URL: url });
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/cerberus: error: database source "shop": mysqldump failed \(exit status 2\): .*Access denied for user 'cerberus'@'127\.0\.0\.1' \(using password: YES\)/);
    expectNoMyPassword(r.stdout + r.stderr + (await filesUnder(path.join(ws.dir, 'report2'))), wrong);
    expect(JSON.stringify((await reports(path.join(ws.dir, 'report2'))).failures)).toMatch(/database source \\"shop\\"/);
    expect(await fsp.readdir(path.join(ws.repo, 'daily')).catch(() => [])).toEqual(before);
    expect(await fsp.readdir(path.join(ws.repo, 'locks')).catch(() => [])).toEqual([]);
    expect(await scratchLeft(ws)).toEqual([]);
  });
});

describe('database sources in the config', () => {
  it('mirror mode refuses a job with databases: it mirrors folders only', async () => {
    const ws = await workspace({ keygen: false });
    await fsp.writeFile(
      ws.config,
      ['jobs:', '  docs:', `    source: { paths: [src], databases: [${APP}] }`, '    encryption: { kind: cryptomator, password: pw }', '    targets: [{ name: usb, type: local, path: repo }]'].join('\n') + '\n',
    );
    const r = await ws.run(['sync', 'up', '-c', ws.config], { PG_URL: pg.url('app') });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/sync up mirrors folders, but job docs has source\.databases, which only backup dumps/);
  });

  const refused = async (source: string, oneLine = true) => {
    const ws = await workspace({ keygen: false });
    await withDatabases(ws, source);
    const r = await ws.run(['backup', '-c', ws.config], { PG_URL: 'postgres://u:pw@h/db' });
    expect(r.code).toBe(2);
    if (oneLine) expect(r.stderr.trim().split('\n')).toHaveLength(1);
    return r.stderr;
  };

  it('refuses a duplicate name, a path named databases beside others, a missing url, and no source at all', async () => {
    expect(await refused(`{ paths: [src], databases: [${APP}, { type: postgres, url: "\${PG_URL}", name: App }] }`)).toMatch(
      /jobs\.docs\.source\.databases\[1\]\.name: duplicate database name "App" \(also databases\[0\]\)/,
    );
    expect(await refused(`{ paths: [src, other/databases], databases: [${APP}] }`)).toMatch(
      /jobs\.docs\.source\.paths\[1\]: ".*\/other\/databases" would be restored as databases\/, which holds the dumps of source\.databases/,
    );
    expect(await refused('{ paths: [src], databases: [{ type: postgres, name: app }] }')).toMatch(/jobs\.docs\.source\.databases\[0\]\.url: needs the connection URL/);
    expect(await refused('{ paths: [] }')).toMatch(/jobs\.docs\.source\.paths: needs at least one folder \(or a database in source\.databases\)/);
    expect(await refused(`{ paths: [src], databases: [{ type: postgres, url: "\${PG_URL}", nmae: app }] }`, false)).toMatch(/databases\[0\]\.nmae: unknown key \(did you mean "name"\?\)/);
  });
});
