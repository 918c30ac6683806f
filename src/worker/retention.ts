import type { Backend } from '../storage/index.js';
import { describeError } from '../errors.js';
import type { AppDatabase } from './app-db.js';
import { objectStem } from './layout.js';
import type { StoredVersion, WorkerState } from './state.js';

export interface RetentionSettings {
  deleteAfterMs: number;
  keepVersions: number;
  /** the bucket of each storage, by name: where a file's copies are */
  buckets: ReadonlyMap<string, string>;
}

export interface RetentionResult {
  /** keys removed from the target */
  removed: string[];
  deletesApplied: number;
  /** removals that failed; tried again next pass */
  problems: string[];
}

/**
 * Which superseded versions of a live file may go at `now`: beyond the newest `keep`, each
 * once `deleteAfter` has passed since a newer version was stored (and since it was stored
 * itself, for a version whose newer one came first). `versions` is newest first; the newest
 * is never among them.
 */
export function supersededDue(versions: readonly StoredVersion[], now: number, s: { deleteAfterMs: number; keepVersions: number }): StoredVersion[] {
  const due: StoredVersion[] = [];
  let newerStoredAt = Number.POSITIVE_INFINITY;
  versions.forEach((v, i) => {
    if (i >= Math.max(1, s.keepVersions) && now >= Math.max(v.storedAt, newerStoredAt) + s.deleteAfterMs) due.push(v);
    newerStoredAt = Math.min(newerStoredAt, v.storedAt);
  });
  return due;
}

/**
 * The newer stored version that makes a version not stored yet (because it failed) worth no
 * more tries: beyond the newest `keep`, with a newer version stored `deleteAfter` ago or more,
 * its copy would be due for removal the moment it was stored. An old version whose URL has
 * expired while the storage holds only the newest content could otherwise fail forever.
 * `newer` is the stored versions above it, newest first.
 */
export function supersededLongAgo(newer: readonly StoredVersion[], now: number, s: { deleteAfterMs: number; keepVersions: number }): StoredVersion | undefined {
  if (newer.length < Math.max(1, s.keepVersions)) return undefined;
  const first = newer.reduce((a, b) => (b.storedAt < a.storedAt ? b : a));
  return now >= first.storedAt + s.deleteAfterMs ? first : undefined;
}

/**
 * Applies the application's deletes whose grace has passed (every copy of the file made
 * before the delete goes) and removes superseded versions that are due. Each object is
 * removed before its record, so a crash between the two only repeats a removal.
 */
export async function applyRetention(state: WorkerState, app: AppDatabase, target: Backend, s: RetentionSettings, now: number, signal: AbortSignal): Promise<RetentionResult> {
  const out: RetentionResult = { removed: [], deletesApplied: 0, problems: [] };
  const remove = async (v: StoredVersion): Promise<boolean> => {
    try {
      await target.remove(v.key, { signal });
      state.removeVersion(v.key);
      out.removed.push(v.key);
      return true;
    } catch (err) {
      if (signal.aborted) throw err;
      out.problems.push(`could not remove ${v.key}: ${describeError(err)}`);
      return false;
    }
  };

  for (const d of state.dueDeletes(now - s.deleteAfterMs)) {
    if (signal.aborted) return out;
    const known = state.row(d.fileId);
    const file = known ?? (await app.filesByIds([d.fileId]))[0];
    if (!file) {
      out.problems.push(`delete log row ${d.id} names file Id ${d.fileId}, which ObjectStorageFiles does not hold; ignored`);
      state.applyDelete(d.id, undefined, d.deletedAt, now);
      continue;
    }
    // copies made of rows created after the delete belong to a file uploaded again
    const gone = state.versionsOf(file.storage, file.path).filter((v) => !(v.createdAt > d.deletedAt));
    let all = true;
    for (const v of gone) all = (await remove(v)) && all;
    if (!all) continue;
    state.applyDelete(d.id, { storage: file.storage, path: file.path }, d.deletedAt, now);
    out.deletesApplied++;
    if (state.versionsOf(file.storage, file.path).length === 0) await releaseFolder(state, target, s, file.storage, file.path);
  }

  for (const f of state.filesWithMoreVersionsThan(s.keepVersions)) {
    if (signal.aborted) return out;
    for (const v of supersededDue(state.versionsOf(f.storage, f.path), now, s)) await remove(v);
  }
  return out;
}

/** A file with no copy left gives up its folder: another file may map to it now, and an empty folder goes. */
async function releaseFolder(state: WorkerState, target: Backend, s: RetentionSettings, storage: string, filePath: string): Promise<void> {
  const bucket = s.buckets.get(storage);
  if (bucket === undefined) return;
  let stem: string;
  try {
    stem = objectStem(bucket, filePath);
  } catch {
    return;
  }
  state.releaseStem(stem, storage, filePath);
  // folders on a disk or WebDAV; S3 has none, and an empty listing there removes nothing
  for (let dir = stem; dir.includes('/'); dir = dir.slice(0, dir.lastIndexOf('/'))) {
    try {
      if ((await target.list(dir)).length > 0) return;
      await target.remove(dir);
    } catch {
      return;
    }
  }
}
