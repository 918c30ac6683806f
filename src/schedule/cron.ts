import { Cron } from 'croner';
import { CerberusError } from '../errors.js';

/** When a schedule fires, read from croner (a paused Cron: it computes times, it never runs anything). */
export interface CronSchedule {
  /** the first fire time strictly after `from`, or undefined when there is none */
  next(from: Date): Date | undefined;
  /** the most recent fire time at or before `at`, or undefined */
  latest(at: Date): Date | undefined;
}

export function compileCron(id: string, expr: string, timezone?: string): CronSchedule {
  let cron: Cron;
  try {
    cron = new Cron(expr, { paused: true, timezone });
    // a bad timezone only shows when a time is computed
    cron.nextRun(new Date(0));
  } catch (err) {
    const what = timezone === undefined ? `cron ${JSON.stringify(expr)}` : `cron ${JSON.stringify(expr)} in timezone ${JSON.stringify(timezone)}`;
    throw new CerberusError('CONFIG', `${id}: invalid ${what}: ${err instanceof Error ? err.message : String(err)}`, {
      hint: 'use five fields (minute hour day month weekday), a nickname such as @hourly or @daily, and an IANA timezone such as Europe/Berlin',
    });
  }
  return {
    next: (from) => cron.nextRun(from) ?? undefined,
    // previousRuns excludes its reference; fire times are whole seconds, so 1 ms later includes `at`
    latest: (at) => cron.previousRuns(1, new Date(at.getTime() + 1))[0],
  };
}
