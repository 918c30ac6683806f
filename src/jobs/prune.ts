import { CerberusError } from '../errors.js';
import { planRetention, type RetentionPolicy } from '../engine/retention.js';
import { deleteGeneration, listGenerations, type Generation, type RepositoryListing } from '../repository/generations.js';
import { removeTree, type Backend } from '../storage/backend.js';
import type { Reporter } from '../report/log.js';

export interface PruneOutcome {
  kept: Generation[];
  removed: string[];
  leftovers: string[];
  reasons: Map<string, string[]>;
}

/**
 * Applies retention to one repository. The caller holds the repository lock, so any
 * unfinished generation folder is a leftover of a dead run and can go too.
 */
export async function pruneRepository(
  backend: Backend,
  policy: RetentionPolicy,
  now: Date,
  opts: { dryRun: boolean; reporter: Reporter; target: string; allowAfterSuspicious?: boolean; listing?: RepositoryListing },
): Promise<PruneOutcome> {
  // a caller that holds the lock and knows the listing saves a round of requests
  const listing = opts.listing ?? (await listGenerations(backend));
  const newest = listing.committed.at(-1);
  if (newest && newest.info.suspicious.length > 0 && !opts.allowAfterSuspicious) {
    throw new CerberusError('USAGE', `target ${opts.target}: the newest generation ${newest.level}/${newest.id} is suspicious, so nothing is pruned`, {
      hint: 'check it (cerberus list); run a clean backup, or pass --ignore-suspicious to prune anyway',
    });
  }
  const plan = planRetention(
    listing.committed.map((g) => ({ ...g, suspicious: g.info.suspicious.length > 0 })),
    policy,
    now,
  );
  const verb = opts.dryRun ? 'would remove' : 'removing';
  for (const g of plan.remove) {
    opts.reporter.info(`${verb} ${g.level}/${g.id}`);
    if (!opts.dryRun) await deleteGeneration(backend, g.dir);
  }
  for (const d of listing.damaged) opts.reporter.warn(`${opts.target}: ${d.dir} is damaged (${d.why}); left for you to inspect (cerberus verify)`);
  for (const l of listing.leftovers) {
    opts.reporter.info(`${verb} ${l.dir} (${l.why})`);
    if (!opts.dryRun) await removeTree(backend, l.dir);
  }
  return {
    kept: plan.keep,
    removed: plan.remove.map((g) => `${g.level}/${g.id}`),
    leftovers: listing.leftovers.map((l) => l.dir),
    reasons: plan.reasons,
  };
}
