import fs from 'node:fs';
import path from 'node:path';
import { ioError } from '../errors.js';
import type { DeleteRow, FileRow } from './app-db.js';
import { openSqlite, type SqliteDb, type SqlRow } from './sqlite.js';

/**
 * pending: to fetch (again, once next_at has come); storing: an attempt began and may have
 * put the object before a crash; stored, duplicate (another row holds the same version),
 * deleted (the file was deleted before it was stored): done.
 */
export type RowStatus = 'pending' | 'storing' | 'stored' | 'duplicate' | 'deleted' | 'superseded';

export interface StateRow {
  id: number;
  storage: string;
  path: string;
  version: number;
  hash: string;
  createdAt: number;
  status: RowStatus;
  attempts: number;
  nextAt: number;
  error: string | undefined;
}

export interface StoredVersion {
  /** the object's path on the target */
  key: string;
  storage: string;
  path: string;
  version: number;
  rowId: number;
  /** sha-256 of the content, lowercase hex */
  hash: string;
  createdAt: number;
  /** by the worker's clock */
  storedAt: number;
  size: number;
}

export interface PendingDelete {
  id: number;
  fileId: number;
  deletedAt: number;
}

export type CursorKind = 'files' | 'deletes';

/** After a failure a row waits this long, doubled per further failure up to BACKOFF_MAX_MS. */
export const BACKOFF_BASE_MS = 60_000;
export const BACKOFF_MAX_MS = 6 * 3600_000;
export const backoffMs = (attempts: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, Math.min(attempts - 1, 30)));

/**
 * Ids are not committed in order in PostgreSQL: a transaction that took Id 100 may commit after
 * the one that took 101 was read. Missing Ids below the cursor are asked for again for this
 * long (an Id rolled back is never filled), and at most this many per jump are remembered.
 */
export const GAP_GRACE_MS = 3600_000;
const MAX_GAP = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS rows (
  id INTEGER PRIMARY KEY, storage TEXT NOT NULL, path TEXT NOT NULL, version INTEGER, hash TEXT NOT NULL,
  created_at INTEGER, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,
  error TEXT, updated_at INTEGER);
CREATE INDEX IF NOT EXISTS rows_open ON rows (id) WHERE status IN ('pending', 'storing');
CREATE INDEX IF NOT EXISTS rows_file ON rows (storage, path);
CREATE TABLE IF NOT EXISTS versions (
  key TEXT PRIMARY KEY, storage TEXT NOT NULL, path TEXT NOT NULL, version INTEGER NOT NULL, row_id INTEGER NOT NULL,
  hash TEXT NOT NULL, created_at INTEGER, stored_at INTEGER NOT NULL, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS versions_file ON versions (storage, path, version);
CREATE TABLE IF NOT EXISTS stems (stem TEXT PRIMARY KEY, storage TEXT NOT NULL, path TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deletes (
  id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, deleted_at INTEGER, applied_at INTEGER, storage TEXT, path TEXT);
CREATE INDEX IF NOT EXISTS deletes_open ON deletes (deleted_at) WHERE applied_at IS NULL;
CREATE INDEX IF NOT EXISTS deletes_file ON deletes (storage, path) WHERE applied_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS gaps (kind TEXT NOT NULL, id INTEGER NOT NULL, seen_at INTEGER NOT NULL, PRIMARY KEY (kind, id));
`;
const FORMAT = '1';
export const STATE_FILE = 'worker.sqlite';

const num = (v: unknown) => (typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : Number.NaN);
const str = (v: unknown) => (typeof v === 'string' ? v : '');
/** NaN is not a value SQLite keeps: such a time or version is stored as NULL */
const nullable = (n: number) => (Number.isFinite(n) ? n : null);

function stateRow(r: SqlRow): StateRow {
  return {
    id: num(r.id),
    storage: str(r.storage),
    path: str(r.path),
    version: r.version === null ? Number.NaN : num(r.version),
    hash: str(r.hash),
    createdAt: r.created_at === null ? Number.NaN : num(r.created_at),
    status: str(r.status) as RowStatus,
    attempts: num(r.attempts),
    nextAt: num(r.next_at),
    error: typeof r.error === 'string' ? r.error : undefined,
  };
}

function storedVersion(r: SqlRow): StoredVersion {
  return {
    key: str(r.key),
    storage: str(r.storage),
    path: str(r.path),
    version: num(r.version),
    rowId: num(r.row_id),
    hash: str(r.hash),
    createdAt: r.created_at === null ? Number.NaN : num(r.created_at),
    storedAt: num(r.stored_at),
    size: num(r.size),
  };
}

/**
 * The worker's own progress, in a SQLite file in its state dir, never in the application's
 * database: how far each table was read, every row's outcome and retry schedule, the versions
 * stored and the deletes applied. The objects on the target are the truth; this is the
 * bookkeeping (a lost state dir costs one pass that finds every object already there).
 */
export class WorkerState {
  private constructor(
    private readonly db: SqliteDb,
    readonly file: string,
  ) {}

  static open(dir: string): WorkerState {
    const file = path.join(dir, STATE_FILE);
    try {
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw ioError(err, `cannot create the worker's state dir ${dir}`);
    }
    const db = openSqlite(file);
    // WAL: readers (health) never wait; NORMAL: a commit survives a crash of this process
    // without an fsync each (a power cut may take the last ones back, which only repeats work)
    db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;');
    db.exec(SCHEMA);
    db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('format', ?)").run(FORMAT);
    return new WorkerState(db, file);
  }

  /** For health: undefined when the worker never ran here. */
  static openExisting(dir: string): WorkerState | undefined {
    const file = path.join(dir, STATE_FILE);
    if (!fs.existsSync(file)) return undefined;
    return new WorkerState(openSqlite(file, { readOnly: true }), file);
  }

  close(): void {
    this.db.close();
  }

  meta(key: string): string | undefined {
    const r = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key);
    return r ? str(r.value) : undefined;
  }

  setMeta(key: string, value: string): void {
    this.db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value').run(key, value);
  }

  cursor(kind: CursorKind): number {
    return Number(this.meta(`cursor.${kind}`) ?? 0);
  }

  /** New rows (in Id order, all above the cursor) become pending; the cursor moves past them; Ids skipped are watched. */
  ingestFiles(rows: readonly FileRow[], now: number): void {
    if (rows.length === 0) return;
    this.db.transaction(() => {
      this.noteGaps('files', rows.map((r) => r.id), now);
      for (const r of rows) this.addFile(r);
      this.setMeta('cursor.files', String(Math.max(this.cursor('files'), ...rows.map((r) => r.id))));
    });
  }

  /** Rows found for Ids once skipped: pending like any other; their gaps are closed. */
  ingestLateFiles(rows: readonly FileRow[]): void {
    this.db.transaction(() => {
      for (const r of rows) {
        this.addFile(r);
        this.db.prepare("DELETE FROM gaps WHERE kind = 'files' AND id = ?").run(r.id);
      }
    });
  }

  private addFile(r: FileRow): void {
    this.db
      .prepare("INSERT OR IGNORE INTO rows (id, storage, path, version, hash, created_at, status, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)")
      .run(r.id, r.storage, r.path, nullable(r.version), r.hash, nullable(r.createdAt), Date.now());
  }

  ingestDeletes(rows: readonly DeleteRow[], now: number): void {
    if (rows.length === 0) return;
    this.db.transaction(() => {
      this.noteGaps('deletes', rows.map((r) => r.id), now);
      for (const r of rows) this.addDelete(r);
      this.setMeta('cursor.deletes', String(Math.max(this.cursor('deletes'), ...rows.map((r) => r.id))));
    });
  }

  ingestLateDeletes(rows: readonly DeleteRow[]): void {
    this.db.transaction(() => {
      for (const r of rows) {
        this.addDelete(r);
        this.db.prepare("DELETE FROM gaps WHERE kind = 'deletes' AND id = ?").run(r.id);
      }
    });
  }

  private addDelete(r: DeleteRow): void {
    this.db.prepare('INSERT OR IGNORE INTO deletes (id, file_id, deleted_at) VALUES (?, ?, ?)').run(r.id, nullable(r.fileId), nullable(r.deletedAt));
  }

  private noteGaps(kind: CursorKind, ids: number[], now: number): void {
    let prev = this.cursor(kind);
    const add = this.db.prepare('INSERT OR IGNORE INTO gaps (kind, id, seen_at) VALUES (?, ?, ?)');
    for (const id of ids) {
      // before the first row ever read there is nothing to miss
      if (prev > 0 && id - prev > 1 && id - prev - 1 <= MAX_GAP) for (let g = prev + 1; g < id; g++) add.run(kind, g, now);
      prev = Math.max(prev, id);
    }
  }

  gaps(kind: CursorKind): Array<{ id: number; seenAt: number }> {
    return this.db
      .prepare('SELECT id, seen_at FROM gaps WHERE kind = ? ORDER BY id')
      .all(kind)
      .map((r) => ({ id: num(r.id), seenAt: num(r.seen_at) }));
  }

  /** Gaps watched longer than GAP_GRACE_MS: their Ids were rolled back, not late. */
  forgetOldGaps(now: number): void {
    this.db.prepare('DELETE FROM gaps WHERE seen_at < ?').run(now - GAP_GRACE_MS);
  }

  /** Rows to fetch now, in Id order, after `afterId`. */
  due(now: number, afterId: number, limit: number): StateRow[] {
    return this.db
      .prepare("SELECT * FROM rows WHERE status IN ('pending', 'storing') AND id > ? AND next_at <= ? ORDER BY id LIMIT ?")
      .all(afterId, now, limit)
      .map(stateRow);
  }

  row(id: number): StateRow | undefined {
    const r = this.db.prepare('SELECT * FROM rows WHERE id = ?').get(id);
    return r ? stateRow(r) : undefined;
  }

  /** An attempt begins: from here on, a crash may leave the object stored but not recorded. */
  markStoring(fresh: FileRow): void {
    this.db
      .prepare("UPDATE rows SET status = 'storing', storage = ?, path = ?, version = ?, hash = ?, created_at = ?, updated_at = ? WHERE id = ?")
      .run(fresh.storage, fresh.path, nullable(fresh.version), fresh.hash, nullable(fresh.createdAt), Date.now(), fresh.id);
  }

  /** Each object is on the target (and, where the target defers, flushed): one transaction. */
  recordStored(items: ReadonlyArray<{ row: FileRow; key: string; size: number }>, now: number): void {
    if (items.length === 0) return;
    this.db.transaction(() => {
      for (const { row, key, size } of items) {
        this.db
          .prepare('INSERT OR REPLACE INTO versions (key, storage, path, version, row_id, hash, created_at, stored_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
          .run(key, row.storage, row.path, row.version, row.id, row.hash.toLowerCase(), nullable(row.createdAt), now, size);
        this.db.prepare("UPDATE rows SET status = 'stored', error = NULL, next_at = 0, updated_at = ? WHERE id = ?").run(Date.now(), row.id);
      }
    });
  }

  recordDone(id: number, status: 'stored' | 'duplicate' | 'deleted' | 'superseded', note: string | undefined): void {
    this.db.prepare('UPDATE rows SET status = ?, error = ?, next_at = 0, updated_at = ? WHERE id = ?').run(status, note ?? null, Date.now(), id);
  }

  /** A failed attempt: tried again after a backoff that doubles with each failure. Returns when. */
  recordFailure(id: number, error: string, now: number): number {
    const attempts = num(this.db.prepare('SELECT attempts FROM rows WHERE id = ?').get(id)?.attempts ?? 0) + 1;
    const nextAt = now + backoffMs(attempts);
    this.db.prepare("UPDATE rows SET status = 'pending', attempts = ?, next_at = ?, error = ?, updated_at = ? WHERE id = ?").run(attempts, nextAt, error, Date.now(), id);
    return nextAt;
  }

  version(key: string): StoredVersion | undefined {
    const r = this.db.prepare('SELECT * FROM versions WHERE key = ?').get(key);
    return r ? storedVersion(r) : undefined;
  }

  versionsOf(storage: string, filePath: string): StoredVersion[] {
    return this.db.prepare('SELECT * FROM versions WHERE storage = ? AND path = ? ORDER BY version DESC').all(storage, filePath).map(storedVersion);
  }

  removeVersion(key: string): void {
    this.db.prepare('DELETE FROM versions WHERE key = ?').run(key);
  }

  /** Files with more stored versions than `keep`: where superseded versions may be due. */
  filesWithMoreVersionsThan(keep: number): Array<{ storage: string; path: string }> {
    return this.db
      .prepare('SELECT storage, path FROM versions GROUP BY storage, path HAVING count(*) > ?')
      .all(keep)
      .map((r) => ({ storage: str(r.storage), path: str(r.path) }));
  }

  /**
   * Which file a stored-object folder belongs to. The first row to take a stem owns it: a
   * second file that maps to the same folder (`a/b.png` and `a/b.jpg`) is refused.
   */
  claimStem(stem: string, storage: string, filePath: string): { storage: string; path: string } {
    this.db.prepare('INSERT OR IGNORE INTO stems (stem, storage, path) VALUES (?, ?, ?)').run(stem, storage, filePath);
    const r = this.db.prepare('SELECT storage, path FROM stems WHERE stem = ?').get(stem);
    return { storage: str(r?.storage), path: str(r?.path) };
  }

  releaseStem(stem: string, storage: string, filePath: string): void {
    this.db.prepare('DELETE FROM stems WHERE stem = ? AND storage = ? AND path = ?').run(stem, storage, filePath);
  }

  /** Deletes whose grace has passed: DeletedAt at or before `cutoff`. */
  dueDeletes(cutoff: number): PendingDelete[] {
    return this.db
      .prepare('SELECT id, file_id, deleted_at FROM deletes WHERE applied_at IS NULL AND deleted_at <= ? ORDER BY id')
      .all(cutoff)
      .map((r) => ({ id: num(r.id), fileId: num(r.file_id), deletedAt: num(r.deleted_at) }));
  }

  /**
   * A delete carried out: the rows of that file created before it that were never stored
   * will not be (the file is gone), and later rows created before it are skipped too.
   */
  applyDelete(id: number, file: { storage: string; path: string } | undefined, deletedAt: number, now: number): number {
    return this.db.transaction(() => {
      this.db.prepare('UPDATE deletes SET applied_at = ?, storage = ?, path = ? WHERE id = ?').run(now, file?.storage ?? null, file?.path ?? null, id);
      if (!file) return 0;
      const r = this.db
        .prepare("UPDATE rows SET status = 'deleted', error = 'deleted before it was stored', updated_at = ? WHERE storage = ? AND path = ? AND status IN ('pending', 'storing') AND created_at <= ?")
        .run(Date.now(), file.storage, file.path, deletedAt);
      return Number(r.changes);
    });
  }

  /** Whether an applied delete of this file came after a row created at `createdAt`. */
  deletedAfter(storage: string, filePath: string, createdAt: number): boolean {
    return this.db.prepare('SELECT 1 AS x FROM deletes WHERE applied_at IS NOT NULL AND storage = ? AND path = ? AND deleted_at >= ? LIMIT 1').get(storage, filePath, createdAt) !== undefined;
  }

  /** Rows read but not done: how many, the oldest CreatedAt, and how many have failed at least once. */
  open(): { rows: number; oldest: number | undefined; failing: number } {
    const r = this.db.prepare("SELECT count(*) AS n, min(created_at) AS oldest, sum(attempts > 0) AS failing FROM rows WHERE status IN ('pending', 'storing')").get();
    return { rows: num(r?.n ?? 0), oldest: r?.oldest === null || r?.oldest === undefined ? undefined : num(r.oldest), failing: num(r?.failing ?? 0) || 0 };
  }

  /** Open rows whose next attempt is after `now` (they failed before). */
  waiting(now: number): number {
    return num(this.db.prepare("SELECT count(*) AS n FROM rows WHERE status IN ('pending', 'storing') AND next_at > ?").get(now)?.n ?? 0);
  }

  /** The rows that failed their last attempt, oldest first. */
  failing(limit: number): StateRow[] {
    return this.db.prepare("SELECT * FROM rows WHERE status IN ('pending', 'storing') AND attempts > 0 ORDER BY id LIMIT ?").all(limit).map(stateRow);
  }

  /** For the report: versions stored on the target now. */
  storedCount(): number {
    return num(this.db.prepare('SELECT count(*) AS n FROM versions').get()?.n ?? 0);
  }
}
