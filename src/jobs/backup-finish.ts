import type { JobConfig, TargetConfig } from '../config/index.js';
import { LEVELS, type Level } from '../engine/levels.js';
import { sortEntries, type Manifest, type ManifestEntry } from '../engine/manifest.js';
import { checkGuards } from '../engine/guards.js';
import { VERSION } from '../version.js';
import type { HashRecord, StateCache } from '../engine/state-cache.js';
import type { Generation, GenerationInfo, RepositoryListing } from '../repository/generations.js';
import type { Backend } from '../storage/backend.js';
import type { OpenTarget } from '../storage/open.js';
import type { Reporter } from '../report/log.js';
import { PhaseLog } from '../report/phases.js';
import type { BackupHookCalls, HookOutcome, RunStatus } from './backup-hooks.js';
import type { ApplyStats } from '../vault/apply.js';
import { CerberusError, describeError } from '../errors.js';
import { generationId } from '../engine/levels.js';
import { listGenerations } from '../repository/generations.js';
import { pruneRepository } from './prune.js';

export interface BackupOptions {
  now: Date;
  dryRun: boolean;
  rehash: boolean;
  stateDir: string;
  reporter: Reporter;
  open: OpenTarget;
  /** where the steps of the run are recorded for --report */
  phases?: PhaseLog;
  /** the environment hooks inherit; cerberus's own when absent */
  env?: NodeJS.ProcessEnv;
  /** rejects when the run is to stop (SIGINT, SIGTERM): the hooks owed still run */
  interrupted?: Promise<never>;
  /** set by runBackup for the engines: where hooks run */
  hooks?: BackupHookCalls;
  /**
   * A replication: the source is a plain stage's generation, whose manifest already knows
   * every file's hash (keyed by path on this machine), and the manifest records the job's own roots.
   */
  replica?: { roots: string[]; hashes: Map<string, HashRecord> };
}

/** The counts of one run, the same for both repository kinds. */
export type BackupStats = ApplyStats & { changedFiles: number };

export interface TargetBackupResult {
  target: string;
  status: 'committed' | 'failed' | 'dry-run';
  id?: string;
  level?: Level;
  parent?: string | null;
  suspicious: string[];
  /** problems that make the run end with warnings: unreadable or changing files, odd files */
  problems: string[];
  stats?: BackupStats;
  pruned: string[];
  /** restore points on the target after pruning; absent when prune did not run */
  kept?: number;
  error?: string;
}

export interface BackupResult {
  job: string;
  targets: TargetBackupResult[];
  /** the hooks that ran, in order; absent when none did */
  hooks?: HookOutcome[];
}

/** What finishing a target needs to know about its part of the run. */
export interface FinishPlan {
  target: TargetConfig;
  backend: Backend;
  cache: StateCache;
  listing: RepositoryListing;
  level: Level;
  id: string;
  parent: string | null;
}

/** What the run produced, the same for every target of a group. */
export interface FinishRun {
  manifest: Manifest;
  /** the manifest as JSON, as bytes or in a file, when the run already made it (a big source's is megabytes) */
  manifestJson?: Uint8Array | { from: string };
  hashes: Map<string, HashRecord>;
  problems: string[];
  unreadable: number;
  stats: BackupStats;
}

/** Guards, cache and retention for one target whose generation is committed (or dry-run). */
export async function finishTarget(
  job: JobConfig,
  plan: FinishPlan,
  run: FinishRun,
  outcome: { generation?: Generation; suspicious: string[]; changedFiles: number } | undefined,
  opts: BackupOptions,
): Promise<TargetBackupResult> {
  const { reporter } = opts;
  const phases = opts.phases ?? new PhaseLog();
  const { target, backend, cache, listing, level, id } = plan;
  const generation = outcome?.generation;
  const suspicious = outcome?.suspicious ?? [];
  const result: TargetBackupResult = {
    target: target.name,
    status: opts.dryRun ? 'dry-run' : 'committed',
    id,
    level,
    parent: plan.parent,
    suspicious,
    problems: run.problems,
    stats: { ...run.stats, changedFiles: outcome?.changedFiles ?? 0 },
    pruned: [],
  };
  if (opts.dryRun) return result;

  await cache.saveManifest(run.manifest, run.manifestJson);
  // a replication's hashes are of the stage's files, not of the job's source
  if (!opts.replica) await cache.saveHashes(run.hashes);
  // one listing per run: on a remote target every listing is many requests
  const after = generation ? [...listing.committed, generation] : listing.committed;
  await cache.retain(cacheWorthy(after));

  if (generation) await phases.time('verify', target.name, () => verifyCommitted(backend, generation));
  if (suspicious.length > 0) {
    for (const r of suspicious) reporter.warn(`guard: ${r}`);
    const why = `generation ${level}/${id} on ${target.name} is marked suspicious; nothing was pruned`;
    reporter.warn(why);
    phases.skip('prune', target.name, why);
  } else if (run.unreadable > 0) {
    const why = `some files could not be read, so nothing was pruned on ${target.name} this time`;
    reporter.warn(why);
    phases.skip('prune', target.name, why);
  } else {
    const pruned = await phases.time('prune', target.name, () =>
      pruneRepository(backend, job.retention, opts.now, {
        dryRun: false,
        reporter,
        target: target.name,
        listing: { committed: after, leftovers: listing.leftovers, damaged: listing.damaged },
      }),
    );
    result.pruned = pruned.removed;
    const gone = new Set(pruned.removed);
    const kept = after.filter((g) => !gone.has(`${g.level}/${g.id}`));
    result.kept = kept.length;
    await cache.retain(cacheWorthy(kept));
  }
  return result;
}

/**
 * The committed restore point, listed back from the target: every file written is there at
 * the size written. One listing, so cheap on any target; it catches a target that answered a
 * put but did not keep it. (`cerberus verify` reads everything back.)
 */
async function verifyCommitted(backend: Backend, g: Generation): Promise<void> {
  const listed = new Map((await backend.list(g.dir)).map((e) => [e.name, e]));
  for (const f of g.files) {
    const got = listed.get(f.name);
    if (!got || got.isDir !== f.isDir || (!f.isDir && got.size !== f.size)) {
      throw new CerberusError('INTEGRITY', `${backend.description}: ${g.dir}/${f.name} ${got ? `lists ${got.size} bytes, ${f.size} were written` : 'is missing'} right after the commit`, {
        hint: 'the target lost or changed a file it had accepted; run `cerberus verify` and check the storage',
      });
    }
  }
}

/**
 * Counts the files whose content differs from a previous state (the ransomware guard's
 * measure), seeing the previous entries one at a time: they can be streamed from the cache.
 */
export function changeCounter(manifest: Manifest): { see(e: ManifestEntry): void; readonly count: number } {
  // Manifests are sorted by path: the previous one is merged with this one as it comes, with
  // no index of either (40,000 paths are megabytes). One out of order gets an index after all.
  const sorted = manifest.entries.every((e, i, all) => i === 0 || all[i - 1]!.path < e.path);
  const now = sorted ? manifest.entries : sortEntries([...manifest.entries]);
  let at = 0;
  let last: string | undefined;
  let index: Map<string, ManifestEntry> | undefined;
  let n = 0;
  return {
    see(e) {
      if (!index && last !== undefined && e.path <= last) index = new Map(now.map((x) => [x.path, x]));
      last = e.path;
      if (e.type !== 'file') return;
      let mine: ManifestEntry | undefined;
      if (index) mine = index.get(e.path);
      else {
        while (at < now.length && now[at]!.path < e.path) at++;
        mine = now[at]?.path === e.path ? now[at] : undefined;
      }
      if (mine?.type === 'file' && mine.sha256 !== e.sha256) n++;
    },
    get count() {
      return n;
    },
  };
}

/** The generations whose manifests the cache must keep: possible parents and the newest. */
function cacheWorthy(committed: Generation[]): Set<string> {
  const ids = new Set<string>();
  const trusted = committed.filter((g) => g.info.suspicious.length === 0);
  for (const level of LEVELS) {
    const newest = trusted.filter((g) => g.level === level).at(-1);
    if (newest) ids.add(newest.id);
  }
  const last = committed.at(-1);
  if (last) ids.add(last.id);
  return ids;
}


/** The repository's generations and this run's id, which must be newer than all of them. */
export async function listForRun(backend: Backend, target: string, now: Date): Promise<{ listing: RepositoryListing; newest: Generation | undefined; id: string; trusted: Generation[] }> {
  const listing = await listGenerations(backend);
  const newest = listing.committed.at(-1);
  const id = generationId(now);
  if (newest && newest.id >= id) {
    throw new CerberusError('USAGE', `target ${target} already has generation ${newest.id}, not older than this run (${id})`, {
      hint: 'check the clock, or pass a later --now',
    });
  }
  return { listing, newest, id, trusted: listing.committed.filter((g) => g.info.suspicious.length === 0) };
}

/** Errors that end the whole run rather than one target's part of it. */
export function isRunFatal(err: unknown): boolean {
  // a failed `before` hook, an interruption or a failed database dump (SERVICE: the source
  // itself) or a remote source that fails stops every target, not just the one at hand
  return err instanceof CerberusError && ['LOCKED', 'USAGE', 'CONFIG', 'HOOK', 'INTERRUPTED', 'SERVICE', 'SOURCE'].includes(err.code);
}

/** Why a target failed, without the "target x: " that storage and key errors already carry. */
export function targetFailure(target: string, err: unknown): string {
  const own = `target ${target}: `;
  const why = describeError(err);
  return why.startsWith(own) ? why.slice(own.length) : why;
}

/** The manifest of a generation that stands alone (a vault, a plain tree): no parent, a chain of one. */
export function standaloneManifest(job: JobConfig, opts: BackupOptions, level: Level, id: string, entries: ManifestEntry[], stats: ApplyStats): Manifest {
  return {
    format: 1,
    job: job.name,
    id,
    level,
    parent: null,
    chain: [id],
    createdAt: opts.now.toISOString(),
    roots: opts.replica?.roots ?? job.source.paths,
    entries: sortEntries(entries),
    stats: {
      files: stats.files, dirs: stats.dirs, symlinks: stats.symlinks, bytes: stats.bytes,
      storedFiles: stats.storedFiles, storedBytes: stats.storedBytes, deleted: stats.deleted,
    },
  };
}

/**
 * The guards for a standalone generation against the state before it. `previous`: the newest
 * generation's manifest, or its loader, which streams the entries to `see` (then they are
 * never all in memory).
 */
export async function standaloneGuards(
  job: JobConfig,
  manifest: Manifest,
  previous: Manifest | ((see: (e: ManifestEntry) => void) => Promise<Manifest | undefined>) | undefined,
  rootsMissing: string[],
  dumpPaths: Set<string>,
): Promise<{ changedFiles: number; suspicious: string[] }> {
  const counter = changeCounter(manifest);
  // a dump differs every run: counted as changed, but not by the mass-change guard
  const dumps = dumpPaths.size > 0 ? changeCounter({ ...manifest, entries: manifest.entries.filter((e) => dumpPaths.has(e.path)) }) : undefined;
  const see = (e: ManifestEntry) => {
    counter.see(e);
    dumps?.see(e);
  };
  let last: Manifest | undefined;
  if (typeof previous === 'function') last = await previous(see);
  else if (previous) for (const e of (last = previous).entries) see(e);
  const changedFiles = last ? counter.count : 0;
  const suspicious = checkGuards(
    {
      rootsMissing,
      current: { files: manifest.stats.files, bytes: manifest.stats.bytes },
      previous: last ? { files: last.stats.files, bytes: last.stats.bytes } : undefined,
      changedFiles: changedFiles - (last ? (dumps?.count ?? 0) : 0),
    },
    job.guards,
  );
  return { changedFiles, suspicious };
}

/** info.json of a standalone generation. */
export function standaloneInfo(kind: 'plain' | 'cryptomator', manifest: Manifest, suspicious: string[], stats: GenerationInfo['stats']): GenerationInfo {
  const { id, level } = manifest;
  return {
    format: 1, kind, id, level, parent: null, chain: [id], chainDirs: `${level}/${id}`, createdAt: manifest.createdAt, suspicious, volumes: 0, stats,
    createdBy: `cerberus ${VERSION}`,
  };
}

/** How a run went: a failed target or hook fails it; guards and unreadable files make warnings. */
export function backupStatus(r: BackupResult): RunStatus {
  if (r.targets.some((t) => t.status === 'failed') || r.hooks?.some((h) => h.status === 'failed')) return 'failed';
  if (r.targets.some((t) => t.suspicious.length > 0 || t.problems.length > 0)) return 'warning';
  return 'success';
}
