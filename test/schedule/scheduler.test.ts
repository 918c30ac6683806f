import { describe, expect, it, vi } from 'vitest';
import { acquireRunLock, RunHistory, type HistoryRecord, type RunRecord, type SkippedRecord } from '../../src/schedule/history.js';
import { MAX_TIMER_MS, Scheduler, type Clock, type RunOutcome, type Runner, type ScheduledJob } from '../../src/schedule/scheduler.js';
import { tempDir } from '../helpers/cli.js';

/** Time that moves only when told: timers fire in order as it passes them. */
class FakeClock implements Clock {
  private t: number;
  private seq = 0;
  private timers: { at: number; seq: number; fn: () => void }[] = [];
  /** every delay asked for */
  readonly delays: number[] = [];

  constructor(start: string) {
    this.t = Date.parse(start);
  }

  now(): Date {
    return new Date(this.t);
  }

  setTimeout(fn: () => void, ms: number): { cancel(): void } {
    this.delays.push(ms);
    const timer = { at: this.t + ms, seq: this.seq++, fn };
    this.timers.push(timer);
    return { cancel: () => (this.timers = this.timers.filter((t) => t !== timer)) };
  }

  pending(): Date[] {
    return this.timers.map((t) => new Date(t.at));
  }

  /** Moves to `iso`, firing each timer due on the way at its own time. */
  async advanceTo(iso: string): Promise<void> {
    const target = Date.parse(iso);
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers[0];
      if (next === undefined || next.at > target) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
      await tick();
    }
    this.t = target;
    await tick();
  }
}

const tick = () => new Promise<void>((r) => setImmediate(r));
const until = (check: () => void) => vi.waitFor(check, { timeout: 3_000, interval: 2 });

interface Call {
  job: string;
  at: Date;
  signal: AbortSignal;
  finish(outcome?: RunOutcome): void;
  done: boolean;
}

/** Runs that end when the test says so; on abort they end as a killed backup would, unless told to ignore it. */
class FakeRunner implements Runner {
  readonly calls: Call[] = [];
  private readonly active = new Map<string, number>();
  maxActive = 0;
  /** a job id that ever ran twice at once */
  overlapped: string[] = [];
  /** finish every run at once with success */
  auto = false;

  constructor(private readonly clock: Clock) {}

  run(job: ScheduledJob, signal: AbortSignal): Promise<RunOutcome> {
    const n = (this.active.get(job.id) ?? 0) + 1;
    if (n > 1) this.overlapped.push(job.id);
    this.active.set(job.id, n);
    this.maxActive = Math.max(this.maxActive, [...this.active.values()].reduce((a, b) => a + b, 0));
    return new Promise<RunOutcome>((resolve) => {
      const call: Call = {
        job: job.id,
        at: this.clock.now(),
        signal,
        done: false,
        finish: (outcome = { status: 'success', exitCode: 0 }) => {
          if (call.done) return;
          call.done = true;
          const left = (this.active.get(job.id) ?? 1) - 1;
          if (left > 0) this.active.set(job.id, left);
          else this.active.delete(job.id);
          resolve(outcome);
        },
      };
      this.calls.push(call);
      signal.addEventListener('abort', () => call.finish({ status: 'failed', exitCode: 143, error: 'killed by SIGTERM' }));
      if (this.auto) call.finish();
    });
  }

  open(jobId: string): Call {
    const call = this.calls.find((c) => c.job === jobId && !c.done);
    if (call === undefined) throw new Error(`${jobId} is not running`);
    return call;
  }
}

const job = (id: string, cron = '@hourly'): ScheduledJob => ({ id, tenant: id.split('/')[0]!, cron, timezone: 'UTC' });

async function setup(jobs: ScheduledJob[], opts: { maxParallel?: number; perTenant?: number; start?: string } = {}) {
  const clock = new FakeClock(opts.start ?? '2026-11-20T00:00:30Z');
  const runner = new FakeRunner(clock);
  const history = new RunHistory(await tempDir());
  const log: string[] = [];
  const sched = new Scheduler({ jobs, maxParallel: opts.maxParallel ?? 4, perTenant: opts.perTenant, runner, history, clock, log: (l) => log.push(l) });
  return { clock, runner, history, log, sched };
}

const runs = async (h: RunHistory, id: string) => (await h.records(id)).filter((r): r is RunRecord => r.kind === 'run');
const skips = async (h: RunHistory, id: string) => (await h.records(id)).filter((r): r is SkippedRecord => r.kind === 'skipped');
const started = (r: HistoryRecord) => (r.kind === 'run' ? r.startedAt : r.at);

describe('Scheduler', () => {
  it('runs two tenants side by side', async () => {
    const { clock, runner, history, sched } = await setup([job('acme/web'), job('zeta/web')]);
    sched.start();
    await clock.advanceTo('2026-11-20T00:59:59Z');
    expect(runner.calls).toHaveLength(0);
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    expect(sched.running().sort()).toEqual(['acme/web', 'zeta/web']);
    await clock.advanceTo('2026-11-20T01:20:00Z');
    runner.open('acme/web').finish();
    runner.open('zeta/web').finish({ status: 'warning', exitCode: 3 });
    await until(() => expect(sched.running()).toEqual([]));
    expect(await runs(history, 'acme/web')).toEqual([
      { kind: 'run', job: 'acme/web', startedAt: '2026-11-20T01:00:00.000Z', endedAt: '2026-11-20T01:20:00.000Z', status: 'success', exitCode: 0 },
    ]);
    expect((await runs(history, 'zeta/web'))[0]).toMatchObject({ startedAt: '2026-11-20T01:00:00.000Z', status: 'warning', exitCode: 3 });
    await sched.stop(0);
  });

  it("runs one tenant's resources one after another (perTenant 1)", async () => {
    const { clock, runner, history, sched } = await setup([job('acme/web'), job('acme/mail'), job('zeta/web')]);
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    expect(sched.running().sort()).toEqual(['acme/web', 'zeta/web']);
    expect(sched.queued()).toEqual(['acme/mail']);
    await clock.advanceTo('2026-11-20T01:10:00Z');
    runner.open('acme/web').finish();
    await until(() => expect(runner.calls).toHaveLength(3));
    expect(sched.running().sort()).toEqual(['acme/mail', 'zeta/web']);
    await clock.advanceTo('2026-11-20T01:30:00Z');
    runner.open('acme/mail').finish();
    runner.open('zeta/web').finish();
    await until(() => expect(sched.running()).toEqual([]));
    const web = (await runs(history, 'acme/web'))[0]!;
    const mail = (await runs(history, 'acme/mail'))[0]!;
    expect(mail.startedAt).toBe('2026-11-20T01:10:00.000Z');
    expect(mail.startedAt >= web.endedAt).toBe(true);
    expect(runner.maxActive).toBe(2);
    await sched.stop(0);
  });

  it('runs a tenant\'s resources side by side with perTenant 2', async () => {
    const { clock, runner, sched } = await setup([job('acme/web'), job('acme/mail'), job('acme/files')], { perTenant: 2 });
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    expect(sched.queued()).toEqual(['acme/files']);
    runner.open('acme/web').finish();
    runner.open('acme/mail').finish();
    await until(() => expect(runner.calls).toHaveLength(3));
    runner.open('acme/files').finish();
    await sched.stop(0);
  });

  it('never runs more than maxParallel at once', async () => {
    const ids = ['a/x', 'b/x', 'c/x', 'd/x', 'e/x'];
    const { clock, runner, sched } = await setup(ids.map((id) => job(id)), { maxParallel: 2 });
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    expect(sched.queued()).toEqual(['c/x', 'd/x', 'e/x']);
    for (let n = 3; n <= 5; n++) {
      runner.calls.find((c) => !c.done)!.finish();
      await until(() => expect(runner.calls).toHaveLength(n));
      expect(sched.running()).toHaveLength(2);
    }
    for (const c of runner.calls) c.finish();
    await until(() => expect(sched.running()).toEqual([]));
    expect(runner.maxActive).toBe(2);
    // each run takes its lock file first: two started together may reach the runner either way
    expect(runner.calls.map((c) => c.job).sort()).toEqual(ids);
    await sched.stop(0);
  });

  it('a run longer than its interval is never doubled: one skip per missed fire, no catch-up after', async () => {
    const { clock, runner, history, log, sched } = await setup([job('acme/web', '*/5 * * * *')]);
    sched.start();
    await clock.advanceTo('2026-11-20T00:05:00Z');
    await until(() => expect(runner.calls).toHaveLength(1));
    // runs for 17 minutes: the fires at 00:10, 00:15 and 00:20 find it going
    await clock.advanceTo('2026-11-20T00:22:00Z');
    await until(async () => expect(await skips(history, 'acme/web')).toHaveLength(3));
    runner.open('acme/web').finish();
    await until(() => expect(sched.running()).toEqual([]));
    await new Promise((r) => setTimeout(r, 30));
    expect(runner.calls).toHaveLength(1);
    await clock.advanceTo('2026-11-20T00:25:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    runner.open('acme/web').finish();
    await until(() => expect(sched.running()).toEqual([]));

    expect(runner.overlapped).toEqual([]);
    const recs = await history.records('acme/web');
    expect(recs.map((r) => `${r.kind} ${started(r)}`)).toEqual([
      'skipped 2026-11-20T00:10:00.000Z',
      'skipped 2026-11-20T00:15:00.000Z',
      'skipped 2026-11-20T00:20:00.000Z',
      'run 2026-11-20T00:05:00.000Z',
      'run 2026-11-20T00:25:00.000Z',
    ]);
    for (const s of await skips(history, 'acme/web')) expect(s.reason).toBe('the run started at 2026-11-20T00:05:00.000Z is still going');
    expect(log).toContain('acme/web: skipped the run due at 2026-11-20T00:10:00.000Z: the run started at 2026-11-20T00:05:00.000Z is still going');
    await sched.stop(0);
  });

  it('a fire that finds the run still queued is skipped too', async () => {
    const { clock, runner, history, sched } = await setup([job('acme/web', '*/5 * * * *'), job('acme/mail', '*/5 * * * *')]);
    sched.start();
    await clock.advanceTo('2026-11-20T00:05:00Z');
    await until(() => expect(runner.calls).toHaveLength(1));
    await clock.advanceTo('2026-11-20T00:10:00Z');
    await until(async () => expect(await skips(history, 'acme/mail')).toHaveLength(1));
    expect((await skips(history, 'acme/mail'))[0]!.reason).toBe('the run due at 2026-11-20T00:05:00.000Z is still waiting for a free slot');
    expect(await skips(history, 'acme/web')).toHaveLength(1);
    runner.open('acme/web').finish();
    await until(() => expect(runner.calls).toHaveLength(2));
    runner.open('acme/mail').finish();
    await sched.stop(0);
  });

  it('stop: a run that ends within the grace is a success, one that does not is aborted and recorded interrupted', async () => {
    const { clock, runner, history, sched } = await setup([job('acme/web'), job('zeta/web')]);
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(2));
    await clock.advanceTo('2026-11-20T01:05:00Z');
    let stopped = false;
    const stopping = sched.stop(10 * 60_000).then(() => (stopped = true));
    expect(clock.pending()).toEqual([new Date('2026-11-20T01:15:00Z')]);
    await clock.advanceTo('2026-11-20T01:07:00Z');
    runner.open('acme/web').finish();
    await until(() => expect(sched.running()).toEqual(['zeta/web']));
    expect(stopped).toBe(false);
    await clock.advanceTo('2026-11-20T01:15:00Z');
    await stopping;
    expect(runner.calls.find((c) => c.job === 'acme/web')!.signal.aborted).toBe(false);
    expect(runner.calls.find((c) => c.job === 'zeta/web')!.signal.aborted).toBe(true);
    expect(await runs(history, 'acme/web')).toMatchObject([{ status: 'success', endedAt: '2026-11-20T01:07:00.000Z' }]);
    expect(await runs(history, 'zeta/web')).toEqual([
      { kind: 'run', job: 'zeta/web', startedAt: '2026-11-20T01:00:00.000Z', endedAt: '2026-11-20T01:15:00.000Z', status: 'interrupted', exitCode: 143, error: 'killed by SIGTERM' },
    ]);
    // no more runs
    await clock.advanceTo('2026-11-20T05:00:00Z');
    expect(runner.calls).toHaveLength(2);
    expect(clock.pending()).toEqual([]);
  });

  it('stop does not wait out the grace when the runs end before', async () => {
    const { clock, runner, sched } = await setup([job('acme/web')]);
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(1));
    const stopping = sched.stop(3600_000);
    runner.open('acme/web').finish();
    await stopping;
    expect(clock.pending()).toEqual([]);
  });

  it('stop drops queued runs and records them as skipped', async () => {
    const { clock, runner, history, log, sched } = await setup([job('acme/web'), job('acme/mail')]);
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(1));
    const stopping = sched.stop(60_000);
    expect(sched.queued()).toEqual([]);
    runner.open('acme/web').finish();
    await stopping;
    expect(runner.calls).toHaveLength(1);
    expect(await history.records('acme/mail')).toEqual([{ kind: 'skipped', job: 'acme/mail', at: '2026-11-20T01:00:00.000Z', reason: 'shutting down' }]);
    expect(log).toContain('acme/mail: skipped the run due at 2026-11-20T01:00:00.000Z: shutting down');
  });

  it('a runner that throws is a failed run, and the schedule goes on', async () => {
    const { clock, history } = await setup([]);
    let n = 0;
    const sched = new Scheduler({
      jobs: [job('acme/web')],
      maxParallel: 1,
      history,
      clock,
      runner: {
        run: () => {
          n += 1;
          if (n === 1) throw new Error('spawn EAGAIN\nat somewhere');
          return Promise.resolve({ status: 'success', exitCode: 0 });
        },
      },
    });
    sched.start();
    await clock.advanceTo('2026-11-20T01:00:00Z');
    await until(() => expect(sched.running()).toEqual([]));
    await clock.advanceTo('2026-11-20T02:00:00Z');
    await until(async () => expect(await runs(history, 'acme/web')).toHaveLength(2));
    expect((await runs(history, 'acme/web')).map((r) => [r.status, r.error])).toEqual([
      ['failed', 'spawn EAGAIN at somewhere'],
      ['success', undefined],
    ]);
    await sched.stop(0);
  });

  it('chains timers longer than setTimeout can hold', async () => {
    const { clock, runner, sched } = await setup([job('acme/archive', '0 0 1 1 *')]);
    sched.start();
    expect(clock.delays).toEqual([MAX_TIMER_MS]);
    expect(sched.nextFire('acme/archive')).toEqual(new Date('2027-01-01T00:00:00Z'));
    await clock.advanceTo('2026-12-31T23:59:59Z');
    expect(runner.calls).toHaveLength(0);
    expect(clock.delays.every((d) => d <= MAX_TIMER_MS)).toBe(true);
    await clock.advanceTo('2027-01-01T00:00:00Z');
    await until(() => expect(runner.calls).toHaveLength(1));
    expect(runner.calls[0]!.at).toEqual(new Date('2027-01-01T00:00:00Z'));
    runner.open('acme/archive').finish();
    await sched.stop(0);
  });

  it('runDue runs exactly the jobs due now, within the limits, and waits for them', async () => {
    const jobs = [
      job('new/web'), // never ran: due
      job('fresh/web'), // ran after the 10:00 fire
      job('late/web', '0 2 * * *'), // last ran yesterday
      job('done/web', '0 2 * * *'), // ran today at 02:00
      job('noon/web', '0 12 * * *'), // its last fire (yesterday 12:00) ran
      job('new/mail'), // due, after new/web (same tenant)
      job('locked/web'), // due, but its lock is held elsewhere
    ];
    const { runner, history, sched } = await setup(jobs, { start: '2026-11-20T10:30:00Z' });
    const ran = (id: string, startedAt: string): RunRecord => ({ kind: 'run', job: id, startedAt, endedAt: startedAt, status: 'success', exitCode: 0 });
    await history.append(ran('fresh/web', '2026-11-20T10:00:01.000Z'));
    await history.append(ran('late/web', '2026-11-19T02:00:01.000Z'));
    await history.append(ran('done/web', '2026-11-20T02:00:01.000Z'));
    await history.append(ran('noon/web', '2026-11-19T12:00:01.000Z'));
    await history.append({ kind: 'skipped', job: 'fresh/web', at: '2026-11-20T10:00:00.000Z', reason: 'x' });
    const release = await acquireRunLock(history.dir, 'locked/web');
    runner.auto = true;
    const records = await sched.runDue();
    await release!();
    const order = runner.calls.map((c) => c.job);
    expect([...order].sort()).toEqual(['late/web', 'new/mail', 'new/web']);
    expect(order.indexOf('new/mail')).toBeGreaterThan(order.indexOf('new/web')); // one tenant: in turn
    expect(records.map((r) => `${r.job} ${r.kind}`).sort()).toEqual(['late/web run', 'locked/web skipped', 'new/mail run', 'new/web run']);
    expect(await history.records('locked/web')).toEqual([
      { kind: 'skipped', job: 'locked/web', at: '2026-11-20T10:00:00.000Z', reason: 'another cerberus process is running it (its run lock is held)' },
    ]);
    expect(sched.running()).toEqual([]);
    // run again at once: nothing is due any more
    runner.calls.length = 0;
    await sched.runDue();
    expect(runner.calls.map((c) => c.job)).toEqual(['locked/web']);
  });

  it('refuses a bad cron, a job listed twice, and limits below 1', async () => {
    const history = new RunHistory(await tempDir());
    const runner: Runner = { run: () => Promise.resolve({ status: 'success', exitCode: 0 }) };
    const make = (jobs: ScheduledJob[], maxParallel = 1) => () => new Scheduler({ jobs, maxParallel, runner, history });
    expect(make([job('a/x', 'at noon')])).toThrow(/a\/x: invalid cron "at noon"/);
    expect(make([job('a/x'), job('a/x')])).toThrow('a/x is listed twice');
    expect(make([job('a/x')], 0)).toThrow(/maxParallel must be a whole number of at least 1/);
  });
});
