/**
 * A database source as a file of the backup: its dump, streamed through a sha256 into a file
 * or a stream, the tool's exit status checked before the caller may count it complete.
 * Every repository kind stores the dumps as `databases/<name>.dump` (`.sql` for MySQL) at
 * the top of its tree; `checkDumpFolder` refuses a source whose own top level holds that name.
 */
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { DatabaseSourceConfig, JobConfig } from '../config/index.js';
import type { ManifestEntry } from '../engine/manifest.js';
import { DUMP_DIR, dumpFileName, startDump } from '../engine/database-dump.js';
import { Excluder, type SourceEntry } from '../engine/walk.js';
import { CerberusError, ioError } from '../errors.js';
import { formatBytes } from '../report/format.js';
import type { Reporter } from '../report/log.js';

export { DUMP_DIR };

export interface DumpedDatabase {
  /** where the dump sits in the backup's tree: `databases/<name>.dump` (`.sql` for MySQL) */
  path: string;
  size: number;
  sha256: string;
}

export interface DumpDatabaseOptions {
  /** a folder only this user can enter (0700): MySQL's password file goes there for the dump's time */
  privateDir: string;
  reporter: Reporter;
  /** the dump tool's environment (PATH, CERBERUS_PG_DUMP…); process.env when absent */
  env?: NodeJS.ProcessEnv;
  /** aborting it stops the tool; the dump then fails */
  signal?: AbortSignal;
}

/** `databases/<file>` of a database source, '/'-separated as in a manifest. */
export function dumpPath(db: DatabaseSourceConfig): string {
  return `${DUMP_DIR}/${dumpFileName(db)}`;
}

/**
 * Dumps `db` into `dest`: a file path (created 0600, never over an existing file, removed
 * again when the dump fails) or a stream (ended by the dump; its content counts only once
 * this resolves). Rejects with the tool's CerberusError (SERVICE, or CONFIG for a bad URL or
 * a missing tool) when the dump fails, so a truncated dump is never taken for a whole one.
 */
export async function dumpDatabase(db: DatabaseSourceConfig, dest: string | Writable, opts: DumpDatabaseOptions): Promise<DumpedDatabase> {
  const { reporter } = opts;
  const label = `${db.name} (${db.type})`;
  let sink: Writable;
  let file: fsp.FileHandle | undefined;
  if (typeof dest === 'string') {
    try {
      file = await fsp.open(dest, 'wx', 0o600);
    } catch (err) {
      throw ioError(err, `cannot create ${dest} for the dump of database ${db.name}`);
    }
    sink = file.createWriteStream();
  } else {
    sink = dest;
  }
  const started = Date.now();
  reporter.info(`dumping database ${label}…`);
  let size = 0;
  const hash = createHash('sha256');
  const through = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      size += chunk.length;
      hash.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    const dump = startDump(db, { privateDir: opts.privateDir, ...(opts.env ? { env: opts.env } : {}), ...(opts.signal ? { signal: opts.signal } : {}) });
    const [piped, finished] = await Promise.allSettled([pipeline(dump.stdout, through, sink), dump.done]);
    if (finished.status === 'rejected') {
      // the tool's failure explains more than the stream it broke, unless the writing side broke first
      const pipeErr: unknown = piped.status === 'rejected' ? piped.reason : undefined;
      const writeSide = pipeErr instanceof Error && pipeErr !== finished.reason && (pipeErr as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE';
      if (!writeSide) throw finished.reason;
    }
    if (piped.status === 'rejected') {
      const err: unknown = piped.reason;
      throw typeof dest === 'string' && !(err instanceof CerberusError) ? ioError(err, `cannot write the dump of database ${db.name} to ${dest}`) : err;
    }
  } catch (err) {
    if (file) {
      await file.close().catch(() => undefined);
      await fsp.rm(dest as string, { force: true });
    }
    throw err;
  }
  // the write stream closed its handle at the end of the pipeline
  const secs = Math.max((Date.now() - started) / 1000, 0.001);
  reporter.info(`dumped database ${label}: ${formatBytes(size)} in ${secs.toFixed(1)} s`);
  return { path: dumpPath(db), size, sha256: hash.digest('hex') };
}

/**
 * Refuses a source that would put something of its own where the dumps go: with one source
 * path, its contents are the top of the backup, so its own `databases` would mix with them.
 * (With several paths, each sits under its basename; the config refuses one named so.)
 */
export async function checkDumpFolder(job: JobConfig): Promise<void> {
  const { paths, exclude, databases } = job.source;
  const root = paths[0];
  if (databases.length === 0 || paths.length !== 1 || root === undefined) return;
  const st = await fsp.lstat(root).catch(() => undefined);
  if (st === undefined) return; // a missing root is the guards' business
  const own = st.isDirectory() ? path.join(root, DUMP_DIR) : root;
  if (!st.isDirectory() && path.basename(root) !== DUMP_DIR) return;
  if (st.isDirectory()) {
    if (new Excluder(exclude).excludes(DUMP_DIR, own)) return;
    const there = await fsp.lstat(own).then(
      () => true,
      () => false,
    );
    if (!there) return;
  }
  throw new CerberusError('CONFIG', `source ${own} would be backed up as ${DUMP_DIR}, where the dumps of source.databases go`, {
    hint: st.isDirectory()
      ? `rename or move ${own}, or leave it out with source.exclude: ["${own}"]`
      : `rename ${own}, or put it in a folder and back that up instead`,
  });
}

/** The `databases` folder of a backup: private, as the dumps in it are. */
export function dumpDirEntry(now: Date = new Date()): SourceEntry {
  const ns = (BigInt(now.getTime()) * 1_000_000n).toString();
  return {
    path: DUMP_DIR,
    abs: DUMP_DIR,
    type: 'dir',
    size: 0,
    mtimeNs: ns,
    ctimeNs: ns,
    ino: '',
    mode: 0o700,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
  };
}

/**
 * Takes what an unreadable root carried over into `databases/` out of a run's entries (this
 * run's dumps replace it), with its counts; returns what it took.
 */
export function dropDumpFolder(entries: ManifestEntry[], stats: { files: number; bytes: number; dirs: number; symlinks: number }): ManifestEntry[] {
  const taken: ManifestEntry[] = [];
  for (let i = entries.length - 1; i >= 0; i--) {
    const e = entries[i]!;
    if (e.path !== DUMP_DIR && !e.path.startsWith(`${DUMP_DIR}/`)) continue;
    entries.splice(i, 1);
    taken.push(e);
    if (e.type === 'file') {
      stats.files--;
      stats.bytes -= e.size;
    } else if (e.type === 'dir') stats.dirs--;
    else stats.symlinks--;
  }
  return taken;
}
