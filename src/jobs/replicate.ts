import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { JobConfig, LocalTargetConfig, TargetConfig } from '../config/index.js';
import { CerberusError, describeError, usageError } from '../errors.js';
import type { HashRecord } from '../engine/state-cache.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { listGenerations, PLAIN_FILES, type Generation } from '../repository/generations.js';
import type { Backend } from '../storage/index.js';
import { pidAlive } from '../repository/lock.js';
import type { BackupOptions, BackupResult, TargetBackupResult } from './backup-finish.js';
import { DUMP_DIR } from './database-files.js';
import { pickTarget } from './restore.js';
import { readPlainManifest } from './stage-backup.js';
import { linkTree } from './stage-tree.js';

export interface ReplicateOptions extends Omit<BackupOptions, 'now' | 'hooks' | 'replica' | 'rehash'> {
  from: string;
  to: string;
}

/** What makes one generation on one target: the backup engines (passed in: they call back here for stages). */
export type Engine = (job: JobConfig, opts: BackupOptions) => Promise<BackupResult>;

export interface ReplicateResult {
  job: string;
  from: string;
  to: string;
  /** `level/id` of every stage generation the target lacked, oldest first */
  lacking: string[];
  /** one per generation copied, oldest first */
  copied: TargetBackupResult[];
  /** stage generations older than the target's newest: a target's history only grows forward */
  skipped: string[];
}

/** Where replications pin the generation they read, inside the stage (same disk: links are free). */
const PINS = '.replicating';

/**
 * Copies the generations a target lacks from a plain stage, oldest first, each as the backup
 * it would have been at its own time: encrypted by the target's kind, differential against
 * the target's own chain. The hashes come from the stage's manifest, so only files that
 * changed are read. Every generation commits on its own: an interrupted run leaves the
 * target consistent, and the next run goes on from there.
 */
export async function runReplicate(job: JobConfig, opts: ReplicateOptions, engine: Engine): Promise<ReplicateResult> {
  const { reporter } = opts;
  const from = stageTarget(job, opts.from);
  const to = encryptedTarget(job, opts.to);
  const stage = opts.open(from);
  await requireDescriptor(stage, from.name, 'plain');
  const target = opts.open(to);
  await requireDescriptor(target, to.name, kindFor(job, to));
  const [have, want] = await Promise.all([listGenerations(target), listGenerations(stage)]);
  const newest = have.committed.at(-1)?.id;
  const lacking = want.committed.filter((g) => newest === undefined || g.id > newest);
  const skipped = want.committed.filter((g) => newest !== undefined && g.id < newest && !have.committed.some((h) => h.id === g.id)).map((g) => `${g.level}/${g.id}`);
  reporter.phase(
    `replicate ${job.name}: ${from.name} → ${to.name}: ${lacking.length === 0 ? 'nothing to copy' : `${lacking.length} generations (${lacking[0]!.id} … ${lacking.at(-1)!.id})`}`,
  );
  if (skipped.length > 0) reporter.info(`${skipped.length} stage generations are older than ${to.name}'s newest (${newest}) and are not copied`);
  const result: ReplicateResult = { job: job.name, from: from.name, to: to.name, lacking: lacking.map((g) => `${g.level}/${g.id}`), copied: [], skipped };
  if (opts.dryRun) return result;

  const pins = path.join(from.path, PINS);
  await clearStalePins(pins);
  for (const g of lacking) {
    const copied = await replicateOne(job, { target: from, backend: stage }, to, g, opts, pins, engine);
    result.copied.push(copied);
    // a failed generation would leave a hole in the target's history: stop at the first
    if (copied.status === 'failed') break;
  }
  return result;
}

async function replicateOne(
  job: JobConfig,
  { target: from, backend: stage }: { target: LocalTargetConfig; backend: Backend },
  to: TargetConfig,
  g: Generation,
  opts: ReplicateOptions,
  pins: string,
  engine: Engine,
): Promise<TargetBackupResult> {
  const { reporter } = opts;
  const manifest = await readPlainManifest(stage, g, from.name);
  // a link to every file of the generation: a prune of the stage meanwhile takes nothing away
  const pin = path.join(pins, `${g.id}-${os.hostname()}-${process.pid}`);
  await fsp.mkdir(pins, { recursive: true });
  try {
    linkTree(path.join(from.path, ...g.dir.split('/'), PLAIN_FILES), pin);
  } catch (err) {
    await fsp.rm(pin, { recursive: true, force: true });
    throw new CerberusError('IO', `cannot pin ${g.level}/${g.id} in ${from.path} for reading: ${describeError(err)}`, { hint: 'the stage disk must be writable' });
  }
  try {
    const single = job.source.paths.length === 1;
    const roots = single ? [pin] : job.source.paths.map((p) => path.join(pin, path.basename(p)));
    // the stage's dumps are files of its tree; with several roots they sit beside them
    if (!single && fs.existsSync(path.join(pin, DUMP_DIR))) roots.push(path.join(pin, DUMP_DIR));
    const hashes = new Map<string, HashRecord>();
    for (const e of manifest.entries) {
      if (e.type !== 'file') continue;
      const abs = path.join(pin, ...e.path.split('/'));
      const st = fs.lstatSync(abs, { bigint: true, throwIfNoEntry: false });
      if (st && Number(st.size) === e.size && st.mtimeNs.toString() === e.mtimeNs) {
        hashes.set(abs, { size: e.size, mtimeNs: e.mtimeNs, ctimeNs: st.ctimeNs.toString(), ino: st.ino.toString(), sha256: e.sha256 });
      }
    }
    const replica: JobConfig = {
      ...job,
      targets: [to],
      source: { ...job.source, paths: roots, exclude: [], databases: [] },
      hooks: { before: [], afterSnapshot: [], after: [], onError: [] },
      stages: undefined,
    };
    reporter.info(`copying ${g.level}/${g.id} (${manifest.stats.files} files) to ${to.name}`);
    const r = await engine(replica, { ...opts, now: new Date(manifest.createdAt), rehash: false, replica: { roots: manifest.roots, hashes } });
    return r.targets[0]!;
  } finally {
    await fsp.rm(pin, { recursive: true, force: true }).catch((err: unknown) => reporter.warn(`could not remove ${pin}: ${describeError(err)}`));
  }
}

/** Pins of replications that died (on this host) are only links: remove them. */
async function clearStalePins(pins: string): Promise<void> {
  for (const name of await fsp.readdir(pins).catch(() => [] as string[])) {
    // <id>-<host>-<pid>; ids and host names both hold dashes, the id's shape is fixed
    const m = /^\d{4}-\d{2}-\d{2}T\d{6}Z-(.+)-(\d+)$/.exec(name);
    if (m && m[1] === os.hostname() && pidAlive(Number(m[2]))) continue;
    if (m && m[1] !== os.hostname()) continue;
    await fsp.rm(path.join(pins, name), { recursive: true, force: true });
  }
}

function stageTarget(job: JobConfig, name: string): LocalTargetConfig {
  const t = pickTarget(job, name);
  if (t.type !== 'local' || kindFor(job, t) !== 'plain') {
    throw usageError(`--from ${name} is not a plain stage`, 'replicate copies from a local target with snapshots: hardlink');
  }
  return t;
}

function encryptedTarget(job: JobConfig, name: string): TargetConfig {
  const t = pickTarget(job, name);
  if (kindFor(job, t) === 'plain') throw usageError(`--to ${name} is a plain stage`, 'replicate encrypts to a target without snapshots: hardlink; copy one stage to another with rsync -aH');
  return t;
}

/**
 * The later stages of a job's `stages`, after its backup wrote the first: each catches up
 * with the first. Its result is that of the newest generation it copied.
 */
export async function replicateStages(job: JobConfig, opts: BackupOptions, engine: Engine): Promise<TargetBackupResult[]> {
  const [first, ...later] = job.stages ?? [];
  const out: TargetBackupResult[] = [];
  if (first === undefined) return out;
  for (const name of later) {
    try {
      const { copied, lacking } = await runReplicate(job, { ...opts, from: first, to: name }, engine);
      const last = copied.find((c) => c.status === 'failed') ?? copied.at(-1);
      out.push(last ?? { target: name, status: opts.dryRun ? 'dry-run' : 'committed', suspicious: [], problems: lacking.length > 0 ? [] : [`${name} already had every generation of ${first}`], pruned: [] });
    } catch (err) {
      const error = describeError(err);
      opts.reporter.warn(`target ${name}: ${error}`);
      out.push({ target: name, status: 'failed', suspicious: [], problems: [], pruned: [], error });
    }
  }
  return out;
}
