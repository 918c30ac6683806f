import type { TenantJob } from '../config/index.js';
import { assess, compileCron, DEFAULT_MAX_GRACE_MS, type HealthState, type HistoryStore } from '../schedule/index.js';

/**
 * How each tenant × resource keeps up with its schedule, from the scheduler's run history on
 * this machine: the last success and failure, runs skipped because the previous one was still
 * going, and fire times missed. The repositories themselves are checked by runHealth.
 */
export interface ScheduleCheck {
  job: string;
  state: HealthState;
  healthy: boolean;
  missedPeriods: number;
  lastSuccess?: string;
  lastFailure?: { at: string; error: string };
  skipped: number;
  lastSkipped?: { at: string; reason: string };
  message: string;
}

export async function scheduleHealth(jobs: TenantJob[], history: HistoryStore, now: Date): Promise<ScheduleCheck[]> {
  const out: ScheduleCheck[] = [];
  for (const job of jobs) {
    const summary = await history.summary(job.name);
    const a = assess({ id: job.name, tenant: job.tenant, cron: job.schedule, timezone: job.timezone }, summary, now);
    const fail = summary.lastFailure;
    const skip = summary.lastSkipped;
    out.push({
      job: job.name,
      state: a.state,
      healthy: a.state !== 'stale' && a.state !== 'failing',
      missedPeriods: a.missedPeriods,
      ...(summary.lastSuccess ? { lastSuccess: summary.lastSuccess.startedAt } : {}),
      ...(fail ? { lastFailure: { at: fail.startedAt, error: fail.error ?? fail.status } } : {}),
      skipped: summary.skippedSinceLastSuccess,
      ...(skip ? { lastSkipped: { at: skip.at, reason: skip.reason } } : {}),
      message: a.message,
    });
  }
  return out;
}

/**
 * How old a tenant's newest restore point may be: two periods of its schedule and the grace
 * a run gets, the point where the schedule check calls it stale too.
 */
export function scheduleMaxAge(job: TenantJob, now: Date): number {
  const cron = compileCron(job.name, job.schedule, job.timezone);
  const first = cron.next(now);
  const second = first && cron.next(first);
  if (!first || !second) return Number.POSITIVE_INFINITY; // a schedule that never fires again
  const period = second.getTime() - first.getTime();
  return 2 * period + Math.min(period, DEFAULT_MAX_GRACE_MS);
}
