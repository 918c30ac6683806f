import fsp from 'node:fs/promises';
import path from 'node:path';
import { CerberusError, describeError } from '../errors.js';
import type { Sealing } from '../formats/openpgp/message.js';
import { sealingOf } from '../jobs/keys.js';
import { formatBytes, formatDuration } from '../report/format.js';
import type { Reporter } from '../report/log.js';
import { acquireRunLock, type ReleaseLock } from '../schedule/index.js';
import type { Backend, OpenTarget } from '../storage/index.js';
import { openAppDatabase, type AppDatabase, type FileRow } from './app-db.js';
import type { WorkerConfig } from './config.js';
import { existingCopy, openSource, prepareCopy, putCopy, storageReader, type StorageReader } from './fetch.js';
import { objectKey, objectStem } from './layout.js';
import { applyRetention, supersededLongAgo } from './retention.js';
import { WorkerState, type StateRow } from './state.js';

/** Rows read from the application per query. */
const PAGE = 1000;
/** Due rows taken from the state per query. */
const BATCH = 256;
/** Stored copies are recorded (after a flush of the target) in groups of this many, or this often. */
const COMMIT_EVERY = 200;
const COMMIT_MS = 1000;
/** A progress line this often on long passes (not on a terminal, which has its live line). */
const PROGRESS_MS = 10_000;
/** Failures told one by one per pass; the rest are counted. */
export const MAX_TOLD = 20;

export interface FailedRow {
  id: number;
  path: string;
  version: number;
  error: string;
  /** ms: when the next attempt is due */
  retryAt: number;
}

/** What one pass did. */
export interface PassResult {
  /** the pass's clock (--now or the time it started), ISO */
  at: string;
  durationMs: number;
  /** new rows read from the application */
  read: number;
  deletesRead: number;
  /** copies recorded as stored (fetched, or found stored after an interruption) */
  stored: number;
  /** of those, fetched from the storage because the signed URL was absent, expired or failed */
  viaStorage: number;
  /** copies found whole after an interrupted attempt, recorded without fetching again */
  resumed: number;
  duplicates: number;
  /** rows of files deleted before they were stored, or failed ones superseded long ago (supersededLongAgo) */
  skipped: number;
  failed: FailedRow[];
  bytesIn: number;
  bytesStored: number;
  /** keys removed from the target (deletes, superseded versions) */
  removed: string[];
  deletesApplied: number;
  /** rows not stored yet, this pass's failures included */
  pending: number;
  /** of those, waiting for a retry that is not due yet */
  waiting: number;
  /** CreatedAt of the oldest pending row, ISO */
  oldestPending?: string;
  /** copies stored on the target after the pass */
  kept: number;
  /** warnings: removals that failed, odd delete-log rows */
  problems: string[];
  /** stopped by a signal before every due row was done */
  interrupted: boolean;
}

export interface WorkerDeps {
  reporter: Reporter;
  open: OpenTarget;
  /** ms since the epoch; --now fixes it */
  clock: () => number;
}

/**
 * The object-storage worker over one config: holds the state dir's lock, the state, the
 * target and the storages for as long as it runs. One pass reads what is new in the
 * application's tables, fetches every due row through a pipeline of `concurrency` files at
 * once, and applies deletes and retention.
 */
export class ObjectWorker {
  private app: AppDatabase | undefined;
  private constructor(
    readonly cfg: WorkerConfig,
    private readonly deps: WorkerDeps,
    private readonly state: WorkerState,
    private readonly release: ReleaseLock,
    private readonly target: Backend,
    private readonly storages: Map<string, StorageReader>,
    private readonly sealing: Sealing | undefined,
    private readonly spoolDir: string,
  ) {}

  static async start(cfg: WorkerConfig, deps: WorkerDeps): Promise<ObjectWorker> {
    // the keys first: a wrong key file fails before anything is locked or opened
    const sealing = cfg.encryption ? (await sealingOf(cfg.encryption)).sealing : undefined;
    await fsp.mkdir(cfg.stateDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
      throw new CerberusError('IO', `cannot create the worker's state dir ${cfg.stateDir}: ${(err as NodeJS.ErrnoException).code ?? err}`, { hint: 'set worker.stateDir to a folder this user may write' });
    });
    const release = await acquireRunLock(cfg.stateDir, 'worker');
    if (!release) {
      throw new CerberusError('LOCKED', `another worker is running on the state dir ${cfg.stateDir}`, { hint: 'let it finish (it stops cleanly on SIGTERM), or give this config its own worker.stateDir' });
    }
    try {
      const state = WorkerState.open(cfg.stateDir);
      // copies of an attempt a crash cut short; the rows are fetched again
      const spoolDir = path.join(cfg.stateDir, 'spool');
      await fsp.rm(spoolDir, { recursive: true, force: true });
      await fsp.mkdir(spoolDir, { mode: 0o700 });
      const storages = new Map([...cfg.storages].map(([name, s]) => [name, storageReader(name, s)]));
      const target = deps.open(cfg.target);
      // the folders exist before the first copy: a local disk defers each small copy's sync to
      // one flush per group only where it can sync its file system, which it checks once
      for (const bucket of new Set([...storages.values()].map((s) => s.bucket))) {
        // a target that is down now fails each row, which is tried again: a service keeps going
        await target.mkdir(bucket).catch((err: unknown) => deps.reporter.notice(`target ${cfg.target.name}: ${describeError(err)}`));
      }
      return new ObjectWorker(cfg, deps, state, release, target, storages, sealing, spoolDir);
    } catch (err) {
      await release();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.app?.close();
    this.app = undefined;
    for (const s of this.storages.values()) await s.close();
    this.state.close();
    await this.release();
  }

  private async database(): Promise<AppDatabase> {
    this.app ??= await openAppDatabase(this.cfg.database);
    return this.app;
  }

  /**
   * One pass. `stop`: take no new file, finish those in flight, record them, return. `abort`:
   * also cut the transfers in flight (their rows are fetched again next time).
   */
  async pass(stop: AbortSignal, abort: AbortSignal): Promise<PassResult> {
    const now = this.deps.clock();
    const started = Date.now();
    const r: PassResult = {
      at: new Date(now).toISOString(), durationMs: 0, read: 0, deletesRead: 0, stored: 0, viaStorage: 0, resumed: 0, duplicates: 0, skipped: 0,
      failed: [], bytesIn: 0, bytesStored: 0, removed: [], deletesApplied: 0, pending: 0, waiting: 0, kept: 0, problems: [], interrupted: false,
    };
    try {
      const app = await this.database();
      await this.read(app, now, r);
      await this.fetchDue(app, now, stop, abort, r);
      if (!stop.aborted) {
        const buckets = new Map([...this.storages].map(([name, s]) => [name, s.bucket]));
        const ret = await applyRetention(this.state, app, this.target, { deleteAfterMs: this.cfg.deleteAfterMs, keepVersions: this.cfg.keepVersions, buckets }, now, abort);
        r.removed = ret.removed;
        r.deletesApplied = ret.deletesApplied;
        r.problems.push(...ret.problems);
      }
      const open = this.state.open();
      const backlog = await app.backlog(this.state.cursor('files'));
      r.pending = open.rows + backlog.rows;
      r.waiting = this.state.waiting(now);
      const oldest = [open.oldest, backlog.oldest].filter((t): t is number => t !== undefined && Number.isFinite(t));
      if (oldest.length > 0) r.oldestPending = new Date(Math.min(...oldest)).toISOString();
      r.kept = this.state.storedCount();
      this.state.setMeta('lastPassAt', r.at);
    } catch (err) {
      // a broken connection is opened anew by the next pass
      await this.app?.close();
      this.app = undefined;
      throw err;
    } finally {
      r.durationMs = Date.now() - started;
    }
    r.interrupted = abort.aborted || (stop.aborted && this.state.due(now, 0, 1).length > 0);
    return r;
  }

  /** What is new in both tables, and what turned up for Ids skipped before (see GAP_GRACE_MS). */
  private async read(app: AppDatabase, now: number, r: PassResult): Promise<void> {
    for (;;) {
      const rows = await app.filesAfter(this.state.cursor('files'), PAGE);
      this.state.ingestFiles(rows, now);
      r.read += rows.length;
      if (rows.length < PAGE) break;
    }
    for (;;) {
      const rows = await app.deletesAfter(this.state.cursor('deletes'), PAGE);
      this.state.ingestDeletes(rows, now);
      r.deletesRead += rows.length;
      if (rows.length < PAGE) break;
    }
    const fileGaps = this.state.gaps('files');
    if (fileGaps.length > 0) {
      const late = await app.filesByIds(fileGaps.map((g) => g.id));
      this.state.ingestLateFiles(late);
      r.read += late.length;
    }
    const deleteGaps = this.state.gaps('deletes');
    if (deleteGaps.length > 0) this.state.ingestLateDeletes(await app.deletesByIds(deleteGaps.map((g) => g.id)));
    this.state.forgetOldGaps(now);
  }

  /** Every due row through `concurrency` lanes, in Id order; stored copies recorded in groups. */
  private async fetchDue(app: AppDatabase, now: number, stop: AbortSignal, abort: AbortSignal, r: PassResult): Promise<void> {
    const committer = new Committer(this.state, this.target, now, {
      recorded: (n) => (r.stored += n),
      failed: (row, err) => this.failed(row, describeError(err), now, r),
    });
    const keys = new KeyLocks();
    const total = this.state.open().rows - this.state.waiting(now);
    const progress = new Progress(this.deps.reporter, total, r);
    const state = this.state;
    async function* due(): AsyncGenerator<{ row: StateRow; fresh: FileRow | undefined }> {
      for (let after = 0; !stop.aborted; ) {
        const batch = state.due(now, after, BATCH);
        if (batch.length === 0) return;
        after = batch.at(-1)!.id;
        // read again: the application may have signed a new URL since
        const fresh = new Map((await app.filesByIds(batch.map((b) => b.id))).map((f) => [f.id, f]));
        for (const row of batch) yield { row, fresh: fresh.get(row.id) };
      }
    }
    const queue = due();
    const lane = async () => {
      while (!stop.aborted) {
        const next = await queue.next();
        if (next.done) return;
        await this.one(next.value.row, next.value.fresh, now, abort, committer, keys, r);
        progress.tick();
      }
    };
    const lanes = await Promise.allSettled(Array.from({ length: this.cfg.concurrency }, lane));
    progress.end();
    await committer.close();
    const broken = lanes.find((l): l is PromiseRejectedResult => l.status === 'rejected');
    if (broken) throw broken.reason;
  }

  /** One row, start to end; a failure is the row's, recorded with its next attempt, never thrown. */
  private async one(row: StateRow, fresh: FileRow | undefined, now: number, abort: AbortSignal, committer: Committer, keys: KeyLocks, r: PassResult): Promise<void> {
    try {
      if (!fresh) throw new CerberusError('SOURCE', 'the row is no longer in ObjectStorageFiles');
      const storage = this.storages.get(fresh.storage);
      const problem = rowProblem(fresh, storage, this.cfg);
      if (problem !== undefined || !storage) throw new CerberusError('SOURCE', problem ?? 'no storage');
      if (Number.isFinite(fresh.createdAt) && this.state.deletedAfter(fresh.storage, fresh.path, fresh.createdAt)) {
        this.state.recordDone(row.id, 'deleted', 'deleted before it was stored');
        r.skipped++;
        return;
      }
      if (row.attempts > 0) {
        const newer = this.state.versionsOf(fresh.storage, fresh.path).filter((v) => v.version > fresh.version);
        const by = supersededLongAgo(newer, now, this.cfg);
        if (by) {
          const note = `superseded: v${by.version} was stored ${new Date(by.storedAt).toISOString()}, more than deleteAfter ago, so this version's copy would be removed at once; not tried again`;
          this.state.recordDone(row.id, 'superseded', note);
          this.deps.reporter.notice(`row ${fresh.id} (${fresh.path} v${fresh.version}): ${note}`);
          r.skipped++;
          return;
        }
      }
      const stem = objectStem(storage.bucket, fresh.path);
      const owner = this.state.claimStem(stem, fresh.storage, fresh.path);
      if (owner.storage !== fresh.storage || owner.path !== fresh.path) {
        throw new CerberusError('INTEGRITY', `its copies would go to ${stem}/, which holds the copies of ${owner.path} (storage ${owner.storage}); refused rather than mixed`, {
          hint: 'two paths that differ only in their extension map to one folder: rename one in the application',
        });
      }
      const encrypted = this.sealing !== undefined;
      const key = objectKey(stem, fresh.version, encrypted);
      await keys.run(key, async () => {
        const held = this.state.version(key) ?? committer.holding(key);
        if (held) {
          if (held.rowId === fresh.id) return this.state.recordDone(row.id, 'stored', undefined);
          if (held.hash === fresh.hash.toLowerCase()) {
            this.state.recordDone(row.id, 'duplicate', `the same content as row ${held.rowId}, already stored as ${key}`);
            r.duplicates++;
            return;
          }
          throw new CerberusError('INTEGRITY', `row ${held.rowId} already stored version ${fresh.version} of this file as ${key}, with another Hash; refused rather than overwritten`, {
            hint: 'each update of a file needs the next Version',
          });
        }
        const resumed = row.status === 'storing';
        this.state.markStoring(fresh);
        if (resumed) {
          const size = await existingCopy(this.target, key, encrypted, fresh.hash, abort);
          if (size !== undefined) {
            committer.add({ row: fresh, key, size });
            r.resumed++;
            return;
          }
        }
        const source = await openSource(fresh, storage, abort);
        const copy = await prepareCopy(source.stream, fresh, { sealing: this.sealing, compression: this.cfg.encryption?.compression ?? 'none', spoolDir: this.spoolDir });
        try {
          await putCopy(this.target, key, copy, abort);
        } finally {
          await copy.dispose();
        }
        if (source.via === 'storage') r.viaStorage++;
        r.bytesIn += copy.bytesIn;
        r.bytesStored += copy.size;
        committer.add({ row: fresh, key, size: copy.size });
      });
    } catch (err) {
      // cut short by a second signal: left `storing`, so the next run looks for the copy first
      if (abort.aborted) return;
      this.failed(fresh ?? row, describeError(err), now, r);
    }
  }

  private failed(row: { id: number; path: string; version: number }, error: string, now: number, r: PassResult): void {
    const retryAt = this.state.recordFailure(row.id, error, now);
    r.failed.push({ id: row.id, path: row.path, version: row.version, error, retryAt });
    if (r.failed.length <= MAX_TOLD) {
      this.deps.reporter.warn(`row ${row.id} (${row.path} v${row.version}): ${error}; next attempt after ${new Date(retryAt).toISOString()}`);
    }
  }
}

/** What is wrong with a row as the application wrote it, if anything. */
function rowProblem(row: FileRow, storage: StorageReader | undefined, cfg: WorkerConfig): string | undefined {
  if (!storage) return `Storage ${JSON.stringify(row.storage)} is not in worker.storages (${[...cfg.storages.keys()].join(', ')})`;
  if (!Number.isSafeInteger(row.version) || row.version < 1) return 'Version is not a whole number of 1 or more';
  if (!/^[0-9a-f]{64}$/i.test(row.hash)) return 'Hash is not a sha-256 in hex (64 characters)';
  if (row.path.trim() === '') return 'Path is empty';
  return undefined;
}

interface Stored {
  row: FileRow;
  key: string;
  size: number;
}

/**
 * Records stored copies in groups: the target is flushed first (a local disk defers small
 * files' syncs), then one transaction records them all. A copy is on the target before its
 * record, never after: a crash in between leaves a copy the next run finds and accepts.
 */
class Committer {
  private items: Stored[] = [];
  private chain: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly state: WorkerState,
    private readonly target: Backend,
    private readonly now: number,
    private readonly on: { recorded(n: number): void; failed(row: FileRow, err: unknown): void },
  ) {
    this.timer = setInterval(() => void this.commit(), COMMIT_MS);
  }

  /** A copy put in this pass and not recorded yet, as a stored version would say. */
  holding(key: string): { rowId: number; hash: string } | undefined {
    const s = this.items.find((i) => i.key === key) ?? this.inFlight?.find((i) => i.key === key);
    return s ? { rowId: s.row.id, hash: s.row.hash.toLowerCase() } : undefined;
  }

  add(s: Stored): void {
    this.items.push(s);
    if (this.items.length >= COMMIT_EVERY) void this.commit();
  }

  private inFlight: Stored[] | undefined;

  commit(): Promise<void> {
    this.chain = this.chain.then(async () => {
      if (this.items.length === 0) return;
      const batch = this.items;
      this.items = [];
      this.inFlight = batch;
      try {
        await this.target.flush?.();
        this.state.recordStored(batch, this.now);
        this.on.recorded(batch.length);
      } catch (err) {
        for (const s of batch) this.on.failed(s.row, err);
      } finally {
        this.inFlight = undefined;
      }
    });
    return this.chain;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.commit();
  }
}

/** One file per key at a time: two rows of the same version must not both write it. */
class KeyLocks {
  private readonly held = new Map<string, Promise<void>>();
  async run(key: string, fn: () => Promise<void>): Promise<void> {
    while (this.held.has(key)) await this.held.get(key);
    const p = fn();
    const done = p.then(
      () => undefined,
      () => undefined,
    );
    this.held.set(key, done);
    try {
      await p;
    } finally {
      this.held.delete(key);
    }
  }
}

/** Progress on long passes: a live line on a terminal, a line every PROGRESS_MS elsewhere. */
class Progress {
  private done = 0;
  private readonly started = Date.now();
  private lastLine = Date.now();

  constructor(
    private readonly reporter: Reporter,
    private readonly total: number,
    private readonly r: PassResult,
  ) {}

  tick(): void {
    this.done++;
    this.reporter.progress({ files: this.done, bytes: this.r.bytesIn, totalFiles: this.total });
    if (!this.reporter.interactive && Date.now() - this.lastLine >= PROGRESS_MS) {
      this.lastLine = Date.now();
      this.reporter.info(this.line());
    }
  }

  end(): void {
    this.reporter.endProgress();
  }

  private line(): string {
    const secs = Math.max((Date.now() - this.started) / 1000, 0.001);
    const r = this.r;
    return `progress: ${this.done} of ${this.total} done (${r.stored + r.resumed} stored, ${r.failed.length} failed), ${(this.done / secs).toFixed(1)} files/s, ${formatBytes(r.bytesIn / secs)}/s`;
  }
}

/** One line per pass for the log. */
export function passLine(r: PassResult): string {
  const parts = [
    `read ${r.read} new row(s)`,
    `stored ${r.stored}${r.viaStorage > 0 ? ` (${r.viaStorage} from the storage)` : ''}${r.resumed > 0 ? `, ${r.resumed} found stored` : ''}`,
    ...(r.duplicates > 0 ? [`${r.duplicates} duplicate(s)`] : []),
    ...(r.skipped > 0 ? [`${r.skipped} skipped (deleted or superseded)`] : []),
    `${r.failed.length} failed`,
    `removed ${r.removed.length}`,
    `${r.pending} pending${r.waiting > 0 ? ` (${r.waiting} waiting to retry)` : ''}`,
    formatDuration(r.durationMs),
  ];
  return parts.join(', ');
}

export interface LoopOptions {
  once: boolean;
  /** graceful: no new files, finish those in flight */
  stop: AbortSignal;
  /** at once: cut transfers in flight */
  abort: AbortSignal;
  onPass(r: PassResult): Promise<void> | void;
  /** a pass that failed as a whole (database unreachable) in the polling loop: it goes on */
  onError(err: unknown): void;
}

/** --once: one pass. Otherwise a pass every pollInterval until `stop`. */
export async function runLoop(worker: ObjectWorker, opts: LoopOptions): Promise<void> {
  for (;;) {
    const began = Date.now();
    try {
      await opts.onPass(await worker.pass(opts.stop, opts.abort));
    } catch (err) {
      if (opts.once || opts.abort.aborted) throw err;
      opts.onError(err);
    }
    if (opts.once || opts.stop.aborted) return;
    await sleep(Math.max(0, worker.cfg.pollIntervalMs - (Date.now() - began)), opts.stop);
    if (opts.stop.aborted) return;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
