import fs from 'node:fs';
import type { ClientConfig, CustomTypesConfig } from 'pg';
import { CerberusError } from '../errors.js';
import type { DatabaseConfig } from './config.js';
import { safeDatabaseUrl, scrub } from './redact.js';
import { openSqlite, type SqliteDb, type SqlValue } from './sqlite.js';

/** One row of ObjectStorageFiles, as read; fields the application got wrong are checked later, per row. */
export interface FileRow {
  id: number;
  name: string;
  path: string;
  storage: string;
  /** NaN when the column holds no whole number */
  version: number;
  hash: string;
  url: string | undefined;
  /** ms since the epoch; NaN when unreadable */
  createdAt: number;
}

/** One row of ObjectStorageDeleteLog. */
export interface DeleteRow {
  id: number;
  fileId: number;
  /** ms since the epoch; NaN when unreadable */
  deletedAt: number;
}

/**
 * The application's database, read only: the worker SELECTs the two tables of the contract
 * and nothing else, in pages in Id order. PostgreSQL sessions are read-only as well, so even a
 * role that may write cannot be made to by this code.
 */
export interface AppDatabase {
  /** for messages: never holds the password */
  readonly label: string;
  filesAfter(afterId: number, limit: number): Promise<FileRow[]>;
  filesByIds(ids: readonly number[]): Promise<FileRow[]>;
  /** every row of one file (its versions), in Id order */
  fileVersions(storage: string, path: string): Promise<FileRow[]>;
  deletesAfter(afterId: number, limit: number): Promise<DeleteRow[]>;
  deletesByIds(ids: readonly number[]): Promise<DeleteRow[]>;
  /** rows after `afterId`: how many, and the oldest CreatedAt (ms) among them */
  backlog(afterId: number): Promise<{ rows: number; oldest: number | undefined }>;
  close(): Promise<void>;
}

const FILES = '"ObjectStorageFiles"';
const DELETES = '"ObjectStorageDeleteLog"';
const FILE_COLUMNS = '"Id", "Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt"';
const DELETE_COLUMNS = '"Id", "FileId", "DeletedAt"';
/** ids per `IN (…)` or `= ANY(…)` */
const IDS_PER_QUERY = 500;

export async function openAppDatabase(cfg: DatabaseConfig): Promise<AppDatabase> {
  return cfg.kind === 'postgres' ? openPostgres(cfg.url) : openSqliteApp(cfg.file);
}

/**
 * A time as ms since the epoch from what a driver gives: a Date, epoch seconds or ms, or text
 * (ISO 8601, or SQLite's `YYYY-MM-DD HH:MM:SS`). Text without a zone is UTC, as SQLite's
 * CURRENT_TIMESTAMP and PostgreSQL's `timestamp` read in a UTC session are.
 */
export function parseTime(v: unknown): number {
  if (v instanceof Date) return v.getTime();
  if (typeof v === 'bigint') return parseTime(Number(v));
  // epoch seconds until the year 5138, ms after
  if (typeof v === 'number') return Number.isFinite(v) ? (Math.abs(v) < 1e11 ? v * 1000 : v) : Number.NaN;
  if (typeof v !== 'string') return Number.NaN;
  const s = v.trim();
  if (/^-?\d+(\.\d+)?$/.test(s)) return parseTime(Number(s));
  const m = /^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?))?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i.exec(s);
  if (!m) return Number.NaN;
  const zone = m[3] === undefined ? 'Z' : /^[+-]\d{2}$/.test(m[3]) ? `${m[3]}:00` : m[3].replace(/^([+-]\d{2})(\d{2})$/, '$1:$2');
  // JavaScript's Date reads at most ms
  const time = (m[2] ?? '00:00:00').replace(/(\.\d{3})\d+$/, '$1');
  return Date.parse(`${m[1]}T${time}${zone}`);
}

function toId(v: unknown): number {
  const n = typeof v === 'string' ? Number(v) : typeof v === 'bigint' ? Number(v) : v;
  return typeof n === 'number' && Number.isSafeInteger(n) ? n : Number.NaN;
}

const text = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'string' ? v : String(v));

function fileRow(r: Record<string, unknown>): FileRow {
  const url = r.SignedDownloadUrl;
  return {
    id: toId(r.Id),
    name: text(r.Name),
    path: text(r.Path),
    storage: text(r.Storage),
    version: toId(r.Version),
    hash: text(r.Hash).trim(),
    url: typeof url === 'string' && url.trim() !== '' ? url.trim() : undefined,
    createdAt: parseTime(r.CreatedAt),
  };
}

function deleteRow(r: Record<string, unknown>): DeleteRow {
  return { id: toId(r.Id), fileId: toId(r.FileId), deletedAt: parseTime(r.DeletedAt) };
}

function chunks<T>(list: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += size) out.push(list.slice(i, i + size));
  return out;
}

/** What to do about a failure, by what the server said (SQLSTATE, or SQLite's words). */
function hintFor(code: string | undefined, message: string): string | undefined {
  if (code === '28P01' || code === '28000' || /password authentication|authentication failed/i.test(message)) return 'check the user and password in worker.database';
  if (code === '42501' || /permission denied/i.test(message)) return 'the role needs SELECT on both tables: see sql/object-storage-worker-role.sql';
  if (code === '42P01' || /no such table|does not exist/i.test(message)) return 'create the tables of the contract (sql/object-storage-contract.sql), or point worker.database at the application\'s database';
  if (code === '42703' || /no such column|column .* does not exist/i.test(message)) return 'the tables must have the columns of the contract (sql/object-storage-contract.sql)';
  if (/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|timeout|ETIMEDOUT/i.test(message)) return 'check the host and port in worker.database, and that the server is up';
  return undefined;
}

async function openPostgres(url: string): Promise<AppDatabase> {
  const { default: pg } = await import('pg');
  const label = safeDatabaseUrl(url);
  let password = '';
  try {
    password = decodeURIComponent(new URL(url).password);
  } catch {
    // the config checked the URL already
  }
  const fail = (err: unknown, what: string): CerberusError => {
    if (err instanceof CerberusError) return err;
    const e = err as { code?: unknown; message?: unknown };
    const code = typeof e.code === 'string' ? e.code : undefined;
    const message = scrub(scrub(typeof e.message === 'string' ? e.message : String(err), [password, url]), [encodeURIComponent(password)]);
    return new CerberusError('SOURCE', `application database ${label}: ${what}: ${message.split('\n')[0]}${code && !message.includes(code) ? ` [${code}]` : ''}`, { hint: hintFor(code, message) });
  };
  // times come as text, read here in a UTC session: the same for timestamp and timestamptz
  const raw = (v: string) => v;
  const config: ClientConfig = {
    connectionString: url,
    application_name: 'cerberus-worker',
    connectionTimeoutMillis: 30_000,
    query_timeout: 120_000,
    types: { getTypeParser: (oid: number, format?: 'text' | 'binary') => ([1082, 1114, 1184].includes(oid) ? raw : pg.types.getTypeParser(oid, format)) } as CustomTypesConfig,
  };
  const client = new pg.Client(config);
  // a connection that breaks later is reported by the next query; without a listener it would crash the process
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; SET TIME ZONE 'UTC'");
    await client.query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE false`);
    await client.query(`SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE false`);
  } catch (err) {
    await client.end().catch(() => undefined);
    throw fail(err, 'cannot read the tables');
  }
  const query = async (sql: string, params: unknown[], what: string): Promise<Array<Record<string, unknown>>> => {
    try {
      return (await client.query<Record<string, unknown>>(sql, params)).rows;
    } catch (err) {
      throw fail(err, what);
    }
  };
  return {
    label,
    filesAfter: async (after, limit) =>
      (await query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Id" > $1 ORDER BY "Id" LIMIT $2`, [after, limit], 'reading new files')).map(fileRow),
    async filesByIds(ids) {
      const out: FileRow[] = [];
      for (const part of chunks(ids, IDS_PER_QUERY)) out.push(...(await query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Id" = ANY($1::bigint[]) ORDER BY "Id"`, [part], 'reading files')).map(fileRow));
      return out;
    },
    fileVersions: async (storage, filePath) =>
      (await query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Storage" = $1 AND "Path" = $2 ORDER BY "Id"`, [storage, filePath], 'reading a file\'s versions')).map(fileRow),
    deletesAfter: async (after, limit) =>
      (await query(`SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE "Id" > $1 ORDER BY "Id" LIMIT $2`, [after, limit], 'reading the delete log')).map(deleteRow),
    async deletesByIds(ids) {
      const out: DeleteRow[] = [];
      for (const part of chunks(ids, IDS_PER_QUERY)) out.push(...(await query(`SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE "Id" = ANY($1::bigint[]) ORDER BY "Id"`, [part], 'reading the delete log')).map(deleteRow));
      return out;
    },
    async backlog(after) {
      const [r] = await query(`SELECT count(*) AS n, min("CreatedAt") AS oldest FROM ${FILES} WHERE "Id" > $1`, [after], 'counting new files');
      const oldest = parseTime(r?.oldest);
      return { rows: Number(r?.n ?? 0), oldest: Number.isNaN(oldest) ? undefined : oldest };
    },
    close: () => client.end().catch(() => undefined),
  };
}

async function openSqliteApp(file: string): Promise<AppDatabase> {
  const label = `sqlite:${file}`;
  const fail = (err: unknown, what: string): CerberusError => {
    if (err instanceof CerberusError) return err;
    const message = err instanceof Error ? err.message : String(err);
    return new CerberusError('SOURCE', `application database ${label}: ${what}: ${message.split('\n')[0]}`, { hint: hintFor(undefined, message) });
  };
  if (!fs.existsSync(file)) throw new CerberusError('CONFIG', `application database ${label}: no such file`, { hint: 'check worker.database (a relative path starts at the config file\'s folder)' });
  let db: SqliteDb;
  try {
    db = openSqlite(file, { readOnly: true });
    db.prepare(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE 0`).all();
    db.prepare(`SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE 0`).all();
  } catch (err) {
    throw fail(err, 'cannot read the tables');
  }
  const query = (sql: string, params: SqlValue[], what: string): Array<Record<string, unknown>> => {
    try {
      return db.prepare(sql).all(...params);
    } catch (err) {
      throw fail(err, what);
    }
  };
  const byIds = (sql: (marks: string) => string, ids: readonly number[], what: string) =>
    chunks(ids, IDS_PER_QUERY).flatMap((part) => query(sql(part.map(() => '?').join(', ')), part, what));
  return {
    label,
    filesAfter: async (after, limit) => query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Id" > ? ORDER BY "Id" LIMIT ?`, [after, limit], 'reading new files').map(fileRow),
    filesByIds: async (ids) => byIds((m) => `SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Id" IN (${m}) ORDER BY "Id"`, ids, 'reading files').map(fileRow),
    fileVersions: async (storage, filePath) =>
      query(`SELECT ${FILE_COLUMNS} FROM ${FILES} WHERE "Storage" = ? AND "Path" = ? ORDER BY "Id"`, [storage, filePath], 'reading a file\'s versions').map(fileRow),
    deletesAfter: async (after, limit) => query(`SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE "Id" > ? ORDER BY "Id" LIMIT ?`, [after, limit], 'reading the delete log').map(deleteRow),
    deletesByIds: async (ids) => byIds((m) => `SELECT ${DELETE_COLUMNS} FROM ${DELETES} WHERE "Id" IN (${m}) ORDER BY "Id"`, ids, 'reading the delete log').map(deleteRow),
    async backlog(after) {
      const [r] = query(`SELECT count(*) AS n, min("CreatedAt") AS oldest FROM ${FILES} WHERE "Id" > ?`, [after], 'counting new files');
      const oldest = parseTime(r?.oldest);
      return { rows: Number(r?.n ?? 0), oldest: Number.isNaN(oldest) ? undefined : oldest };
    },
    close: async () => db.close(),
  };
}
