import { compileCron } from './cron.js';
import type { JobSummary } from './history.js';
import type { ScheduledJob } from './scheduler.js';

export type HealthState = 'ok' | 'stale' | 'failing' | 'never';

export interface Assessment {
  state: HealthState;
  /** scheduled fire times since the last success that are missed (capped at MAX_COUNTED) */
  missedPeriods: number;
  /** when the next fire time counts as missed if no success comes before */
  expectedBy?: Date;
  /** one line for a person */
  message: string;
}

export interface AssessOptions {
  /** where to count from for a job that never succeeded (default: its oldest history record) */
  since?: Date;
  /** a run gets the smaller of one period and this to finish before its fire counts as missed */
  maxGraceMs?: number;
  /** missed fire times that make a resource stale */
  staleAfter?: number;
}

export const DEFAULT_MAX_GRACE_MS = 6 * 3600_000;
export const DEFAULT_STALE_AFTER = 2;
/** a per-second cron idle for a month is not worth counting to the end */
const MAX_COUNTED = 1000;

/**
 * How a resource's backups keep up with its schedule.
 *
 * A fire time after the last successful run's start is missed when its grace is over (the
 * smaller of the time to the next fire and 6 h) or when a run that started after it failed.
 * The rule, first match wins:
 * - stale: 2 or more fire times missed, whatever the last run did: the newest backup is at
 *   least two periods old. One missed fire alone (a run that overran the next fire and so
 *   skipped it, a daemon restarted at the wrong moment) is named in the message but is no alarm.
 * - failing: the last run failed (status failed; an interrupted run is not a failure of the
 *   resource, but it is no success either, so staleness catches it if it keeps happening).
 * - never: no run ever succeeded, and too little is known or too little time has passed to
 *   say it is stale (a resource just added).
 * - ok.
 * Times in messages are in the job's timezone (the system's when it has none), as its cron is.
 */
export function assess(job: ScheduledJob, summary: JobSummary, now: Date, opts: AssessOptions = {}): Assessment {
  const schedule = compileCron(job.id, job.cron, job.timezone);
  const maxGrace = opts.maxGraceMs ?? DEFAULT_MAX_GRACE_MS;
  const staleAfter = Math.max(1, opts.staleAfter ?? DEFAULT_STALE_AFTER);
  const { lastSuccess, lastRun } = summary;
  const successAt = lastSuccess !== undefined ? Date.parse(lastSuccess.startedAt) : undefined;
  const lastFailure =
    summary.lastFailure !== undefined && (successAt === undefined || Date.parse(summary.lastFailure.startedAt) > successAt) ? summary.lastFailure : undefined;
  const failedAt = lastFailure !== undefined ? Date.parse(lastFailure.startedAt) : undefined;
  const since = opts.since?.getTime() ?? (summary.firstRecordAt !== undefined ? Date.parse(summary.firstRecordAt) : undefined);
  const anchor = successAt ?? since;

  let missed = 0;
  let expectedBy: Date | undefined;
  if (anchor !== undefined) {
    const graceAfter = (fire: Date, next: Date | undefined) => Math.min(next !== undefined ? next.getTime() - fire.getTime() : maxGrace, maxGrace);
    let fire = schedule.next(new Date(anchor));
    while (fire !== undefined && missed < MAX_COUNTED) {
      const next = schedule.next(fire);
      const deadline = fire.getTime() + graceAfter(fire, next);
      const failed = failedAt !== undefined && fire.getTime() <= failedAt;
      if (!failed && deadline > now.getTime()) {
        expectedBy = new Date(deadline);
        break;
      }
      missed += 1;
      fire = next;
    }
  }

  const fmt = (iso: string | number) => formatTime(new Date(iso), job.timezone);
  const runs = (n: number) => `${n >= MAX_COUNTED ? `${MAX_COUNTED}+` : n} scheduled run${n === 1 ? '' : 's'} missed`;
  const failure = lastFailure !== undefined ? `last failure ${fmt(lastFailure.startedAt)}: ${lastFailure.error ?? `exit code ${lastFailure.exitCode}`}` : undefined;
  const skipped =
    summary.skippedSinceLastSuccess > 0
      ? `${summary.skippedSinceLastSuccess} run${summary.skippedSinceLastSuccess === 1 ? '' : 's'} skipped${summary.lastSkipped !== undefined ? ` (last: ${summary.lastSkipped.reason})` : ''}`
      : undefined;
  const line = (head: string, ...tail: (string | undefined)[]) => [`${job.id}: ${head}`, ...tail.filter((t) => t !== undefined)].join('; ');

  let state: HealthState;
  let message: string;
  if (missed >= staleAfter && anchor !== undefined) {
    state = 'stale';
    const head = successAt !== undefined ? `no successful backup since ${fmt(successAt)}` : `no successful backup at all since ${fmt(anchor)}`;
    message = line(`${head} (${runs(missed)})`, failure, skipped);
  } else if (lastRun !== undefined && lastRun.status === 'failed') {
    state = 'failing';
    message = line(
      `last run failed ${fmt(lastRun.startedAt)}: ${lastRun.error ?? `exit code ${lastRun.exitCode}`}`,
      successAt !== undefined ? `last success ${fmt(successAt)}` : 'no success yet',
      missed > 0 ? runs(missed) : undefined,
      skipped,
    );
  } else if (successAt === undefined) {
    state = 'never';
    message = line('no successful backup yet', missed > 0 ? runs(missed) : undefined, failure, skipped);
  } else {
    state = 'ok';
    message = line(`ok, last success ${fmt(successAt)}`, missed > 0 ? runs(missed) : undefined, skipped);
  }
  const out: Assessment = { state, missedPeriods: missed, message };
  if (expectedBy !== undefined) out.expectedBy = expectedBy;
  return out;
}

/** "2026-11-20 02:00" in the zone given (the system's when undefined). */
export function formatTime(d: Date, timeZone?: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
  }).formatToParts(d);
  const get = (t: Intl.DateTimeFormatPartTypes) => parts.find((p) => p.type === t)?.value ?? '??';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}`;
}
