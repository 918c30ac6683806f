import type { PhaseLog } from '../report/phases.js';
import type { TargetSummary } from '../report/run-report.js';
import type { PassResult } from './run.js';

/** Failed rows that get a JUnit test case each; the rest are counted in the `fetch+store` case. */
const MAX_ROW_CASES = 100;

/** A pass as steps of the report: read, fetch+store (and a case per failed row), retention. */
export function recordPass(phases: PhaseLog, target: string, r: PassResult): void {
  phases.record('read', target, 0);
  const failed = r.failed.length;
  phases.record('fetch+store', target, r.durationMs, failed > 0 ? `${failed} row(s) failed; each is tried again after a backoff` : undefined);
  for (const f of r.failed.slice(0, MAX_ROW_CASES)) phases.record(`row ${f.id} ${f.path} v${f.version}`, target, 0, f.error);
  if (r.interrupted) phases.skip('retention', target, 'the pass was interrupted');
  else phases.record('retention', target, 0, r.problems.length > 0 ? r.problems.join('; ') : undefined);
}

/** The target's line of summary.md and report.json. */
export function passSummary(target: string, r: PassResult): TargetSummary {
  return {
    target,
    status: r.failed.length > 0 || r.interrupted ? 'failed' : 'committed',
    files: r.read,
    changedFiles: r.stored,
    bytesRead: r.bytesIn,
    bytesUploaded: r.bytesStored,
    durationMs: r.durationMs,
    ...(r.durationMs > 0 ? { rate: Math.round((r.bytesStored * 1000) / r.durationMs) } : {}),
    kept: r.kept,
    pruned: r.removed,
    warnings: [...r.problems, ...(r.pending > 0 ? [`${r.pending} row(s) pending${r.oldestPending ? `, the oldest from ${r.oldestPending}` : ''}`] : [])],
    ...(r.failed.length > 0 ? { error: `${r.failed.length} row(s) failed, e.g. row ${r.failed[0]!.id}: ${r.failed[0]!.error}` } : r.interrupted ? { error: 'interrupted' } : {}),
  };
}
