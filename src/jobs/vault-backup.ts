import fsp from 'node:fs/promises';
import path from 'node:path';
import type { CryptomatorEncryption, JobConfig, TargetConfig } from '../config/index.js';
import { CerberusError, describeError } from '../errors.js';
import { chooseLevel } from '../engine/levels.js';
import { manifestParts, type Manifest, type ManifestEntry } from '../engine/manifest.js';
import { StateCache } from '../engine/state-cache.js';
import { statEntry, type SourceEntry } from '../engine/walk.js';
import { writeVaultConfig } from '../formats/cryptomator/index.js';
import { requireDescriptor } from '../repository/descriptor.js';
import { GenerationWriter, INFO, type Generation } from '../repository/generations.js';
import { sha256Hex } from '../repository/io.js';
import { writeParts } from '../fsutil.js';
import { acquireLock } from '../repository/lock.js';
import { copyFolder, joinPath, removeTree, type Backend } from '../storage/index.js';
import { formatBytes } from '../report/format.js';
import { PhaseLog } from '../report/phases.js';
import { UPLOAD_PHASE } from '../report/run-report.js';
import { applyToVault } from '../vault/apply.js';
import { loadVaultState, putSealedFile, saveVaultState, VAULT_CONFIG, VAULT_DATA, VAULT_MANIFEST, VAULT_SUMS, vaultSumsParts } from '../vault/generation.js';
import { MASTERKEY_FILE, repositoryKeys } from '../vault/keys.js';
import type { VaultState } from '../vault/state.js';
import { checkDumpFolder, dumpDatabase, dumpDirEntry, dumpPath, DUMP_DIR } from './database-files.js';
import { finishTarget, isRunFatal, listForRun, standaloneGuards, standaloneInfo, standaloneManifest, targetFailure, type BackupOptions, type BackupResult, type TargetBackupResult } from './backup-finish.js';

/**
 * A backup into a Cryptomator repository: every generation is a whole vault. It starts as a
 * server-side copy of the newest generation and then receives only the changes, so the
 * upload is incremental while each vault stands alone (N generations cost N times the
 * storage). Each target has its own masterkey, so each is encrypted on its own.
 */
export async function runVaultBackup(job: JobConfig, enc: CryptomatorEncryption, opts: BackupOptions): Promise<BackupResult> {
  const targets: TargetBackupResult[] = [];
  for (const [i, target] of job.targets.entries()) {
    try {
      targets.push(await backupTarget(job, enc, target, opts, i === job.targets.length - 1));
    } catch (err) {
      if (isRunFatal(err)) throw err;
      const error = targetFailure(target.name, err);
      opts.reporter.warn(`target ${target.name}: ${error}`);
      targets.push({ target: target.name, status: 'failed', suspicious: [], problems: [], pruned: [], error });
    }
  }
  return { job: job.name, targets };
}

/** Uploads in flight while a vault is written: small files dominate, so more than for volumes. */
const VAULT_PARALLEL = 8;

async function backupTarget(job: JobConfig, enc: CryptomatorEncryption, target: TargetConfig, opts: BackupOptions, lastRead: boolean): Promise<TargetBackupResult> {
  // plan, then the upload (copy, encryption, commit); finishTarget records verify and prune
  const phases = opts.phases ?? new PhaseLog();
  let stage: string | undefined = 'plan';
  let since = Date.now();
  const enter = (next: string | undefined) => {
    if (stage !== undefined) phases.record(stage, target.name, Date.now() - since);
    stage = next;
    since = Date.now();
  };
  try {
    return await backupTargetStages(job, enc, target, opts, enter, lastRead);
  } catch (err) {
    if (stage !== undefined) phases.record(stage, target.name, Date.now() - since, describeError(err));
    throw err;
  }
}

async function backupTargetStages(
  job: JobConfig,
  enc: CryptomatorEncryption,
  target: TargetConfig,
  opts: BackupOptions,
  enter: (stage: string | undefined) => void,
  /** no later target reads the source: this read's end is the snapshot's */
  lastRead: boolean,
): Promise<TargetBackupResult> {
  const { reporter } = opts;
  const backend = opts.open(target);
  const descriptor = await requireDescriptor(backend, target.name, 'cryptomator');
  const { keys, masterkeyText } = await repositoryKeys(backend, enc.password, target.name);
  const lock = opts.dryRun ? undefined : await acquireLock(backend, `cerberus backup --job ${job.name}`, (m) => reporter.notice(m));
  try {
    const cache = new StateCache(opts.stateDir, job.name, descriptor.id);
    const { listing, newest, id, trusted } = await listForRun(backend, target.name, opts.now);
    const level = chooseLevel(opts.now, trusted, job.timezone);
    // the newest manifest is read only where needed, a stream for the guards: a big source's is tens of MB
    let previous: VaultState | undefined = newest && (await cache.hasManifest(newest.id)) ? await loadVaultState(cache, newest.id, keys) : undefined;
    const canCopy = backend.copyTree !== undefined || backend.copy !== undefined;
    if (newest && !previous) {
      reporter.info(`${target.name}: the state cache does not know ${newest.level}/${newest.id}, so this vault is uploaded whole`);
    } else if (newest && !canCopy) {
      reporter.info(`${target.name}: ${backend.description} cannot copy on the server, so this vault is uploaded whole`);
      previous = undefined;
    }
    reporter.phase(
      `${opts.dryRun ? '[dry run] ' : ''}backup ${job.name} → ${target.name}: ${level} ${id} (Cryptomator vault` +
        (previous && newest ? `, starting from a copy of ${newest.level}/${newest.id})` : ', whole)'),
    );

    enter(UPLOAD_PHASE);
    const writer = new GenerationWriter(backend, level, id);
    let generation: Generation | undefined;
    let spool: string | undefined;
    let manifestJson: { from: string } | undefined;
    try {
      if (!opts.dryRun) {
        await writer.begin();
        if (previous && newest) previous = await copyNewest(backend, newest, previous, writer.workDir, target.name, opts);
      }
      await opts.hooks?.planned(level, id);
      // the dumps are part of the snapshot: after before, ahead of the walk, spooled in the
      // run's private scratch folder (a vault's file upload needs its size first)
      let extra: Awaited<ReturnType<typeof dumpsForVault>> | undefined;
      if (job.source.databases.length > 0) {
        await checkDumpFolder(job);
        if (!opts.dryRun) spool = await cache.scratch();
        extra = await dumpsForVault(job, spool, opts.dryRun && newest ? await cache.loadManifest(newest.id) : undefined, opts);
      }
      const applied = await applyToVault({
        backend,
        root: writer.workDir,
        keys,
        previous,
        previousEntries: async () => {
          const last = newest && (await cache.loadManifest(newest.id));
          return new Map((last?.entries ?? []).map((e) => [e.path, e]));
        },
        source: job.source,
        oldHashes: opts.replica?.hashes ?? (opts.rehash ? new Map() : await cache.loadHashes()),
        dryRun: opts.dryRun,
        reporter,
        parallel: VAULT_PARALLEL,
        holder: id,
        unpublished: true,
        ...(extra ? { extra } : {}),
      });
      if (spool !== undefined) {
        // uploaded: a big dump need not wait for the commit on this disk
        await fsp.rm(spool, { recursive: true, force: true });
        spool = undefined;
      }
      if (lastRead) await opts.hooks?.sourceRead();
      const { stats } = applied;
      const manifest = standaloneManifest(job, opts, level, id, applied.entries, stats);
      const last = newest && ((see: (e: ManifestEntry) => void) => cache.loadManifest(newest.id, see));
      const { changedFiles, suspicious } = await standaloneGuards(job, manifest, last, applied.rootsMissing, new Set(extra?.files.map((f) => f.path)));
      reporter.info(
        `${stats.files} files (${formatBytes(stats.bytes)}), ${stats.storedFiles} encrypted and uploaded (${formatBytes(stats.storedBytes)}), ${stats.deleted} removed since the last vault`,
      );
      if (!opts.dryRun) {
        const info = standaloneInfo('cryptomator', manifest, suspicious, {
          files: stats.files, bytes: stats.bytes, storedFiles: stats.storedFiles, storedBytes: stats.storedBytes,
          vaultBytes: Object.values(applied.state.entries).reduce((n, r) => n + (r.ctSize ?? 0), 0),
        });
        const put = (name: string, data: Buffer) => writer.putBuffer(name, data, sha256Hex(data));
        await put(MASTERKEY_FILE, Buffer.from(masterkeyText));
        await put(VAULT_CONFIG, Buffer.from(writeVaultConfig(keys)));
        // the manifest goes through a file, sealed as it is read: as one buffer it is tens of MB twice
        spool ??= await cache.scratch();
        manifestJson = { from: path.join(spool, 'manifest.json') };
        await writeParts(manifestJson.from, manifestParts(manifest));
        await putSealedFile(writer, VAULT_MANIFEST, manifestJson.from, keys);
        await put(VAULT_SUMS, Buffer.concat([...vaultSumsParts(keys, applied.state)]));
        await put(INFO, Buffer.from(JSON.stringify(info, null, 2) + '\n'));
        reporter.phase(`committing ${level}/${id} on ${target.name} (${backend.description})`);
        await writer.commit();
        generation = {
          id, level, dir: writer.finalDir, parent: null, info, files: writer.written,
          storedSize: writer.written.reduce((s, f) => s + f.size, 0), sums: writer.sums,
        };
        await saveVaultState(cache, id, applied.state);
      }
      enter(undefined);
      return await finishTarget(
        job,
        { target, backend, cache, listing, level, id, parent: null },
        { manifest, ...(manifestJson ? { manifestJson } : {}), hashes: applied.hashes, problems: applied.problems, unreadable: applied.unreadable, stats: { ...stats, changedFiles } },
        { ...(generation ? { generation } : {}), suspicious, changedFiles },
        opts,
      );
    } catch (err) {
      if (!opts.dryRun && !generation) await writer.abort();
      throw err;
    } finally {
      if (spool !== undefined) await fsp.rm(spool, { recursive: true, force: true });
    }
  } finally {
    await lock?.release();
  }
}

/**
 * Dumps the job's databases into `spool` (a fresh scratch folder of the state dir), as the
 * files applyToVault adds under `databases/`. Without a spool (a dry run) nothing is dumped:
 * the entries stand for the dumps at their last size.
 */
async function dumpsForVault(
  job: JobConfig,
  spool: string | undefined,
  previous: Manifest | undefined,
  opts: BackupOptions,
): Promise<{ dir: SourceEntry; files: SourceEntry[] }> {
  const dir = dumpDirEntry();
  const files: SourceEntry[] = [];
  if (spool === undefined) {
    opts.reporter.info(`[dry run] not dumping database ${job.source.databases.map((d) => d.name).join(', ')}: a dry run reads no database`);
    const last = new Map((previous?.entries ?? []).filter((e) => e.path.startsWith(`${DUMP_DIR}/`)).map((e) => [e.path, e]));
    for (const db of job.source.databases) {
      const at = dumpPath(db);
      const e = last.get(at);
      files.push({ ...dir, path: at, abs: at, type: 'file', mode: 0o600, size: e?.type === 'file' ? e.size : 0 });
    }
    return { dir, files };
  }
  const stop = new AbortController();
  opts.interrupted?.catch(() => stop.abort());
  for (const [i, db] of job.source.databases.entries()) {
    const file = path.join(spool, `database-${i}.dump`);
    await dumpDatabase(db, file, { privateDir: spool, reporter: opts.reporter, env: opts.env ?? process.env, signal: stop.signal });
    const e = await statEntry(dumpPath(db), file);
    if (typeof e === 'string') throw new CerberusError('INTERNAL', `the dump of database ${db.name} in ${spool} is no regular file`);
    files.push(e);
  }
  return { dir, files };
}

/**
 * Copies the newest vault's `d/` into the new generation on the server. A copy that breaks
 * halfway is cleared and the vault uploaded whole instead: slower, never wrong.
 */
async function copyNewest(
  backend: Backend,
  newest: Generation,
  state: VaultState,
  workDir: string,
  target: string,
  opts: BackupOptions,
): Promise<VaultState | undefined> {
  const from = joinPath(newest.dir, VAULT_DATA);
  const to = joinPath(workDir, VAULT_DATA);
  const started = Date.now();
  let copied = 0;
  try {
    const how = await copyFolder(backend, from, to, { onFile: (n) => (copied = n) });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    opts.reporter.info(
      how === 'tree'
        ? `${target}: copied ${newest.level}/${newest.id} on the server in ${secs} s`
        : `${target}: copied ${newest.level}/${newest.id} on the server file by file (${copied} files) in ${secs} s`,
    );
    return state;
  } catch (err) {
    opts.reporter.warn(`${target}: the server-side copy of ${newest.level}/${newest.id} failed (${describeError(err)}); uploading the whole vault instead`);
    await removeTree(backend, to).catch(() => undefined);
    return undefined;
  }
}
