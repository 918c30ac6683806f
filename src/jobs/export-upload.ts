import fs from 'node:fs';
import { Readable } from 'node:stream';
import type { JobConfig, TargetConfig } from '../config/index.js';
import { CerberusError } from '../errors.js';
import { sha256OfStream } from '../fsutil.js';
import { deleteGeneration, formatSums, INCOMPLETE_PREFIX, SUMS } from '../repository/generations.js';
import { hashObject, putBuffer } from '../repository/io.js';
import { acquireLock } from '../repository/lock.js';
import { formatBytes } from '../report/format.js';
import type { Reporter } from '../report/log.js';
import { joinPath, type Backend } from '../storage/backend.js';
import type { OpenTarget } from '../storage/open.js';

/**
 * The yearly archive on the job's targets, at `yearly/<year>/`: cut into parts named as
 * 7-Zip names the volumes of a split archive (`<job>-<year>.7z.001`, …), which 7-Zip opens
 * as they are (`7zz x documents-2026.7z.001`), and a SHA256SUMS written last, as the commit
 * marker of the year. Parts go to `yearly/.incomplete-<year>/` first, so an interrupted
 * upload resumes: a part already there is read back, and kept when its sha256 matches.
 */

export const YEARLY_DIR = 'yearly';

export interface UploadedYear {
  target: string;
  dir: string;
  parts: number;
  resumed: number;
  /** years removed by retention.yearly */
  pruned: string[];
}

/** Refuses early, before any work, when a target already holds the year (unless replacing). */
export async function checkYearFree(job: JobConfig, year: number, replace: boolean, open: OpenTarget): Promise<void> {
  if (replace) return;
  for (const t of job.targets) {
    if (await open(t).stat(joinPath(YEARLY_DIR, String(year), SUMS))) {
      throw new CerberusError('USAGE', `target ${t.name} already holds the export of ${year} (${YEARLY_DIR}/${year}/)`, {
        hint: 'a year is never overwritten silently: pass --replace to send it again',
      });
    }
  }
}

export async function uploadYear(
  job: JobConfig,
  target: TargetConfig,
  archive: string,
  year: number,
  opts: { open: OpenTarget; reporter: Reporter; replace: boolean },
): Promise<UploadedYear> {
  const backend = opts.open(target);
  const lock = await acquireLock(backend, `cerberus export --job ${job.name}`, (m) => opts.reporter.notice(m));
  try {
    const final = joinPath(YEARLY_DIR, String(year));
    const work = backend.capabilities.move ? joinPath(YEARLY_DIR, `${INCOMPLETE_PREFIX}${year}`) : final;
    const base = archive.slice(archive.lastIndexOf('/') + 1);
    const size = fs.statSync(archive).size;
    const partSize = job.volumeSize;
    const count = Math.max(1, Math.ceil(size / partSize));
    await backend.mkdir(work);
    const sums = new Map<string, string>();
    let resumed = 0;
    for (let i = 0; i < count; i++) {
      const name = `${base}.${String(i + 1).padStart(3, '0')}`;
      const start = i * partSize;
      const end = Math.min(size, start + partSize);
      const sha256 = await hashRange(archive, start, end);
      const path = joinPath(work, name);
      const there = await backend.stat(path);
      const reused = there?.size === end - start && (await hashObject(backend, path)).sha256 === sha256;
      if (reused) {
        resumed++;
      } else {
        await backend.put(path, () => fs.createReadStream(archive, { start, end: end - 1, highWaterMark: 1 << 20 }), end - start);
        const after = await backend.stat(path);
        if (after?.size !== end - start) throw new CerberusError('STORAGE', `target ${target.name}: ${path} holds ${after?.size ?? 'nothing'} bytes after the upload, not ${end - start}`);
      }
      sums.set(name, sha256);
      opts.reporter.info(`${target.name}: ${name} (${formatBytes(end - start)}) ${reused ? 'was already there' : 'uploaded'} (${i + 1}/${count})`);
    }
    // a part of an earlier, larger attempt must not linger beside the new ones
    for (const o of await backend.list(work)) if (!o.isDir && !sums.has(o.name) && o.name !== SUMS) await backend.remove(joinPath(work, o.name));
    await backend.flush?.();
    await putBuffer(backend, joinPath(work, SUMS), Buffer.from(formatSums(sums)));
    if (work !== final) {
      if (opts.replace && (await backend.stat(final))) await deleteGeneration(backend, final);
      await backend.move!(work, final);
    }
    const pruned = await pruneYears(backend, job.retention.yearly, year);
    return { target: target.name, dir: final, parts: count, resumed, pruned };
  } finally {
    await lock.release();
  }
}

/** retention.yearly: keep the newest N committed years, the one just made among them. */
async function pruneYears(backend: Backend, keep: number | undefined, made: number): Promise<string[]> {
  if (keep === undefined) return [];
  const years: string[] = [];
  for (const o of await backend.list(YEARLY_DIR)) {
    if (o.isDir && /^\d{4}$/.test(o.name) && (await backend.stat(joinPath(YEARLY_DIR, o.name, SUMS)))) years.push(o.name);
  }
  years.sort();
  const drop = years.slice(0, Math.max(0, years.length - keep)).filter((y) => y !== String(made));
  for (const y of drop) await deleteGeneration(backend, joinPath(YEARLY_DIR, y));
  return drop;
}

function hashRange(file: string, start: number, end: number): Promise<string> {
  // an empty archive part is the one case without a byte to read
  return sha256OfStream(end > start ? fs.createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 }) : Readable.from([]));
}
