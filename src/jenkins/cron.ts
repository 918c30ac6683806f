import { configError } from '../errors.js';

/**
 * A croner schedule as a Jenkins TimerTrigger spec. Jenkins reads five fields of numbers, `*`,
 * ranges, lists and steps, plus `H` (a per-job hash that spreads jobs over the period); it
 * knows no seconds, no names (MON, JAN), no `L`, `W` or `#`, and it runs a day only when the
 * day of month AND the day of week match, where croner (as Vixie cron) runs on either.
 */

/**
 * Nicknames say "once a period" without a time, so Jenkins may pick one: `H` spreads the tenants'
 * jobs instead of starting them all at 00:00. Jenkins' own @midnight is H H(0-2) * * *.
 */
const NICKNAMES: Record<string, string> = {
  '@yearly': 'H H H H *',
  '@annually': 'H H H H *',
  '@monthly': 'H H H * *',
  '@weekly': 'H H * * H',
  '@daily': 'H H * * *',
  '@midnight': 'H H(0-2) * * *',
  '@hourly': 'H * * * *',
};

/** A field Jenkins reads as croner does: numbers, `*`, `a-b`, `a,b`, `/n`. */
const PLAIN_FIELD = /^(\*|\d+(-\d+)?)(\/\d+)?(,(\*|\d+(-\d+)?)(\/\d+)?)*$/;

/** `TZ=<timezone>` then the cron line, as Jenkins' spec allows; `what` names the resource in errors. */
export function jenkinsCronSpec(schedule: string, timezone: string, what: string): string {
  return `TZ=${timezone}\n${jenkinsCron(schedule, what)}`;
}

/** The cron line alone: a nickname as its `H` form, five plain fields as written. */
export function jenkinsCron(schedule: string, what: string): string {
  const expr = schedule.trim();
  const fail = (why: string, hint: string) => configError(`${what}: schedule ${JSON.stringify(schedule)} cannot be a Jenkins cron: ${why}`, hint);
  if (expr.startsWith('@')) {
    const h = NICKNAMES[expr.toLowerCase()];
    if (h === undefined) throw fail('Jenkins knows no such nickname', 'use @hourly, @daily, @weekly, @monthly, @yearly or five fields');
    return h;
  }
  const fields = expr.split(/\s+/).map((f) => (f === '?' ? '*' : f));
  if (fields.length === 6) throw fail('it has a seconds field, and Jenkins runs jobs at minute resolution', 'drop the first (seconds) field, e.g. "0 2 * * *"');
  if (fields.length !== 5) throw fail(`it has ${fields.length} fields where Jenkins reads five`, 'write minute hour day-of-month month day-of-week, e.g. "0 2 * * *"');
  const bad = fields.find((f) => !PLAIN_FIELD.test(f));
  if (bad !== undefined) throw fail(`Jenkins cannot read the field ${JSON.stringify(bad)} (no names, L, W or #)`, 'use numbers, *, ranges a-b, lists a,b and steps /n');
  if (fields[2] !== '*' && fields[4] !== '*') {
    throw fail('it names both a day of month and a day of week: croner runs on either, Jenkins only on days that are both', 'keep one of the two fields, or make it two resources');
  }
  return fields.join(' ');
}
