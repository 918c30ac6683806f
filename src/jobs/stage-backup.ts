import fsp from 'node:fs/promises';
import path from 'node:path';
import type { JobConfig, LocalTargetConfig } from '../config/index.js';
import { CerberusError, describeError, ioError } from '../errors.js';
import { chooseLevel } from '../engine/levels.js';
import { manifestBytes, parseManifest, type FileEntry, type Manifest } from '../engine/manifest.js';
import { StateCache } from '../engine/state-cache.js';
import { requireDescriptor } from '../repository/descriptor.js';
import { GenerationWriter, INFO, PLAIN_FILES, PLAIN_MANIFEST, type Generation } from '../repository/generations.js';
import { readPieces, sha256Hex } from '../repository/io.js';
import { acquireLock } from '../repository/lock.js';
import { joinPath, syncFileSystem, type Backend } from '../storage/index.js';
import { formatBytes } from '../report/format.js';
import { PhaseLog } from '../report/phases.js';
import { UPLOAD_PHASE } from '../report/run-report.js';
import { nsSeconds, sha256OfFile } from '../fsutil.js';
import { finishTarget, isRunFatal, listForRun, standaloneGuards, standaloneInfo, standaloneManifest, targetFailure, type BackupOptions, type TargetBackupResult } from './backup-finish.js';
import { checkDumpFolder, dropDumpFolder, dumpDatabase, dumpDirEntry, dumpPath, DUMP_DIR } from './database-files.js';
import { writeStageTree, type StageTree } from './stage-tree.js';

/**
 * A backup into a plain stage (a local target with `snapshots: hardlink`): every generation is
 * the source as a browsable folder tree, `<level>/<id>/files/`, with unchanged files hard links
 * to the generation before. Each generation stands alone (no chain), so retention may delete
 * any of them; the disk holds one copy of each distinct file version.
 */
export async function runStageBackup(job: JobConfig, targets: LocalTargetConfig[], opts: BackupOptions, lastRead: boolean): Promise<TargetBackupResult[]> {
  const out: TargetBackupResult[] = [];
  for (const [i, target] of targets.entries()) {
    try {
      out.push(await stageTarget(job, target, opts, lastRead && i === targets.length - 1));
    } catch (err) {
      if (isRunFatal(err)) throw err;
      const error = targetFailure(target.name, err);
      opts.reporter.warn(`target ${target.name}: ${error}`);
      out.push({ target: target.name, status: 'failed', suspicious: [], problems: [], pruned: [], error });
    }
  }
  return out;
}

async function stageTarget(job: JobConfig, target: LocalTargetConfig, opts: BackupOptions, lastRead: boolean): Promise<TargetBackupResult> {
  const { reporter } = opts;
  const phases = opts.phases ?? new PhaseLog();
  const backend = opts.open(target);
  const plan = await phases.time('plan', target.name, async () => {
    const descriptor = await requireDescriptor(backend, target.name, 'plain');
    const lock = opts.dryRun ? undefined : await acquireLock(backend, `cerberus backup --job ${job.name}`, (m) => reporter.notice(m));
    try {
      const { listing, newest, id, trusted } = await listForRun(backend, target.name, opts.now);
      const previous = newest ? await readPlainManifest(backend, newest, target.name).catch((err: unknown) => {
        reporter.warn(`${target.name}: cannot read the manifest of ${newest.level}/${newest.id} (${describeError(err)}), so every file is copied anew`);
        return undefined;
      }) : undefined;
      return { cache: new StateCache(opts.stateDir, job.name, descriptor.id), lock, listing, newest, id, level: chooseLevel(opts.now, trusted, job.timezone), previous };
    } catch (err) {
      await lock?.release();
      throw err;
    }
  });
  const { cache, lock, listing, newest, id, level, previous } = plan;
  try {
    reporter.phase(
      `${opts.dryRun ? '[dry run] ' : ''}backup ${job.name} → ${target.name}: ${level} ${id} (plain folder tree` +
        (previous && newest ? `, unchanged files linked to ${newest.level}/${newest.id})` : ', whole)'),
    );
    const oldHashes = opts.rehash ? new Map() : await cache.loadHashes();
    await opts.hooks?.planned(level, id);
    const started = Date.now();
    const writer = new GenerationWriter(backend, level, id);
    let generation: Generation | undefined;
    let manifest: Manifest;
    let tree: Awaited<ReturnType<typeof writeStageTree>>;
    let suspicious: string[];
    let changedFiles: number;
    let manifestJson: Buffer | undefined;
    try {
      if (!opts.dryRun) await writer.begin();
      const dest = opts.dryRun ? undefined : path.join(target.path, ...writer.workDir.split('/'), PLAIN_FILES);
      if (dest !== undefined) await backend.mkdir(joinPath(writer.workDir, PLAIN_FILES));
      if (job.source.databases.length > 0) await checkDumpFolder(job);
      tree = await writeStageTree({
        job,
        dest,
        previous: previous && newest ? { manifest: previous, files: path.join(target.path, ...newest.dir.split('/'), PLAIN_FILES) } : undefined,
        oldHashes,
        id,
        reporter,
      });
      const dumps = job.source.databases.length > 0 ? await stageDumps(job, dest, tree, id, opts, cache) : [];
      if (lastRead) await opts.hooks?.sourceRead();
      const { stats } = tree;
      manifest = standaloneManifest(job, opts, level, id, tree.entries, stats);
      ({ changedFiles, suspicious } = await standaloneGuards(job, manifest, previous, tree.rootsMissing, new Set(dumps.map((d) => d.path))));
      reporter.info(
        `${stats.files} files (${formatBytes(stats.bytes)}): ${stats.storedFiles} copied (${formatBytes(stats.storedBytes)}), ${tree.linked} linked, ${stats.deleted} deleted since the last generation`,
      );
      if (!opts.dryRun) {
        // the tree's files were written without a sync each: one syncfs before the commit marker
        await syncFileSystem(dest!).catch((err: unknown) => {
          throw ioError(err, `cannot sync ${target.path} to its disk`);
        });
        manifestJson = manifestBytes(manifest);
        await writer.putBuffer(PLAIN_MANIFEST, manifestJson, sha256Hex(manifestJson));
        const info = standaloneInfo('plain', manifest, suspicious, { files: stats.files, bytes: stats.bytes, storedFiles: stats.storedFiles, storedBytes: stats.storedBytes });
        const infoBytes = Buffer.from(JSON.stringify(info, null, 2) + '\n');
        await writer.putBuffer(INFO, infoBytes, sha256Hex(infoBytes));
        reporter.phase(`committing ${level}/${id} on ${target.name} (${backend.description})`);
        await writer.commit();
        generation = {
          id, level, dir: writer.finalDir, parent: null, info, files: writer.written, storedSize: writer.written.reduce((n, f) => n + f.size, 0), sums: writer.sums,
        };
      }
      phases.record(UPLOAD_PHASE, target.name, Date.now() - started);
    } catch (err) {
      phases.record(UPLOAD_PHASE, target.name, Date.now() - started, describeError(err));
      if (!opts.dryRun) await writer.abort();
      throw err;
    }
    return await finishTarget(
      job,
      { target, backend, cache, listing, level, id, parent: null },
      { manifest, ...(manifestJson ? { manifestJson } : {}), hashes: tree.hashes, problems: tree.problems, unreadable: tree.unreadable, stats: tree.stats },
      { ...(generation ? { generation } : {}), suspicious, changedFiles },
      opts,
    );
  } finally {
    await lock?.release();
  }
}

/** A plain generation's manifest, read from the target: plain JSON, one entry per line. */
export async function readPlainManifest(backend: Backend, g: Generation, target: string): Promise<Manifest> {
  const expected = g.sums.get(PLAIN_MANIFEST);
  const { pieces, sha256 } = await readPieces(backend, joinPath(g.dir, PLAIN_MANIFEST));
  if (expected !== undefined && sha256 !== expected) {
    throw new CerberusError('INTEGRITY', `${g.level}/${g.id}/${PLAIN_MANIFEST} on ${target} does not match its SHA256SUMS`, {
      hint: 'the stage is damaged; run `cerberus verify`',
    });
  }
  return parseManifest(() => pieces, `${g.level}/${g.id}/${PLAIN_MANIFEST}`);
}

/**
 * Every file of a plain generation against its manifest. A file linked into many generations
 * is one inode: it is hashed once per run (`inodes`, shared across generations).
 */
export async function verifyPlainTree(
  backend: Backend,
  root: string,
  g: Generation,
  target: string,
  inodes: Map<string, string>,
  fail: (problem: string) => void,
): Promise<void> {
  const manifest = await readPlainManifest(backend, g, target);
  const files = path.join(root, ...g.dir.split('/'), PLAIN_FILES);
  let bad = 0;
  let first = '';
  for (const e of manifest.entries) {
    const abs = path.join(files, ...e.path.split('/'));
    let why: string | undefined;
    try {
      const st = await fsp.lstat(abs, { bigint: true });
      if (e.type === 'file') {
        if (!st.isFile() || Number(st.size) !== e.size) why = st.isFile() ? `${st.size} bytes, the manifest says ${e.size}` : 'not a file';
        else {
          const key = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
          const sha = inodes.get(key) ?? (await sha256OfFile(abs));
          inodes.set(key, sha);
          if (sha !== e.sha256) why = 'its sha256 differs from the manifest';
        }
      } else if (e.type === 'dir' ? !st.isDirectory() : !st.isSymbolicLink()) why = `not a ${e.type}`;
    } catch (err) {
      why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : describeError(err);
    }
    if (why !== undefined) {
      if (bad++ === 0) first = `${e.path}: ${why}`;
    }
  }
  if (bad > 0) fail(`${bad} entries of files/ do not match the manifest, e.g. ${first}`);
}

/**
 * The databases' dumps, streamed straight into the tree as `databases/<name>.dump` (no spool:
 * a plain file needs no size up front), each checked by its tool's exit status. They replace
 * whatever the walk carried over there from the previous generation.
 */
async function stageDumps(job: JobConfig, dest: string | undefined, tree: StageTree, id: string, opts: BackupOptions, cache: StateCache): Promise<FileEntry[]> {
  const { reporter } = opts;
  const dir = dumpDirEntry();
  dropDumpFolder(tree.entries, tree.stats);
  if (dest !== undefined) {
    await fsp.rm(path.join(dest, DUMP_DIR), { recursive: true, force: true });
    await fsp.mkdir(path.join(dest, DUMP_DIR), { mode: 0o700 });
  } else {
    reporter.info(`[dry run] not dumping database ${job.source.databases.map((d) => d.name).join(', ')}: a dry run reads no database`);
  }
  const privateDir = await cache.scratch();
  const dumps: FileEntry[] = [];
  const seconds = nsSeconds(dir.mtimeNs);
  try {
    for (const db of job.source.databases) {
      let size = 0;
      let sha256 = '0'.repeat(64);
      if (dest !== undefined) {
        const file = path.join(dest, ...dumpPath(db).split('/'));
        ({ size, sha256 } = await dumpDatabase(db, file, { privateDir, reporter, env: opts.env ?? process.env }));
        await fsp.utimes(file, seconds, seconds);
      }
      const entry: FileEntry = { path: dumpPath(db), type: 'file', size, mtimeNs: dir.mtimeNs, mode: 0o600, uid: dir.uid, gid: dir.gid, sha256, holder: id };
      dumps.push(entry);
      tree.entries.push(entry);
      tree.stats.files++;
      tree.stats.bytes += size;
      tree.stats.storedFiles++;
      tree.stats.storedBytes += size;
    }
  } finally {
    await fsp.rm(privateDir, { recursive: true, force: true });
  }
  if (dest !== undefined) await fsp.utimes(path.join(dest, DUMP_DIR), seconds, seconds);
  tree.entries.push({ path: DUMP_DIR, type: 'dir', mtimeNs: dir.mtimeNs, mode: dir.mode, uid: dir.uid, gid: dir.gid });
  tree.stats.dirs++;
  return dumps;
}
