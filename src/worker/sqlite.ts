import { createRequire } from 'node:module';
import { CerberusError } from '../errors.js';

/** A value SQLite hands back or takes as a parameter. */
export type SqlValue = string | number | bigint | null | Uint8Array;
export type SqlRow = Record<string, SqlValue>;

export interface SqliteStatement {
  run(...params: SqlValue[]): { changes: number | bigint };
  get(...params: SqlValue[]): SqlRow | undefined;
  all(...params: SqlValue[]): SqlRow[];
}

/**
 * The few calls the worker makes of SQLite, the same over Node's built-in `node:sqlite`
 * (Node 22.5 and later: the image's Node) and `better-sqlite3` (Node 20). Both are synchronous,
 * which the state store relies on: a check and the write that follows it cannot interleave.
 */
export interface SqliteDb {
  exec(sql: string): void;
  prepare(sql: string): SqliteStatement;
  close(): void;
  /** `fn` in one transaction (BEGIN IMMEDIATE): committed when it returns, rolled back when it throws */
  transaction<T>(fn: () => T): T;
  /** which library opened it, for messages and tests */
  readonly driver: 'node:sqlite' | 'better-sqlite3';
}

interface NativeStatement {
  run(...params: unknown[]): { changes: number | bigint };
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}
interface NativeDb {
  exec(sql: string): unknown;
  prepare(sql: string): NativeStatement;
  close(): unknown;
}
type NodeSqlite = { DatabaseSync: new (file: string, opts?: { readOnly?: boolean }) => NativeDb };
type BetterSqlite = new (file: string, opts?: { readonly?: boolean; fileMustExist?: boolean }) => NativeDb;

let loaded: { driver: SqliteDb['driver']; open: (file: string, readOnly: boolean) => NativeDb } | undefined;

function load(): NonNullable<typeof loaded> {
  if (loaded) return loaded;
  // getBuiltinModule answers undefined where the module does not exist (Node 20) instead of throwing
  const builtin = process.getBuiltinModule?.('node:sqlite') as NodeSqlite | undefined;
  if (builtin?.DatabaseSync) {
    const { DatabaseSync } = builtin;
    loaded = { driver: 'node:sqlite', open: (file, readOnly) => new DatabaseSync(file, readOnly ? { readOnly: true } : {}) };
    return loaded;
  }
  let Better: BetterSqlite;
  try {
    Better = createRequire(import.meta.url)('better-sqlite3') as BetterSqlite;
  } catch (err) {
    throw new CerberusError('CONFIG', `SQLite is not available: Node ${process.versions.node} has no node:sqlite and better-sqlite3 does not load (${(err as Error).message.split('\n')[0]})`, {
      hint: 'run Node 22.5 or later, or install better-sqlite3 (npm install better-sqlite3; it builds with python3, make and g++)',
    });
  }
  loaded = { driver: 'better-sqlite3', open: (file, readOnly) => new Better(file, readOnly ? { readonly: true, fileMustExist: true } : {}) };
  return loaded;
}

/** Opens (or, unless readOnly, creates) a SQLite database file. */
export function openSqlite(file: string, opts: { readOnly?: boolean } = {}): SqliteDb {
  const { driver, open } = load();
  const db = open(file, opts.readOnly === true);
  // another process (the application, a health check) may hold a lock for a moment
  db.exec('PRAGMA busy_timeout = 10000');
  const statements = new Map<string, SqliteStatement>();
  let depth = 0;
  const wrap: SqliteDb = {
    driver,
    exec: (sql) => void db.exec(sql),
    prepare(sql) {
      let s = statements.get(sql);
      if (!s) {
        const native = db.prepare(sql);
        s = {
          run: (...p) => native.run(...p),
          get: (...p) => native.get(...p) as SqlRow | undefined,
          all: (...p) => native.all(...p) as SqlRow[],
        };
        statements.set(sql, s);
      }
      return s;
    },
    close: () => void db.close(),
    transaction<T>(fn: () => T): T {
      // nested: part of the outer transaction
      if (depth > 0) return fn();
      db.exec('BEGIN IMMEDIATE');
      depth++;
      try {
        const out = fn();
        db.exec('COMMIT');
        return out;
      } catch (err) {
        db.exec('ROLLBACK');
        throw err;
      } finally {
        depth--;
      }
    },
  };
  return wrap;
}

/** The SQLite library this Node uses, without opening anything (for messages and tests). */
export function sqliteDriver(): SqliteDb['driver'] {
  return load().driver;
}
