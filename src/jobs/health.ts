import type { JobConfig } from '../config/index.js';
import { describeError } from '../errors.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { listGenerations, type RepositoryListing } from '../repository/generations.js';
import { formatDuration } from '../report/format.js';
import type { Reporter } from '../report/log.js';
import type { OpenTarget } from '../storage/open.js';

/**
 * The independent check that backups keep arriving: run from any machine with the targets'
 * credentials alone (no key, no vault password), it catches a Pi that stopped running, a
 * run that left a suspicious restore point, and a chain with a hole.
 */

export interface HealthOptions {
  now: Date;
  /** the newest restore point may be at most this old (per job: a tenant's follows its schedule) */
  maxAgeMs: number | ((job: JobConfig) => number);
  reporter: Reporter;
  open: OpenTarget;
}

export interface HealthCheck {
  job: string;
  target: string;
  healthy: boolean;
  /** the newest committed restore point, if any */
  newest?: { id: string; level: string; createdAt: string; ageMs: number };
  problems: string[];
}

export async function runHealth(jobs: JobConfig[], opts: HealthOptions): Promise<HealthCheck[]> {
  const out: HealthCheck[] = [];
  for (const job of jobs) {
    for (const target of job.targets) {
      const check: HealthCheck = { job: job.name, target: target.name, healthy: true, problems: [] };
      try {
        const backend = opts.open(target);
        await requireDescriptor(backend, target.name, kindFor(job, target));
        examine(check, await listGenerations(backend), opts.now, typeof opts.maxAgeMs === 'number' ? opts.maxAgeMs : opts.maxAgeMs(job));
      } catch (err) {
        check.problems.push(describeError(err));
      }
      check.healthy = check.problems.length === 0;
      const where = `${job.name} → ${target.name}`;
      if (check.healthy) {
        opts.reporter.info(`${where}: ok, newest ${check.newest!.level}/${check.newest!.id} is ${formatDuration(check.newest!.ageMs)} old`);
      } else {
        for (const p of check.problems) opts.reporter.warn(`${where}: ${p}`);
      }
      out.push(check);
    }
  }
  return out;
}

function examine(check: HealthCheck, listing: RepositoryListing, now: Date, maxAgeMs: number): void {
  const { committed } = listing; // oldest first
  for (const d of listing.damaged) check.problems.push(`${d.dir} is damaged: ${d.why}`);
  const newest = committed.at(-1);
  if (!newest) {
    check.problems.push('no restore point yet (has the first backup run?)');
    return;
  }
  const ageMs = now.getTime() - Date.parse(newest.info.createdAt);
  check.newest = { id: newest.id, level: newest.level, createdAt: newest.info.createdAt, ageMs };
  if (ageMs > maxAgeMs) {
    check.problems.push(
      `the newest restore point, ${newest.level}/${newest.id}, is ${formatDuration(ageMs)} old, more than ${formatDuration(maxAgeMs)}: backups have stopped arriving`,
    );
  }
  const lastClean = committed.filter((g) => g.info.suspicious.length === 0).at(-1);
  for (const g of committed) {
    if (g.info.suspicious.length > 0 && (!lastClean || g.id > lastClean.id)) {
      check.problems.push(`${g.level}/${g.id} is suspicious and newer than the last clean restore point: ${g.info.suspicious.join('; ')}`);
    }
  }
  const ids = new Set(committed.map((g) => g.id));
  for (const c of newest.info.chain) {
    if (!ids.has(c)) check.problems.push(`the newest restore point needs ${c} in its chain, which is missing: it cannot be restored`);
  }
}
