import { randomBytes, createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ioError } from '../errors.js';

/**
 * What the scheduler did for each job, one JSON-lines file per job in one folder, so that
 * `cerberus health` (another process, maybe much later) can tell what ran, failed or was skipped.
 */

export type RunStatus = 'success' | 'warning' | 'failed' | 'interrupted';

export interface RunRecord {
  kind: 'run';
  job: string;
  /** ISO 8601 */
  startedAt: string;
  endedAt: string;
  status: RunStatus;
  exitCode: number;
  /** one line, for a person */
  error?: string;
}

export interface SkippedRecord {
  kind: 'skipped';
  job: string;
  /** when the run was due, ISO 8601 */
  at: string;
  reason: string;
}

export type HistoryRecord = RunRecord | SkippedRecord;

export interface JobSummary {
  lastRun?: RunRecord;
  /** the last run with status success or warning */
  lastSuccess?: RunRecord;
  /** the last run with status failed or interrupted */
  lastFailure?: RunRecord;
  /** skipped records written after the last success (all of them if it never succeeded) */
  skippedSinceLastSuccess: number;
  lastSkipped?: SkippedRecord;
  /** the time of the oldest record kept: the history knows nothing before it */
  firstRecordAt?: string;
}

export type ReleaseLock = () => Promise<void>;

/** What the scheduler needs from a history; RunHistory is the one on disk. */
export interface HistoryStore {
  append(record: HistoryRecord): Promise<void>;
  summary(jobId: string): Promise<JobSummary>;
  /** the cross-process run lock of a job, or undefined when another live process holds it */
  lock(jobId: string): Promise<ReleaseLock | undefined>;
}

export const isSuccess = (status: RunStatus): boolean => status === 'success' || status === 'warning';

export interface RunHistoryOptions {
  /** past this many records a file is rewritten with the last `keepRecords` */
  maxRecords?: number;
  keepRecords?: number;
}

export class RunHistory implements HistoryStore {
  readonly dir: string;
  private readonly maxRecords: number;
  private readonly keepRecords: number;
  /** records per file as far as this process knows: counted once, then kept up to date */
  private readonly counts = new Map<string, number>();
  /** this process's writes to one file, one after another: a trim must not lose an append */
  private readonly queues = new Map<string, Promise<void>>();

  constructor(dir: string, opts: RunHistoryOptions = {}) {
    this.dir = dir;
    this.maxRecords = opts.maxRecords ?? 1000;
    this.keepRecords = Math.min(opts.keepRecords ?? 500, this.maxRecords);
  }

  fileFor(jobId: string): string {
    return path.join(this.dir, `${jobFileStem(jobId)}.jsonl`);
  }

  append(record: HistoryRecord): Promise<void> {
    const file = this.fileFor(record.job);
    const prev = this.queues.get(file) ?? Promise.resolve();
    const next = prev.then(() => this.write(file, record));
    const settled = next.catch(() => undefined);
    this.queues.set(file, settled);
    void settled.then(() => {
      if (this.queues.get(file) === settled) this.queues.delete(file);
    });
    return next;
  }

  private async write(file: string, record: HistoryRecord): Promise<void> {
    try {
      await fsp.mkdir(this.dir, { recursive: true });
      // a torn last line (a crash mid-write) must not swallow this record too
      const lead = (await endsWithNewline(file)) ? '' : '\n';
      // one appendFile per record: O_APPEND writes of a few hundred bytes do not interleave
      await fsp.appendFile(file, `${lead}${JSON.stringify(record)}\n`, { mode: 0o600 });
    } catch (err) {
      throw ioError(err, `could not write the run history ${file}`);
    }
    let count = this.counts.get(file);
    if (count === undefined) count = (await this.readFile(file, record.job)).length;
    else count += 1;
    this.counts.set(file, count);
    if (count > this.maxRecords) await this.trim(file, record.job);
  }

  private async trim(file: string, jobId: string): Promise<void> {
    const kept = (await this.readFile(file, jobId)).slice(-this.keepRecords);
    const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await fsp.writeFile(tmp, kept.map((r) => `${JSON.stringify(r)}\n`).join(''), { mode: 0o600 });
      await fsp.rename(tmp, file);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw ioError(err, `could not trim the run history ${file}`);
    }
    this.counts.set(file, kept.length);
  }

  /** A job's records, oldest first; lines that do not parse (a torn last line) are left out. */
  async records(jobId: string): Promise<HistoryRecord[]> {
    await this.queues.get(this.fileFor(jobId));
    return this.readFile(this.fileFor(jobId), jobId);
  }

  private async readFile(file: string, jobId: string): Promise<HistoryRecord[]> {
    let text: string;
    try {
      text = await fsp.readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError(err, `could not read the run history ${file}`);
    }
    const out: HistoryRecord[] = [];
    for (const line of text.split('\n')) {
      const rec = parseRecord(line);
      if (rec !== undefined && rec.job === jobId) out.push(rec);
    }
    return out;
  }

  async summary(jobId: string): Promise<JobSummary> {
    return summarize(await this.records(jobId));
  }

  lock(jobId: string): Promise<ReleaseLock | undefined> {
    return acquireRunLock(this.dir, jobId);
  }
}

export function summarize(records: readonly HistoryRecord[]): JobSummary {
  const s: JobSummary = { skippedSinceLastSuccess: 0 };
  const first = records[0];
  if (first !== undefined) s.firstRecordAt = first.kind === 'run' ? first.startedAt : first.at;
  for (const r of records) {
    if (r.kind === 'skipped') {
      s.lastSkipped = r;
      s.skippedSinceLastSuccess += 1;
      continue;
    }
    s.lastRun = r;
    if (isSuccess(r.status)) {
      s.lastSuccess = r;
      s.skippedSinceLastSuccess = 0;
    } else {
      s.lastFailure = r;
    }
  }
  return s;
}

const STATUSES: readonly string[] = ['success', 'warning', 'failed', 'interrupted'];

function parseRecord(line: string): HistoryRecord | undefined {
  if (line.trim() === '') return undefined;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const str = (k: string) => typeof o[k] === 'string';
  if (!str('job')) return undefined;
  if (o.kind === 'run' && str('startedAt') && str('endedAt') && STATUSES.includes(o.status as string) && typeof o.exitCode === 'number') {
    const r: RunRecord = { kind: 'run', job: o.job as string, startedAt: o.startedAt as string, endedAt: o.endedAt as string, status: o.status as RunStatus, exitCode: o.exitCode };
    if (str('error')) r.error = o.error as string;
    return r;
  }
  if (o.kind === 'skipped' && str('at') && str('reason')) return { kind: 'skipped', job: o.job as string, at: o.at as string, reason: o.reason as string };
  return undefined;
}

async function endsWithNewline(file: string): Promise<boolean> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  try {
    const { size } = await fh.stat();
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, size - 1);
    return b[0] === 0x0a;
  } finally {
    await fh.close();
  }
}

/**
 * A job id ("tenant/resource") as a file name: letters, digits, '_' and '-' stay, the rest is
 * %XX-encoded (so '/' is %2F and no name is '.' or '..'); decodeURIComponent reverses it. A very
 * long id is cut and a hash added (the records carry the id anyway).
 */
export function jobFileStem(jobId: string): string {
  const enc = Array.from(Buffer.from(jobId, 'utf8'))
    .map((b) => (/[A-Za-z0-9_-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`))
    .join('');
  if (enc.length <= 180) return enc;
  return `${enc.slice(0, 160).replace(/%[0-9A-F]?$/, '')}~${createHash('sha256').update(jobId).digest('hex').slice(0, 16)}`;
}

// ---------------------------------------------------------------------------------------------

interface LockInfo {
  pid: number;
  host: string;
  /** when the lock was taken, ISO 8601 */
  startedAt: string;
  /** the holder's start time in clock ticks since boot (/proc), to tell a reused pid */
  procStart?: string;
  /** tells this holder's lock from a later one with the same pid */
  token: string;
}

/**
 * The cross-process run lock of one job, so a `--once` from cron and a running daemon never run
 * the same job at once: a file created with O_EXCL holding the holder's pid and start time. A
 * lock whose holder is gone (the pid is dead, or now belongs to a later process) is stale and
 * taken over. Resolves with the release function, or undefined when a live process holds it.
 */
export async function acquireRunLock(dir: string, jobId: string): Promise<ReleaseLock | undefined> {
  const file = path.join(dir, `${jobFileStem(jobId)}.lock`);
  try {
    await fsp.mkdir(dir, { recursive: true });
  } catch (err) {
    throw ioError(err, `could not create the run history folder ${dir}`);
  }
  const me: LockInfo = { pid: process.pid, host: os.hostname(), startedAt: new Date().toISOString(), token: randomBytes(8).toString('hex') };
  const procStart = processStart(process.pid);
  if (procStart !== undefined) me.procStart = procStart;
  const body = `${JSON.stringify(me)}\n`;
  // a few rounds: another process may take a stale lock over between our steps
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await fsp.writeFile(file, body, { flag: 'wx', mode: 0o600 });
      return () => releaseLock(file, me.token);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw ioError(err, `could not create the run lock ${file}`);
    }
    const held = await readLock(file);
    if (held === 'gone') continue;
    if (held === 'unreadable' || holderAlive(held)) return undefined;
    if (!(await takeOver(file, held))) return undefined;
  }
  return undefined;
}

async function releaseLock(file: string, token: string): Promise<void> {
  const held = await readLock(file);
  // only our own lock: a stale one taken over by another process is theirs now
  if (typeof held === 'object' && held.token === token) await fsp.rm(file, { force: true });
}

async function readLock(file: string): Promise<LockInfo | 'gone' | 'unreadable'> {
  let text: string;
  let mtimeMs: number;
  try {
    text = await fsp.readFile(file, 'utf8');
    mtimeMs = (await fsp.stat(file)).mtimeMs;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw ioError(err, `could not read the run lock ${file}`);
  }
  try {
    const v = JSON.parse(text) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.token === 'string') return { pid: v.pid, host: String(v.host), startedAt: String(v.startedAt), token: v.token, ...(typeof v.procStart === 'string' ? { procStart: v.procStart } : {}) };
  } catch {
    // below
  }
  // created but not yet written by its holder, or left empty by a crash: stale after a while
  return Date.now() - mtimeMs > 60_000 ? { pid: 0, host: os.hostname(), startedAt: '', token: '' } : 'unreadable';
}

function holderAlive(lock: LockInfo): boolean {
  // another machine's process cannot be checked from here: respect its lock
  if (lock.host !== os.hostname()) return true;
  if (lock.pid <= 0) return false;
  try {
    process.kill(lock.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (lock.procStart === undefined) return true;
  const now = processStart(lock.pid);
  return now === undefined || now === lock.procStart;
}

/**
 * Moves the stale lock aside (rename is atomic: of two processes taking it over, one moves it).
 * If what was moved is not the stale lock we read (another process took over and locked in
 * between), it goes back.
 */
async function takeOver(file: string, stale: LockInfo): Promise<boolean> {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.stale`;
  try {
    await fsp.rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw ioError(err, `could not take over the stale run lock ${file}`);
  }
  const moved = await readLock(aside);
  if (typeof moved === 'object' && moved.token === stale.token && moved.pid === stale.pid) {
    await fsp.rm(aside, { force: true });
    return true;
  }
  try {
    await fsp.link(aside, file);
  } catch {
    // yet another lock is in place: theirs stands
  }
  await fsp.rm(aside, { force: true });
  return false;
}

/** Field 22 of /proc/PID/stat (start time since boot), or undefined off Linux. */
function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the command name (field 2) may hold spaces and parentheses: count from its end
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
