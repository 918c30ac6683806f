import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import { summarize, type HistoryRecord, type RunRecord } from '../../src/schedule/history.js';
import type { ScheduledJob } from '../../src/schedule/scheduler.js';
import { assess } from '../../src/schedule/staleness.js';

const daily: ScheduledJob = { id: 'acme/website', tenant: 'acme', cron: '0 2 * * *', timezone: 'UTC' };
const hourly: ScheduledJob = { id: 'acme/mail', tenant: 'acme', cron: '@hourly', timezone: 'UTC' };

const run = (job: ScheduledJob, startedAt: string, status: RunRecord['status'], error?: string): RunRecord => ({
  kind: 'run',
  job: job.id,
  startedAt,
  endedAt: new Date(Date.parse(startedAt) + 20 * 60_000).toISOString(),
  status,
  exitCode: status === 'failed' ? 1 : 0,
  ...(error !== undefined ? { error } : {}),
});
const at = (s: string) => new Date(s);

describe('assess', () => {
  it('flags a resource whose server was down for 3 schedule periods', () => {
    const records: HistoryRecord[] = [
      run(daily, '2026-11-19T02:00:01.000Z', 'success'),
      run(daily, '2026-11-20T02:00:01.000Z', 'success'),
      run(daily, '2026-11-21T02:00:01.000Z', 'failed', 'source: connection refused'),
      run(daily, '2026-11-22T02:00:01.000Z', 'failed', 'source: connection refused'),
      run(daily, '2026-11-23T02:00:01.000Z', 'failed', 'source: connection refused'),
    ];
    const a = assess(daily, summarize(records), at('2026-11-23T03:00:00Z'));
    expect(a.state).toBe('stale');
    expect(a.missedPeriods).toBe(3);
    expect(a.message).toBe(
      'acme/website: no successful backup since 2026-11-20 02:00 (3 scheduled runs missed); last failure 2026-11-23 02:00: source: connection refused',
    );
    // the next fire, 24th 02:00, is missed at 08:00 unless a run succeeds by then
    expect(a.expectedBy).toEqual(at('2026-11-24T08:00:00Z'));
  });

  it('the same when the daemon was down too: no runs at all, only time passing', () => {
    const records = [run(daily, '2026-11-20T02:00:01.000Z', 'success')];
    expect(assess(daily, summarize(records), at('2026-11-23T07:59:00Z'))).toMatchObject({ state: 'stale', missedPeriods: 2 });
    const a = assess(daily, summarize(records), at('2026-11-23T08:00:00Z'));
    expect(a).toMatchObject({ state: 'stale', missedPeriods: 3 });
    expect(a.message).toBe('acme/website: no successful backup since 2026-11-20 02:00 (3 scheduled runs missed)');
  });

  it('an hourly job checked 30 min after a successful run is ok', () => {
    const records = [run(hourly, '2026-11-23T10:00:00.000Z', 'failed', 'x'), run(hourly, '2026-11-23T11:00:00.000Z', 'success')];
    const a = assess(hourly, summarize(records), at('2026-11-23T11:30:00Z'));
    expect(a).toEqual({ state: 'ok', missedPeriods: 0, expectedBy: at('2026-11-23T13:00:00Z'), message: 'acme/mail: ok, last success 2026-11-23 11:00' });
  });

  it('one missed period is named but no alarm; the grace is the smaller of a period and 6 h', () => {
    const records = [run(hourly, '2026-11-23T11:00:00.000Z', 'success')];
    // the 12:00 run has until 13:00
    expect(assess(hourly, summarize(records), at('2026-11-23T12:59:59Z'))).toMatchObject({ state: 'ok', missedPeriods: 0 });
    expect(assess(hourly, summarize(records), at('2026-11-23T13:00:00Z'))).toMatchObject({
      state: 'ok',
      missedPeriods: 1,
      message: 'acme/mail: ok, last success 2026-11-23 11:00; 1 scheduled run missed',
    });
    expect(assess(hourly, summarize(records), at('2026-11-23T14:00:00Z'))).toMatchObject({ state: 'stale', missedPeriods: 2 });
  });

  it('a failed last run is failing while the last success is recent', () => {
    const records = [run(daily, '2026-11-22T02:00:01.000Z', 'success'), run(daily, '2026-11-23T02:00:01.000Z', 'failed', 'target usb: disk full')];
    const a = assess(daily, summarize(records), at('2026-11-23T03:00:00Z'));
    expect(a).toMatchObject({ state: 'failing', missedPeriods: 1 });
    expect(a.message).toBe('acme/website: last run failed 2026-11-23 02:00: target usb: disk full; last success 2026-11-22 02:00; 1 scheduled run missed');
  });

  it('an interrupted last run is not failing, but no success for its fire either; skipped runs are reported', () => {
    const records: HistoryRecord[] = [
      run(daily, '2026-11-22T02:00:01.000Z', 'success'),
      { kind: 'skipped', job: daily.id, at: '2026-11-23T02:00:00.000Z', reason: 'another cerberus process is running it (its run lock is held)' },
      run(daily, '2026-11-23T02:10:00.000Z', 'interrupted', 'stopped: the scheduler shut down'),
    ];
    const a = assess(daily, summarize(records), at('2026-11-23T04:00:00Z'));
    expect(a).toMatchObject({ state: 'ok', missedPeriods: 1 });
    expect(a.message).toBe('acme/website: ok, last success 2026-11-22 02:00; 1 scheduled run missed; 1 run skipped (last: another cerberus process is running it (its run lock is held))');
  });

  it('@daily with a timezone fires at local midnight', () => {
    const berlin: ScheduledJob = { id: 'acme/files', tenant: 'acme', cron: '@daily', timezone: 'Europe/Berlin' };
    // midnight in Berlin is 23:00 UTC in winter
    const records = [run(berlin, '2026-11-20T23:00:02.000Z', 'success')];
    const s = summarize(records);
    const ok = assess(berlin, s, at('2026-11-22T04:59:00Z'));
    expect(ok).toMatchObject({ state: 'ok', missedPeriods: 0, expectedBy: at('2026-11-22T05:00:00Z') });
    expect(ok.message).toBe('acme/files: ok, last success 2026-11-21 00:00');
    expect(assess(berlin, s, at('2026-11-22T05:00:00Z')).missedPeriods).toBe(1);
    const stale = assess(berlin, s, at('2026-11-23T05:00:00Z'));
    expect(stale).toMatchObject({ state: 'stale', missedPeriods: 2 });
    expect(stale.message).toBe('acme/files: no successful backup since 2026-11-21 00:00 (2 scheduled runs missed)');
    // read in UTC, the success at 23:00 is followed by a fire at midnight, missed by 06:00
    expect(assess(berlin, s, at('2026-11-21T06:30:00Z')).missedPeriods).toBe(0);
    expect(assess({ ...berlin, timezone: 'UTC' }, s, at('2026-11-21T06:30:00Z')).missedPeriods).toBe(1);
  });

  it('a resource that never succeeded: never at first, stale once its schedule has passed twice', () => {
    expect(assess(daily, summarize([]), at('2026-11-23T03:00:00Z'))).toEqual({ state: 'never', missedPeriods: 0, message: 'acme/website: no successful backup yet' });
    const since = at('2026-11-22T12:00:00Z');
    expect(assess(daily, summarize([]), at('2026-11-23T09:00:00Z'), { since })).toMatchObject({ state: 'never', missedPeriods: 1 });
    const a = assess(daily, summarize([]), at('2026-11-24T09:00:00Z'), { since });
    expect(a).toMatchObject({ state: 'stale', missedPeriods: 2, message: 'acme/website: no successful backup at all since 2026-11-22 12:00 (2 scheduled runs missed)' });
    // without a date, the oldest record tells where to count from
    const failed = [run(daily, '2026-11-23T02:00:01.000Z', 'failed', 'boom')];
    expect(assess(daily, summarize(failed), at('2026-11-23T03:00:00Z'))).toMatchObject({ state: 'failing', missedPeriods: 0 });
    expect(assess(daily, summarize(failed), at('2026-11-25T09:00:00Z'))).toMatchObject({ state: 'stale', missedPeriods: 2 });
  });

  it('counts a per-second schedule idle for long up to a cap', () => {
    const job: ScheduledJob = { id: 't/r', tenant: 't', cron: '* * * * * *', timezone: 'UTC' };
    const a = assess(job, summarize([run(job, '2026-01-01T00:00:00.000Z', 'success')]), at('2026-12-01T00:00:00Z'));
    expect(a.missedPeriods).toBe(1000);
    expect(a.message).toContain('(1000+ scheduled runs missed)');
  });

  it('a bad cron or timezone is a CONFIG error naming the job', () => {
    const bad = (job: Partial<ScheduledJob>) => {
      try {
        assess({ ...daily, ...job }, summarize([]), new Date());
      } catch (err) {
        return err as CerberusError;
      }
      throw new Error('no error');
    };
    expect(bad({ cron: 'every day' })).toMatchObject({ code: 'CONFIG', message: expect.stringMatching(/^acme\/website: invalid cron "every day"/) });
    expect(bad({ timezone: 'Mars/Olympus' })).toMatchObject({ code: 'CONFIG', message: expect.stringMatching(/in timezone "Mars\/Olympus"/) });
  });
});
