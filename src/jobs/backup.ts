import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash } from 'node:crypto';
import type { JobConfig, LocalTargetConfig, TargetConfig } from '../config/index.js';
import { CerberusError, describeError } from '../errors.js';
import { checkGuards } from '../engine/guards.js';
import { chooseLevel, chooseParent, type Level } from '../engine/levels.js';
import { manifestParts, manifestTsv, sameMeta, sortEntries, unchangedFile, type FileEntry, type Manifest, type ManifestEntry } from '../engine/manifest.js';
import { matchesStat, StateCache, type HashRecord } from '../engine/state-cache.js';
import { RESERVED_DIR, statEntry, type SourceEntry } from '../engine/walk.js';
import { sealFile, volumeWriter, type Compression, type Sealing, type VolumeWriter } from '../formats/openpgp/message.js';
import { TarPacker } from '../formats/tar.js';
import { readWhole, SMALL_FILE, writeParts } from '../fsutil.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { GenerationWriter, INFO, MANIFEST, type Generation, type GenerationInfo, type RepositoryListing } from '../repository/generations.js';
import { sha256Hex } from '../repository/io.js';
import { acquireLock, type HeldLock } from '../repository/lock.js';
import { fileBody, type Backend } from '../storage/index.js';
import { formatBytes } from '../report/format.js';
import { PhaseLog } from '../report/phases.js';
import { UPLOAD_PHASE } from '../report/run-report.js';
import { archiveLargeFile, archiveStreamedFile, headerFields, readBuffers, type ArchivedFile } from './archive-file.js';
import { openJobSource, type JobSource } from './job-source.js';
import { checkRecipients, openpgpOf, sealingFor } from './keys.js';
import { backupStatus, changeCounter, finishTarget, isRunFatal, listForRun, targetFailure, type BackupOptions, type BackupResult, type BackupStats, type TargetBackupResult } from './backup-finish.js';
import { runVaultBackup } from './vault-backup.js';
import { checkDumpFolder, dropDumpFolder, dumpDatabase, dumpDirEntry, dumpPath, DUMP_DIR } from './database-files.js';
import { BackupHooks } from './backup-hooks.js';
import { runStageBackup } from './stage-backup.js';
import { replicateStages } from './replicate.js';
import { VERSION } from '../version.js';

export type { BackupOptions, BackupResult, BackupStats, TargetBackupResult };
export { backupStatus };

/** One backup run of a job, with its hooks around it. */
export async function runBackup(job: JobConfig, opts: BackupOptions): Promise<BackupResult> {
  const phases = opts.phases ?? new PhaseLog();
  const hooks = new BackupHooks(job, { reporter: opts.reporter, phases, env: opts.env ?? process.env, dryRun: opts.dryRun });
  const inner = { ...opts, phases, hooks };
  const work = runEngines(job, inner);
  let result: BackupResult;
  try {
    if (opts.interrupted) {
      // an interrupted run's own work is abandoned where it stands (nothing is committed half)
      work.catch(() => undefined);
      result = await Promise.race([work, opts.interrupted]);
    } else {
      result = await work;
    }
  } catch (err) {
    await hooks.finish('failed', err);
    throw err;
  }
  await hooks.finish(backupStatus(result));
  return hooks.outcomes.length > 0 ? { ...result, hooks: hooks.outcomes } : result;
}

/**
 * Plain stages first (the fast local copy), then the encrypted targets, each by its engine.
 * With `stages`, the later stages are not written from the source but copied from the first.
 */
async function runEngines(job: JobConfig, opts: BackupOptions): Promise<BackupResult> {
  const later = new Set(opts.replica ? [] : (job.stages ?? []).slice(1));
  const direct = job.targets.filter((t) => !later.has(t.name));
  const stages = direct.filter((t): t is LocalTargetConfig => kindFor(job, t) === 'plain');
  const rest = { ...job, targets: direct.filter((t) => kindFor(job, t) !== 'plain') };
  const staged = stages.length > 0 ? await runStageBackup(job, stages, opts, rest.targets.length === 0) : [];
  const encrypted = rest.targets.length === 0 ? [] : job.encryption.kind === 'cryptomator' ? (await runVaultBackup(rest, job.encryption, opts)).targets : (await runOpenpgpBackup(rest, opts)).targets;
  const replicated = later.size > 0 ? await replicateStages(job, opts, runEngines) : [];
  const all = [...staged, ...encrypted, ...replicated];
  return { job: job.name, targets: job.targets.map((t) => all.find((r) => r.target === t.name)!) };
}

async function runOpenpgpBackup(job: JobConfig, opts: BackupOptions): Promise<BackupResult> {
  const phases = opts.phases ?? new PhaseLog();
  const { sealing, recipients } = await sealingFor(job);
  const failed = new Map<string, string>();
  const fail = (target: string, err: unknown) => {
    const why = targetFailure(target, err);
    opts.reporter.warn(`target ${target}: ${why}`);
    failed.set(target, why);
  };
  const plans: TargetPlan[] = [];
  const results = new Map<string, TargetBackupResult>();
  let source: JobSource | undefined;
  try {
    for (const target of job.targets) {
      try {
        plans.push(await phases.time('plan', target.name, () => planTarget(job, target, recipients, opts)));
      } catch (err) {
        if (isRunFatal(err)) throw err;
        fail(target.name, err);
      }
    }
    if (plans[0]) await opts.hooks?.planned(plans[0].level, plans[0].id);
    if (plans.length > 0) source = await openJobSource(job, opts);
    // one encryption per distinct parent, streamed to every target that shares it
    const groups = groupByParent(plans);
    for (const [i, group] of groups.entries()) {
      const first = group[0]!;
      opts.reporter.phase(
        `${opts.dryRun ? '[dry run] ' : ''}backup ${job.name} → ${group.map((p) => p.target.name).join(', ')}: ${first.level} ${first.id}` +
          (first.parentGen ? ` (differential against ${first.parentGen.level}/${first.parentGen.id})` : ' (full)'),
      );
      let run: Produced;
      const outcomes = new Map<string, TargetOutcome>(group.map((p) => [p.target.name, { suspicious: [], changedFiles: 0 }]));
      const started = Date.now();
      // one encryption for the group: each target's test case gets its time and its own outcome
      const record = (err?: unknown) => {
        for (const p of group) {
          const own = outcomes.get(p.target.name)?.error ?? err;
          phases.record(UPLOAD_PHASE, p.target.name, Date.now() - started, own === undefined ? undefined : describeError(own));
        }
      };
      try {
        run = await produceGeneration({ job, plans: group, sealing, opts, outcomes, lastRead: i === groups.length - 1, source: source! });
        record();
      } catch (err) {
        record(err);
        if (isRunFatal(err)) throw err;
        for (const p of group) fail(p.target.name, outcomes.get(p.target.name)?.error ?? err);
        continue;
      }
      try {
        for (const p of group) {
          const outcome = run.outcomes.get(p.target.name);
          if (outcome?.error !== undefined) {
            fail(p.target.name, outcome.error);
            continue;
          }
          try {
            results.set(p.target.name, await finishTarget(job, { ...p, parent: p.parentGen?.id ?? null }, run, outcome, opts));
          } catch (err) {
            if (isRunFatal(err)) throw err;
            fail(p.target.name, err);
          }
        }
      } finally {
        await fsp.rm(run.spool, { recursive: true, force: true });
      }
    }
  } finally {
    await source?.close();
    for (const p of plans) await p.lock?.release();
  }
  const targets = job.targets.map(
    (t): TargetBackupResult =>
      results.get(t.name) ?? { target: t.name, status: 'failed', suspicious: [], problems: [], pruned: [], error: failed.get(t.name) ?? 'not attempted' },
  );
  return { job: job.name, targets };
}

/** Volumes smaller than this are not worth a log line each. */
const UPLOAD_LOG_BYTES = 8 * 2 ** 20;


/** What one target needs for this run: its repository, lock, chain position and parent. */
interface TargetPlan {
  target: TargetConfig;
  backend: Backend;
  lock: HeldLock | undefined;
  cache: StateCache;
  listing: RepositoryListing;
  id: string;
  level: Level;
  parentGen: Generation | undefined;
  parent: Manifest | undefined;
  /** the newest generation, what guards and "changed" compare against: its manifest is loaded only after the walk */
  newestId: string | undefined;
}

async function planTarget(
  job: JobConfig,
  target: TargetConfig,
  recipients: Awaited<ReturnType<typeof sealingFor>>['recipients'],
  opts: BackupOptions,
): Promise<TargetPlan> {
  const { reporter } = opts;
  const backend = opts.open(target);
  const descriptor = await requireDescriptor(backend, target.name, 'openpgp');
  checkRecipients(descriptor, recipients, openpgpOf(job).passphrase !== undefined, target.name);
  const lock = opts.dryRun ? undefined : await acquireLock(backend, `cerberus backup --job ${job.name}`, (m) => reporter.notice(m));
  try {
    const cache = new StateCache(opts.stateDir, job.name, descriptor.id);
    const { listing, newest, id, trusted } = await listForRun(backend, target.name, opts.now);
    let level = chooseLevel(opts.now, trusted, job.timezone);
    let parentGen = chooseParent(level, trusted);
    let parent: Manifest | undefined;
    if (parentGen) {
      parent = await cache.loadManifest(parentGen.id);
      if (!parent) {
        reporter.info(`${target.name}: the state cache does not know ${parentGen.level}/${parentGen.id}, so this generation is a new full (quarterly) one`);
        level = 'quarterly';
        parentGen = undefined;
      }
    }
    return { target, backend, lock, cache, listing, id, level, parentGen, parent, newestId: newest?.id };
  } catch (err) {
    await lock?.release();
    throw err;
  }
}

/** A digest of what a manifest says about the source, without one string of all of it. */
function contentDigest(m: Manifest): string {
  const h = createHash('sha256');
  for (const e of m.entries) h.update(JSON.stringify(e));
  return h.digest('hex');
}

/** Targets whose next generation has the same level and the same parent content. */
function groupByParent(plans: TargetPlan[]): TargetPlan[][] {
  if (plans.length <= 1) return plans.length === 1 ? [plans] : [];
  const groups = new Map<string, TargetPlan[]>();
  for (const p of plans) {
    const key = `${p.level} ${p.parent ? `${p.parent.id} ${p.parent.chain.join(',')} ${contentDigest(p.parent)}` : 'none'}`;
    const g = groups.get(key);
    if (g) g.push(p);
    else groups.set(key, [p]);
  }
  return [...groups.values()];
}

interface ProduceInput {
  job: JobConfig;
  /** targets that share level and parent */
  plans: TargetPlan[];
  sealing: Sealing;
  opts: BackupOptions;
  /** filled in per target as the group's writes succeed or fail */
  outcomes: Map<string, TargetOutcome>;
  /** no later group reads the source: its end is the snapshot's */
  lastRead: boolean;
  source: JobSource;
}

interface TargetOutcome {
  /** the committed generation, as a listing would show it; undefined in a dry run or on failure */
  generation?: Generation;
  suspicious: string[];
  /** files whose content differs from this target's previous state */
  changedFiles: number;
  error?: unknown;
}

interface Produced {
  manifest: Manifest;
  /** the manifest's JSON, in a file of `spool` */
  manifestJson?: { from: string };
  /** the run's scratch folder, for the caller to remove once the targets are finished */
  spool: string;
  hashes: Map<string, HashRecord>;
  problems: string[];
  unreadable: number;
  stats: BackupStats;
  outcomes: Map<string, TargetOutcome>;
}

/** Looks a path up once and forgets it: the walk visits each path once, and the old indexes shrink as the new state grows. */
function take<K, V>(map: Map<K, V>, key: K): V | undefined {
  const v = map.get(key);
  map.delete(key);
  return v;
}

/** Walks the source, streams what changed since the parent into one encrypted tar, commits. */
async function produceGeneration(input: ProduceInput): Promise<Produced> {
  const { job, plans, sealing, opts, outcomes, source } = input;
  const { level, id, cache } = plans[0]!;
  let parent = plans[0]!.parent;
  const { reporter } = opts;
  const compression: Compression = openpgpOf(job).compression;
  const parentIndex = new Map<string, ManifestEntry>((parent?.entries ?? []).map((e) => [e.path, e]));
  const parentChildren = new Map<string, ManifestEntry[]>();
  for (const e of parent?.entries ?? []) {
    const dir = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    const list = parentChildren.get(dir);
    if (list) list.push(e);
    else parentChildren.set(dir, [e]);
  }
  const oldHashes = opts.replica?.hashes ?? (opts.rehash || job.source.rehash ? new Map<string, HashRecord>() : await cache.loadHashes());
  const hashes = new Map<string, HashRecord>();
  const entries: ManifestEntry[] = [];
  const seen = new Map<string, ManifestEntry['type']>();
  const problems: string[] = [];
  const rootsMissing: string[] = [];
  let unreadable = 0;
  const stats: BackupStats = {
    files: 0, dirs: 0, symlinks: 0, bytes: 0, storedFiles: 0, storedBytes: 0, deleted: 0, changedFiles: 0, uploadedBytes: 0,
  };

  // progress: every file visited counts, stored or not; totals come from a parallel count
  const visited = { files: 0, bytes: 0 };
  const totals = { files: 0, bytes: 0, done: false };
  const countWalk = source.count;
  if (reporter.interactive && countWalk) {
    void (async () => {
      for await (const ev of countWalk()) {
        if (ev.kind === 'entry' && ev.entry.type === 'file') {
          totals.files++;
          totals.bytes += ev.entry.size;
        }
      }
      totals.done = true;
    })().catch(() => undefined);
  }
  const tick = () =>
    reporter.progress({
      files: visited.files,
      bytes: visited.bytes,
      ...(totals.done ? { totalFiles: totals.files, totalBytes: totals.bytes } : {}),
    });

  const problem = (msg: string) => {
    problems.push(msg);
    reporter.warn(msg);
  };

  // tar → OpenPGP → volumes (spooled once) → every target of the group. Files are read into
  // reused buffers and handed on synchronously: no stream between a read and its encryption.
  const spool = await cache.scratch();
  const writers = new TargetWriters(plans, level, id, outcomes);
  let message: VolumeWriter | undefined;
  let tar: TarPacker | undefined;
  if (!opts.dryRun) {
    await writers.each((w) => w.begin());
    const m = await volumeWriter({
      spoolDir: spool,
      volumeSize: job.volumeSize,
      sealing,
      compression,
      onVolume: async (v) => {
        const started = Date.now();
        // one target: the spooled volume is its own, to link where the file system allows
        const handOver = writers.names().length === 1;
        await writers.each((w) => w.put(v.name, fileBody(v.file), v.size, v.sha256, { handOver }));
        stats.uploadedBytes += v.size;
        const secs = Math.max((Date.now() - started) / 1000, 0.001);
        // a line per volume: on a slow uplink this is the only sign of life between files
        if (v.size >= UPLOAD_LOG_BYTES) {
          reporter.info(`stored ${v.name} (${formatBytes(v.size)}) on ${writers.names().join(', ')} in ${secs.toFixed(1)} s, ${formatBytes(v.size / secs)}/s`);
        }
        await fsp.rm(v.file, { force: true });
      },
    });
    message = m;
    tar = new TarPacker((b) => m.write(b));
  }

  /** dirs being walked, each with "something below me is in this archive" */
  const open: boolean[] = [];
  const markChanged = () => {
    if (open.length > 0) open[open.length - 1] = true;
  };

  const carryOver = (prefix: string) => {
    for (const e of parent?.entries ?? []) {
      if ((e.path === prefix || e.path.startsWith(prefix + '/') || prefix === '') && !seen.has(e.path)) {
        entries.push(e);
        seen.set(e.path, e.type);
        count(e);
      }
    }
  };
  const count = (e: ManifestEntry) => {
    if (e.type === 'file') {
      stats.files++;
      stats.bytes += e.size;
    } else if (e.type === 'dir') stats.dirs++;
    else stats.symlinks++;
  };

  let smallBuffer: Buffer | undefined;
  let largeBuffers: [Buffer, Buffer] | undefined;
  const stored = (bytes: number) => {
    stats.storedBytes += bytes;
    visited.bytes += bytes;
    tick();
  };

  /** Reads a file into the archive; undefined when it is gone. */
  /** `from` reads a remote file; null for a file on this machine (the source's, or a dump) */
  const storeFile = async (e: SourceEntry, from: JobSource['read'] | null = source.read ?? null): Promise<FileEntry | undefined> => {
    for (let attempt = 1; ; attempt++) {
      let got: ArchivedFile | undefined;
      // a remote file is read once: a second read would need a second listing to know its size
      const tries = from ? 1 : 2;
      if (from) {
        got = await archiveStreamedFile(e, () => from(e), tar!, message!, stored);
        if (!got) return undefined;
      } else {
        const read = e.size <= SMALL_FILE ? readWhole(e.abs, (smallBuffer ??= Buffer.allocUnsafe(SMALL_FILE + 1))) : 'stream';
        if (read === 'gone') return undefined;
        if (read === 'stream') {
          got = await archiveLargeFile(e, tar!, message!, stored, (largeBuffers ??= readBuffers()));
          if (!got) return undefined;
        } else {
          const { data, before } = read;
          const fields = headerFields(e, before);
          tar!.file(fields, data);
          stored(data.length);
          got = { ...fields, size: data.length, ctimeNs: before.ctimeNs.toString(), sha256: createHash('sha256').update(data).digest('hex'), stable: read.stable };
          await message!.ready();
        }
      }
      if (!got.stable && attempt < tries) continue; // the later copy in the archive wins on extraction
      if (!got.stable) problem(`${e.abs} changed while it was read${tries > 1 ? ' (twice)' : ''}; the stored copy may be inconsistent`);
      const { size, mtimeNs, mode, sha256 } = got;
      hashes.set(e.abs, { size, mtimeNs, ctimeNs: got.ctimeNs, ino: e.ino, sha256 });
      return { path: e.path, type: 'file', size, mtimeNs, mode, uid: e.uid, gid: e.gid, sha256, holder: id };
    }
  };

  const walkAll = async () => {
    for await (const ev of source.walk()) {
      switch (ev.kind) {
        case 'missing-root':
          rootsMissing.push(ev.abs);
          break;
        case 'skipped':
          problem(`skipped ${ev.abs}: ${ev.reason} (add it to source.exclude to silence this)`);
          break;
        case 'error':
          unreadable++;
          problem(`cannot read ${ev.abs}: ${ev.error.code ?? ev.error.message}; its last backed-up state is kept`);
          carryOver(ev.path);
          markChanged();
          break;
        case 'enter':
          open.push(false);
          break;
        case 'leave': {
          const below = open.pop() ?? false;
          const e = ev.entry;
          const p = take(parentIndex, e.path);
          let changed = below || !p || !sameMeta(p, e);
          if (!changed && p) {
            // a child gone since the parent also changes this folder
            changed = (take(parentChildren, e.path) ?? []).some((c) => seen.get(c.path) !== c.type);
          }
          const entry: ManifestEntry = { path: e.path, type: 'dir', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid };
          if (changed) {
            if (!opts.dryRun) {
              tar!.header({ path: e.path, type: 'directory', mode: e.mode, mtimeNs: e.mtimeNs, size: 0, uid: e.uid, gid: e.gid });
              await message!.ready();
            }
            markChanged();
          }
          if (!seen.has(e.path)) {
            // an unreadable folder was already carried over from the parent, itself included
            entries.push(entry);
            seen.set(e.path, 'dir');
            count(entry);
          }
          break;
        }
        case 'entry': {
          const e = ev.entry;
          const p = take(parentIndex, e.path);
          if (e.type === 'symlink') {
            const entry: ManifestEntry = { path: e.path, type: 'symlink', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, target: e.target ?? '' };
            if (!p || p.type !== 'symlink' || p.target !== entry.target || !sameMeta(p, e)) {
              if (!opts.dryRun) {
                tar!.header({ path: e.path, type: 'symlink', mode: e.mode, mtimeNs: e.mtimeNs, size: 0, uid: e.uid, gid: e.gid, linkTarget: entry.target });
                await message!.ready();
              }
              markChanged();
            }
            entries.push(entry);
            seen.set(e.path, 'symlink');
            count(entry);
            break;
          }
          // a regular file
          const cached = take(oldHashes, e.abs);
          const known = matchesStat(cached, e) ? cached : undefined;
          const unchanged = unchangedFile(p, e, known?.sha256);
          let entry: FileEntry | undefined;
          visited.files++;
          if (unchanged && known) {
            entry = unchanged;
            hashes.set(e.abs, known);
            visited.bytes += e.size;
            tick();
          } else if (opts.dryRun) {
            stats.storedFiles++;
            stats.storedBytes += e.size;
            markChanged();
            entry = { path: e.path, type: 'file', size: e.size, mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, sha256: known?.sha256 ?? '0'.repeat(64), holder: id };
          } else {
            try {
              entry = await storeFile(e);
            } catch (err) {
              const code = (err as NodeJS.ErrnoException).code;
              if (code === 'EACCES' || code === 'EPERM' || code === 'EIO' || code === 'ENXIO') {
                unreadable++;
                problem(`cannot read ${e.abs}: ${code}${p?.type === 'file' ? '; its last backed-up version is kept' : ''}`);
                if (p?.type === 'file') {
                  entries.push(p);
                  seen.set(p.path, 'file');
                  count(p);
                }
                continue;
              }
              throw err;
            }
            if (!entry) break; // vanished while we walked
            stats.storedFiles++;
            markChanged();
          }
          entries.push(entry);
          seen.set(e.path, 'file');
          count(entry);
          break;
        }
      }
    }
  };

  /** this run's dumps: always stored, and kept out of the guards' change count */
  const dumps: FileEntry[] = [];
  const add = (e: ManifestEntry) => {
    entries.push(e);
    seen.set(e.path, e.type);
    count(e);
  };

  /**
   * The databases' dumps, part of the snapshot (before afterSnapshot). A tar header needs the
   * size first, so each is spooled into the run's private scratch folder (0700, in the state
   * dir, never /tmp), archived from there as any file is, and removed at once.
   */
  const storeDumps = async () => {
    await checkDumpFolder(job);
    if (seen.has(DUMP_DIR)) for (const e of dropDumpFolder(entries, stats)) seen.delete(e.path);
    const dir = dumpDirEntry();
    if (opts.dryRun) reporter.info(`[dry run] not dumping database ${job.source.databases.map((d) => d.name).join(', ')}: a dry run reads no database`);
    const stop = new AbortController();
    opts.interrupted?.catch(() => stop.abort());
    for (const [i, db] of job.source.databases.entries()) {
      const at = dumpPath(db);
      let entry: FileEntry | undefined;
      if (opts.dryRun) {
        const last = parentIndex.get(at);
        const size = last?.type === 'file' ? last.size : 0;
        entry = { path: at, type: 'file', size, mtimeNs: dir.mtimeNs, mode: 0o600, uid: dir.uid, gid: dir.gid, sha256: '0'.repeat(64), holder: id };
        stats.storedBytes += size;
      } else {
        const file = path.join(spool, `database-${i}.dump`);
        try {
          const dumped = await dumpDatabase(db, file, { privateDir: spool, reporter, env: opts.env ?? process.env, signal: stop.signal });
          const e = await statEntry(at, file);
          entry = typeof e === 'string' ? undefined : await storeFile(e, null);
          hashes.delete(file); // the spool file is no source file: the next run must not know it
          if (!entry || entry.size !== dumped.size || entry.sha256 !== dumped.sha256) {
            throw new CerberusError('INTEGRITY', `the dump of database ${db.name} changed in ${spool} before it was archived`, {
              hint: 'nothing else may write to the state dir while a backup runs',
            });
          }
        } finally {
          await fsp.rm(file, { force: true });
        }
      }
      stats.storedFiles++;
      visited.files++;
      dumps.push(entry);
      add(entry);
    }
    // after its files, as the walk does, so that extracting them leaves its time as stored
    if (!opts.dryRun) {
      tar!.header({ path: DUMP_DIR, type: 'directory', mode: dir.mode, mtimeNs: dir.mtimeNs, size: 0, uid: dir.uid, gid: dir.gid });
      await message!.ready();
    }
    add({ path: DUMP_DIR, type: 'dir', mtimeNs: dir.mtimeNs, mode: dir.mode, uid: dir.uid, gid: dir.gid });
  };

  try {
    // a source with its own top-level databases fails before anything is read or sent
    if (job.source.databases.length > 0) await checkDumpFolder(job);
    await walkAll();
    if (job.source.databases.length > 0) await storeDumps();
    if (input.lastRead) await opts.hooks?.sourceRead();
    const deleted = (parent?.entries ?? []).filter((e) => seen.get(e.path) !== e.type).map((e) => e.path);
    stats.deleted = deleted.length;
    // the walk's indexes are done with: tens of megabytes for a big source, and the peak
    // of a run comes after this point (the manifest and the hash cache written out)
    parentIndex.clear();
    parentChildren.clear();
    oldHashes.clear();
    seen.clear();
    sortEntries(entries);
    // the real clock, not --now: tar warns about times in the future
    const own = { mode: 0o644, mtimeNs: (BigInt(Date.now()) * 1_000_000n).toString(), uid: 0, gid: 0 };
    const manifest: Manifest = {
      format: 1,
      job: job.name,
      id,
      level,
      parent: parent?.id ?? null,
      chain: [...(parent?.chain ?? []), id],
      createdAt: opts.now.toISOString(),
      roots: opts.replica?.roots ?? source.roots,
      entries,
      stats: {
        files: stats.files, dirs: stats.dirs, symlinks: stats.symlinks, bytes: stats.bytes,
        storedFiles: stats.storedFiles, storedBytes: stats.storedBytes, deleted: stats.deleted,
      },
    };
    if (!opts.dryRun) {
      tar!.file({ ...own, path: `${RESERVED_DIR}/deleted.txt` }, Buffer.from(deleted.map((p) => p + '\0').join('')));
      tar!.file({ ...own, path: `${RESERVED_DIR}/manifest.tsv` }, manifestTsv(entries));
      tar!.finish();
      await message!.end();
    }
    reporter.endProgress();

    for (const p of plans) {
      const outcome = outcomes.get(p.target.name)!;
      // the newest generation is often not the parent: its entries are streamed from the cache
      // and counted, never all in memory beside the new manifest
      const counter = changeCounter(manifest);
      // a dump differs every run: the report counts it as changed, the mass-change guard does
      // not (a small source with a database would look encrypted by ransomware every night)
      const dumpCounter = changeCounter({ ...manifest, entries: dumps });
      const see = (e: ManifestEntry) => {
        counter.see(e);
        dumpCounter.see(e);
      };
      const previous =
        p.newestId === undefined ? undefined : p.newestId === parent?.id ? parent : await p.cache.loadManifest(p.newestId, see);
      if (previous === parent) for (const e of parent?.entries ?? []) see(e);
      outcome.changedFiles = previous ? counter.count : 0;
      outcome.suspicious = checkGuards(
        {
          rootsMissing,
          current: { files: stats.files, bytes: stats.bytes },
          previous: previous ? { files: previous.stats.files, bytes: previous.stats.bytes } : undefined,
          changedFiles: outcome.changedFiles - (previous ? dumpCounter.count : 0),
        },
        job.guards,
      );
    }
    // the parent's manifest is done with: the rest of the run writes the new one and the hash
    // cache, and a big source's are tens of megabytes each
    parent = undefined;
    for (const p of plans) p.parent = undefined;
    reporter.info(
      `${stats.files} files (${formatBytes(stats.bytes)}), ${stats.storedFiles} stored (${formatBytes(stats.storedBytes)}), ${stats.deleted} deleted since the parent`,
    );
    if (opts.dryRun) return { manifest, hashes, problems, unreadable, stats, outcomes, spool };

    // the manifest (megabytes for a big source) goes through files in the spool, never whole
    // in memory: the end of a run, with the hash cache still to write, was its peak
    const manifestFile = path.join(spool, 'manifest.json');
    await writeParts(manifestFile, manifestParts(manifest));
    const sealed = await sealFile(manifestFile, path.join(spool, MANIFEST), sealing, compression);
    await writers.each((w) => w.put(MANIFEST, fileBody(sealed.file), sealed.size, sealed.sha256));
    await writers.each(async (w, p) => {
      const info: GenerationInfo = {
        format: 1,
        kind: 'openpgp',
        id,
        level,
        parent: manifest.parent,
        chain: manifest.chain,
        chainDirs: chainDirsOf(manifest.chain, p.listing.committed, p.backend, level, id),
        createdAt: manifest.createdAt,
        suspicious: outcomes.get(p.target.name)!.suspicious,
        volumes: message!.volumes.length,
        stats: { files: stats.files, bytes: stats.bytes, storedFiles: stats.storedFiles, storedBytes: stats.storedBytes },
        createdBy: `cerberus ${VERSION}`,
      };
      const infoBytes = Buffer.from(JSON.stringify(info, null, 2) + '\n');
      await w.putBuffer(INFO, infoBytes, sha256Hex(infoBytes));
      reporter.phase(`committing ${level}/${id} on ${p.target.name} (${p.backend.description})`);
      await w.commit();
      outcomes.get(p.target.name)!.generation = {
        id,
        level,
        dir: w.finalDir,
        parent: manifest.parent,
        info,
        files: w.written,
        storedSize: w.written.reduce((s, f) => s + f.size, 0),
        sums: w.sums,
      };
    });
    return { manifest, manifestJson: { from: manifestFile }, hashes, problems, unreadable, stats, outcomes, spool };
  } catch (err) {
    await message?.abort();
    if (!opts.dryRun) await writers.abortAll();
    await fsp.rm(spool, { recursive: true, force: true });
    throw err;
  }
}

/** `level/id` of each generation of the chain, for RESTORE.md's shell loop. */
function chainDirsOf(chain: string[], committed: Generation[], backend: Backend, level: Level, id: string): string {
  const byId = new Map(committed.map((g) => [g.id, g.level]));
  return chain
    .map((c) => {
      const l = c === id ? level : byId.get(c);
      if (!l) throw new CerberusError('INTEGRITY', `generation ${c} of this chain is missing on ${backend.description}`);
      return `${l}/${c}`;
    })
    .join(' ');
}


/**
 * The group's generation writers. A target that fails drops out (its partial write is
 * removed) and the others go on; when none is left, the run's work stops.
 */
class TargetWriters {
  private readonly live: Array<{ plan: TargetPlan; writer: GenerationWriter }>;

  constructor(
    plans: TargetPlan[],
    level: Level,
    id: string,
    private readonly outcomes: Map<string, TargetOutcome>,
  ) {
    this.live = plans.map((plan) => ({ plan, writer: new GenerationWriter(plan.backend, level, id) }));
  }

  async each(fn: (w: GenerationWriter, plan: TargetPlan) => Promise<void>): Promise<void> {
    const settled = await Promise.allSettled(this.live.map(({ writer, plan }) => fn(writer, plan)));
    const failed = this.live.filter((_, i) => settled[i]!.status === 'rejected');
    settled.forEach((r, i) => {
      if (r.status === 'rejected') this.outcomes.get(this.live[i]!.plan.target.name)!.error = r.reason;
    });
    for (const f of failed) {
      this.live.splice(this.live.indexOf(f), 1);
      await f.writer.abort();
    }
    if (this.live.length === 0) {
      const first = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      throw first?.reason ?? new CerberusError('INTERNAL', 'no target left to write to');
    }
  }

  names(): string[] {
    return this.live.map(({ plan }) => plan.target.name);
  }

  async abortAll(): Promise<void> {
    await Promise.all(this.live.map(({ writer }) => writer.abort()));
  }
}
