/**
 * The application's database as the worker reads it: the contract of sql/ in a real
 * PostgreSQL cluster (a throwaway one) and in SQLite, the restricted role of
 * sql/object-storage-worker-role.sql, and errors that never show the password.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openAppDatabase, parseTime } from '../../src/worker/app-db.js';
import { openSqlite, sqliteDriver } from '../../src/worker/sqlite.js';
import { ROOT, tempDir } from '../helpers/cli.js';
import { errorOf } from '../helpers/errors.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { runTool } from '../helpers/servers.js';

const CONTRACT = fs.readFileSync(path.join(ROOT, 'sql/object-storage-contract.sql'), 'utf8');
const ROLE_SQL = path.join(ROOT, 'sql/object-storage-worker-role.sql');
const H = (s: string) => createHash('sha256').update(s).digest('hex');
const WORKER_PASSWORD = 'w0rker p@ss/wörd';

let pg: PostgresServer;

beforeAll(async () => {
  pg = await startPostgres();
  await pg.createDb('app');
  await pg.psql(CONTRACT, 'app');
  await pg.psql(
    `INSERT INTO "ObjectStorageFiles" ("Id", "Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt") VALUES
       (1, 'a.png', '/cars/id-1/a.png', 's3', 1, '${H('a1')}', 'https://s3.example/a?X-Amz-Signature=abc', '2026-01-05 03:00:00+01'),
       (2, 'a.png', '/cars/id-1/a.png', 's3', 2, '${H('a2')}', NULL, '2026-01-05 04:00:00.123456+00'),
       (3000000000, 'b.pdf', '/b.pdf', 's3', 1, '${H('b')}', '  ', '2026-01-06T00:00:00Z');
     INSERT INTO "ObjectStorageDeleteLog" ("FileId", "DeletedAt") VALUES (1, '2026-01-07 00:00:00+00');
     CREATE TABLE "Customers" (id int PRIMARY KEY, secret text);`,
    'app',
  );
}, 60_000);

afterAll(async () => {
  await pg?.stop();
});

function workerPsql(sql: string): Promise<string> {
  return runTool(path.join(pg.binDir, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], {
    env: { ...process.env, ...pg.clientEnv('app'), PGUSER: 'cerberus_worker', PGPASSWORD: WORKER_PASSWORD },
  });
}

const workerUrl = () => `postgres://cerberus_worker:${encodeURIComponent(WORKER_PASSWORD)}@127.0.0.1:${pg.port}/app`;

describe('PostgreSQL', () => {
  it('reads both tables in Id order, in pages, with times in UTC and 64-bit Ids', async () => {
    const db = await openAppDatabase({ kind: 'postgres', url: pg.url('app') });
    try {
      const first = await db.filesAfter(0, 2);
      expect(first.map((r) => r.id)).toEqual([1, 2]);
      expect(first[0]).toEqual({ id: 1, name: 'a.png', path: '/cars/id-1/a.png', storage: 's3', version: 1, hash: H('a1'), url: 'https://s3.example/a?X-Amz-Signature=abc', createdAt: Date.parse('2026-01-05T02:00:00Z') });
      expect(first[1]).toMatchObject({ url: undefined, createdAt: Date.parse('2026-01-05T04:00:00.123Z') });
      const rest = await db.filesAfter(2, 2);
      expect(rest).toEqual([expect.objectContaining({ id: 3000000000, url: undefined, createdAt: Date.parse('2026-01-06T00:00:00Z') })]);
      expect((await db.filesByIds([3000000000, 1, 77])).map((r) => r.id)).toEqual([1, 3000000000]);
      expect((await db.fileVersions('s3', '/cars/id-1/a.png')).map((r) => r.version)).toEqual([1, 2]);
      expect(await db.deletesAfter(0, 10)).toEqual([{ id: 1, fileId: 1, deletedAt: Date.parse('2026-01-07T00:00:00Z') }]);
      expect(await db.deletesByIds([1])).toHaveLength(1);
      expect(await db.backlog(1)).toEqual({ rows: 2, oldest: Date.parse('2026-01-05T04:00:00.123Z') });
      expect(await db.backlog(3000000000)).toEqual({ rows: 0, oldest: undefined });
    } finally {
      await db.close();
    }
  });

  it('gives the role of sql/object-storage-worker-role.sql SELECT on the two tables and nothing else', async () => {
    const psqlFile = (vars: string[]) => runTool(path.join(pg.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...vars, '-f', ROLE_SQL], { env: { ...process.env, ...pg.clientEnv('app') } });
    // without the password it says how to give one, and makes nothing
    expect(await psqlFile([])).toMatch(/give the password: psql -v password=/);
    expect(await pg.psql("SELECT count(*) FROM pg_roles WHERE rolname = 'cerberus_worker'")).toBe('0');
    await psqlFile(['-v', 'password=first one']);
    // run again: the password changes, nothing breaks
    await psqlFile(['-v', `password=${WORKER_PASSWORD}`]);

    const db = await openAppDatabase({ kind: 'postgres', url: workerUrl() });
    try {
      expect(await db.filesAfter(0, 10)).toHaveLength(3);
      expect(await db.deletesAfter(0, 10)).toHaveLength(1);
    } finally {
      await db.close();
    }
    expect(await workerPsql('SELECT count(*) FROM "ObjectStorageFiles"')).toBe('3\n');
    await expect(workerPsql(`INSERT INTO "ObjectStorageFiles" ("Name", "Path", "Storage", "Version", "Hash") VALUES ('x', '/x', 's3', 1, '${H('x')}')`)).rejects.toThrow(/read-only transaction|permission denied/);
    await expect(workerPsql('BEGIN READ WRITE; DELETE FROM "ObjectStorageDeleteLog"; COMMIT')).rejects.toThrow(/permission denied for table ObjectStorageDeleteLog/);
    await expect(workerPsql('SELECT * FROM "Customers"')).rejects.toThrow(/permission denied for table Customers/);
    await expect(workerPsql('BEGIN READ WRITE; CREATE TABLE mine (x int); COMMIT')).rejects.toThrow(/permission denied for schema public/);
  });

  it('says what is wrong, and how to fix it, without the password', async () => {
    const wrong = await errorOf(openAppDatabase({ kind: 'postgres', url: `postgres://cerberus:${encodeURIComponent('S3cret-Wr0ng!')}@127.0.0.1:${pg.port}/app` }));
    expect(wrong.code).toBe('SOURCE');
    expect(wrong.message).toBe(`application database postgres://cerberus@127.0.0.1:${pg.port}/app: cannot read the tables: password authentication failed for user "cerberus" [28P01]`);
    expect(wrong.hint).toBe('check the user and password in worker.database');
    expect(`${wrong.message} ${wrong.hint}`).not.toContain('S3cret');
    await pg.createDb('empty');
    const noTables = await errorOf(openAppDatabase({ kind: 'postgres', url: pg.url('empty') }));
    expect(noTables.message).toMatch(/cannot read the tables: relation "ObjectStorageFiles" does not exist/);
    expect(noTables.hint).toMatch(/sql\/object-storage-contract.sql/);
    expect(noTables.message).not.toContain(pg.password);
    const refused = await errorOf(openAppDatabase({ kind: 'postgres', url: 'postgres://u:hunter22@127.0.0.1:1/app' }));
    expect(refused.message).toMatch(/^application database postgres:\/\/u@127.0.0.1:1\/app: cannot read the tables: .*ECONNREFUSED/);
    expect(refused.message).not.toContain('hunter22');
  });
});

describe('SQLite', () => {
  it(`reads the tables read-only (${sqliteDriver()}), with the times SQLite applications write`, async () => {
    const dir = await tempDir('cerberus-appdb-');
    const file = path.join(dir, 'app.db');
    const db = openSqlite(file);
    db.exec(fs.readFileSync(path.join(ROOT, 'sql/object-storage-contract.sqlite.sql'), 'utf8'));
    const add = db.prepare('INSERT INTO "ObjectStorageFiles" ("Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt") VALUES (?, ?, ?, ?, ?, ?, ?)');
    add.run('a', '/a', 's3', 1, H('a'), null, '2026-01-05 03:00:00');
    add.run('b', '/b', 's3', 1, H('b'), 'https://x/b?sig=1', '2026-01-05T03:00:00.5+02:00');
    add.run('c', '/c', 's3', 1, H('c'), '', 1767582000);
    db.exec(`INSERT INTO "ObjectStorageFiles" ("Name", "Path", "Storage", "Version", "Hash") VALUES ('d', '/d', 's3', 1, '${H('d')}')`);
    db.prepare('INSERT INTO "ObjectStorageDeleteLog" ("FileId", "DeletedAt") VALUES (?, ?)').run(2, '2026-02-01T00:00:00Z');
    db.close();
    const before = createHash('sha256').update(fs.readFileSync(file)).digest('hex');

    const app = await openAppDatabase({ kind: 'sqlite', file });
    try {
      const rows = await app.filesAfter(0, 10);
      expect(rows.map((r) => [r.id, r.url, r.createdAt])).toEqual([
        [1, undefined, Date.parse('2026-01-05T03:00:00Z')],
        [2, 'https://x/b?sig=1', Date.parse('2026-01-05T01:00:00.500Z')],
        [3, undefined, 1767582000 * 1000],
        [4, undefined, expect.any(Number)],
      ]);
      expect(Math.abs(rows[3]!.createdAt - Date.now())).toBeLessThan(60_000);
      expect((await app.filesByIds([3, 1])).map((r) => r.id)).toEqual([1, 3]);
      expect(await app.deletesAfter(0, 10)).toEqual([{ id: 1, fileId: 2, deletedAt: Date.parse('2026-02-01T00:00:00Z') }]);
      expect((await app.backlog(2)).rows).toBe(2);
    } finally {
      await app.close();
    }
    expect(createHash('sha256').update(fs.readFileSync(file)).digest('hex')).toBe(before);
    expect(fs.readdirSync(dir)).toEqual(['app.db']);
    const missing = await errorOf(openAppDatabase({ kind: 'sqlite', file: path.join(dir, 'nope.db') }));
    expect(missing.message).toBe(`application database sqlite:${path.join(dir, 'nope.db')}: no such file`);
  });

  it('uses node:sqlite where Node has it, better-sqlite3 before', () => {
    const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
    expect(sqliteDriver()).toBe(major >= 24 || (major === 23 && minor >= 4) || (major === 22 && minor >= 13) ? 'node:sqlite' : 'better-sqlite3');
  });
});

describe('parseTime', () => {
  it('reads the forms drivers give, without a zone as UTC', () => {
    expect(parseTime(new Date('2026-01-01T00:00:00Z'))).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(parseTime('2026-01-01 12:30:00')).toBe(Date.parse('2026-01-01T12:30:00Z'));
    expect(parseTime('2026-01-01 12:30:00.123456+05:30')).toBe(Date.parse('2026-01-01T07:00:00.123Z'));
    expect(parseTime('2026-01-01 12:30:00-08')).toBe(Date.parse('2026-01-01T20:30:00Z'));
    expect(parseTime('2026-01-01')).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(parseTime(1767225600)).toBe(1767225600_000);
    expect(parseTime(1767225600_000)).toBe(1767225600_000);
    expect(parseTime('1767225600')).toBe(1767225600_000);
    expect(parseTime(10n)).toBe(10_000);
    expect(parseTime('yesterday')).toBeNaN();
    expect(parseTime(null)).toBeNaN();
  });
});
