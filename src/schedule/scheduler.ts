import { CerberusError, describeError } from '../errors.js';
import { compileCron, type CronSchedule } from './cron.js';
import { isSuccess, type HistoryRecord, type HistoryStore, type RunRecord, type RunStatus, type SkippedRecord } from './history.js';

export interface ScheduledJob {
  /** "tenant/resource" */
  id: string;
  tenant: string;
  cron: string;
  /** IANA name the cron is read in (default: the system's local time zone, as croner does) */
  timezone?: string;
}

export interface RunOutcome {
  status: RunStatus;
  exitCode: number;
  error?: string;
}

export interface Runner {
  /** abort = stop the run */
  run(job: ScheduledJob, signal: AbortSignal): Promise<RunOutcome>;
}

export interface Clock {
  now(): Date;
  setTimeout(fn: () => void, ms: number): { cancel(): void };
}

export interface SchedulerOptions {
  jobs: readonly ScheduledJob[];
  /** runs at once over all tenants */
  maxParallel: number;
  runner: Runner;
  history: HistoryStore;
  clock?: Clock;
  log?: (line: string) => void;
  /** runs at once per tenant (default 1: one customer's resources run one after another) */
  perTenant?: number;
}

export const systemClock: Clock = {
  now: () => new Date(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** setTimeout's limit (a longer delay fires at once): longer waits are chained. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

interface JobState {
  job: ScheduledJob;
  schedule: CronSchedule;
  timer?: { cancel(): void };
  /** the fire time the timer waits for */
  nextFire?: Date;
  /** queued: waiting for a slot; running: has a slot (maybe still taking its lock) */
  phase: 'idle' | 'queued' | 'running';
  /** the fire time the queued or running run is for */
  dueAt?: Date;
  /** when the running run started */
  startedAt?: Date;
  abort?: AbortController;
  /** settles when the queued or running run is over and recorded */
  done?: Promise<HistoryRecord | undefined>;
  settle?: (rec: HistoryRecord | undefined) => void;
}

/**
 * Starts each job at its cron times, within two limits: `maxParallel` runs at once in all, and
 * `perTenant` per tenant. A run waiting for a slot is queued. A job that fires while its run is
 * still queued or going is not started twice: the fire is recorded as skipped. Fire times come
 * from the clock, never from a count of fires, so a long run costs one skip record per fire it
 * covered and no burst of catch-up runs after it.
 */
export class Scheduler {
  private readonly states = new Map<string, JobState>();
  private readonly queue: JobState[] = [];
  private readonly maxParallel: number;
  private readonly perTenant: number;
  private readonly runner: Runner;
  private readonly history: HistoryStore;
  private readonly clock: Clock;
  private readonly log: (line: string) => void;
  private readonly busyTenants = new Map<string, number>();
  private active = 0;
  private started = false;
  private stopping: Promise<void> | undefined;
  /** records being written, so stop() and runDue() return after them */
  private readonly writes = new Set<Promise<void>>();

  constructor(opts: SchedulerOptions) {
    this.maxParallel = positiveInt(opts.maxParallel, 'maxParallel');
    this.perTenant = positiveInt(opts.perTenant ?? 1, 'perTenant');
    this.runner = opts.runner;
    this.history = opts.history;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log ?? (() => undefined);
    for (const job of opts.jobs) {
      if (this.states.has(job.id)) throw new CerberusError('CONFIG', `${job.id} is listed twice`, { hint: 'each tenant/resource may appear once' });
      this.states.set(job.id, { job, schedule: compileCron(job.id, job.cron, job.timezone), phase: 'idle' });
    }
  }

  /** Arms a timer per job for its next fire time. */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    for (const st of this.states.values()) this.arm(st, this.clock.now());
  }

  /** The ids of the jobs running now (not those queued). */
  running(): string[] {
    return [...this.states.values()].filter((s) => s.phase === 'running').map((s) => s.job.id);
  }

  /** When a job fires next, while the scheduler is started; undefined when it never does. */
  nextFire(jobId: string): Date | undefined {
    return this.states.get(jobId)?.nextFire;
  }

  /** The ids of the jobs waiting for a slot, first to start first. */
  queued(): string[] {
    return this.queue.map((s) => s.job.id);
  }

  /**
   * For `--once`: runs the jobs due now (see dueFire) within the same limits, and resolves when
   * all of them are over and recorded, with what was recorded for them.
   */
  async runDue(): Promise<HistoryRecord[]> {
    const now = this.clock.now();
    const due: Promise<HistoryRecord | undefined>[] = [];
    for (const st of this.states.values()) {
      const summary = await this.history.summary(st.job.id);
      const fire = dueFire(st.schedule, summary.lastRun, now);
      if (fire === undefined) continue;
      const p = this.fire(st, fire);
      if (p !== undefined) due.push(p);
    }
    const records = await Promise.all(due);
    await this.flushWrites();
    return records.filter((r): r is HistoryRecord => r !== undefined);
  }

  /**
   * Takes no new runs, drops the queued ones (recorded as skipped), gives the running ones
   * graceMs to end, then aborts them and waits for them to settle and be recorded.
   */
  stop(graceMs: number): Promise<void> {
    this.stopping ??= this.shutDown(graceMs);
    return this.stopping;
  }

  private async shutDown(graceMs: number): Promise<void> {
    for (const st of this.states.values()) {
      st.timer?.cancel();
      st.timer = undefined;
      st.nextFire = undefined;
    }
    for (const st of this.queue.splice(0)) {
      const rec = this.skip(st, st.dueAt ?? this.clock.now(), 'shutting down');
      st.phase = 'idle';
      this.finish(st, rec);
    }
    const running = () => [...this.states.values()].filter((s) => s.phase === 'running');
    const all = () => Promise.all(running().map((s) => s.done));
    if (running().length > 0) {
      this.log(`stopping: waiting up to ${Math.round(graceMs / 1000)} s for ${running().map((s) => s.job.id).join(', ')}`);
      let timer: { cancel(): void } | undefined;
      const graceOver = new Promise<'grace'>((r) => (timer = this.clock.setTimeout(() => r('grace'), graceMs)));
      const outcome = await Promise.race([all().then(() => 'done' as const), graceOver]);
      timer?.cancel();
      if (outcome === 'grace') {
        for (const st of running()) {
          this.log(`${st.job.id}: still running after the grace period: stopping it`);
          st.abort?.abort();
        }
        await all();
      }
    }
    await this.flushWrites();
  }

  /** The timer for a job's next fire time after `from`; a wait longer than a timer can hold is chained. */
  private arm(st: JobState, from: Date): void {
    const next = st.schedule.next(from);
    st.nextFire = next;
    if (next === undefined) {
      this.log(`${st.job.id}: its cron ${JSON.stringify(st.job.cron)} has no future fire time`);
      return;
    }
    this.wait(st, next);
  }

  private wait(st: JobState, target: Date): void {
    const delay = Math.min(Math.max(target.getTime() - this.clock.now().getTime(), 0), MAX_TIMER_MS);
    st.timer = this.clock.setTimeout(() => {
      st.timer = undefined;
      if (this.stopping) return;
      const now = this.clock.now();
      // a chained wait, or a timer that woke early: not yet
      if (now.getTime() < target.getTime()) return this.wait(st, target);
      void this.fire(st, target);
      // from now, not from target: a wait that overslept (a suspended machine) fires once
      this.arm(st, now.getTime() > target.getTime() ? now : target);
    }, delay);
  }

  /** One fire: queue the run, or record it as skipped if the last one is not over. */
  private fire(st: JobState, dueAt: Date): Promise<HistoryRecord | undefined> | undefined {
    if (this.stopping) return undefined;
    if (st.phase !== 'idle') {
      const reason =
        st.phase === 'running' && st.startedAt !== undefined
          ? `the run started at ${iso(st.startedAt)} is still going`
          : `the run due at ${iso(st.dueAt ?? dueAt)} is still ${st.phase === 'queued' ? 'waiting for a free slot' : 'going'}`;
      return this.skip(st, dueAt, reason);
    }
    st.phase = 'queued';
    st.dueAt = dueAt;
    st.done = new Promise((r) => (st.settle = r));
    this.queue.push(st);
    this.pump();
    return st.done;
  }

  /** Starts queued runs while there are slots: the first in the queue whose tenant has room. */
  private pump(): void {
    while (this.active < this.maxParallel) {
      const i = this.queue.findIndex((s) => (this.busyTenants.get(s.job.tenant) ?? 0) < this.perTenant);
      if (i < 0) return;
      const [st] = this.queue.splice(i, 1);
      if (st !== undefined) this.launch(st);
    }
  }

  private launch(st: JobState): void {
    st.phase = 'running';
    this.active += 1;
    this.busyTenants.set(st.job.tenant, (this.busyTenants.get(st.job.tenant) ?? 0) + 1);
    const run = this.execute(st).catch((err: unknown) => {
      this.log(`${st.job.id}: ${describeError(err)}`);
      return undefined;
    });
    void run.then((rec) => {
      this.active -= 1;
      const n = (this.busyTenants.get(st.job.tenant) ?? 1) - 1;
      if (n > 0) this.busyTenants.set(st.job.tenant, n);
      else this.busyTenants.delete(st.job.tenant);
      st.phase = 'idle';
      st.startedAt = undefined;
      st.abort = undefined;
      this.finish(st, rec);
      if (!this.stopping) this.pump();
    });
  }

  /** Takes the job's lock, runs it, records how it ended. Never throws: a daemon keeps going. */
  private async execute(st: JobState): Promise<HistoryRecord | undefined> {
    const { job } = st;
    const dueAt = st.dueAt ?? this.clock.now();
    let release: (() => Promise<void>) | undefined;
    try {
      release = await this.history.lock(job.id);
    } catch (err) {
      this.log(`${job.id}: could not take its run lock: ${describeError(err)}`);
      return this.skip(st, dueAt, `its run lock could not be taken: ${describeError(err)}`);
    }
    if (release === undefined) return this.skip(st, dueAt, 'another cerberus process is running it (its run lock is held)');
    try {
      if (this.stopping) return await this.skip(st, dueAt, 'shutting down');
      const ac = new AbortController();
      st.abort = ac;
      const startedAt = this.clock.now();
      st.startedAt = startedAt;
      this.log(`${job.id}: started (due ${iso(dueAt)})`);
      let outcome: RunOutcome;
      try {
        outcome = await this.runner.run(job, ac.signal);
      } catch (err) {
        outcome = { status: 'failed', exitCode: 1, error: oneLine(describeError(err)) };
      }
      // a run that did not succeed after it was aborted ended because of the abort
      if (ac.signal.aborted && !isSuccess(outcome.status)) {
        outcome = { ...outcome, status: 'interrupted', error: outcome.error ?? 'stopped: the scheduler shut down' };
      }
      const rec: RunRecord = { kind: 'run', job: job.id, startedAt: iso(startedAt), endedAt: iso(this.clock.now()), status: outcome.status, exitCode: outcome.exitCode };
      if (outcome.error !== undefined) rec.error = oneLine(outcome.error);
      this.log(`${job.id}: ${rec.status}${rec.error !== undefined ? `: ${rec.error}` : ''}`);
      await this.record(rec);
      return rec;
    } finally {
      await release().catch((err: unknown) => this.log(`${job.id}: could not release its run lock: ${describeError(err)}`));
    }
  }

  private finish(st: JobState, rec: HistoryRecord | undefined | Promise<HistoryRecord | undefined>): void {
    const settle = st.settle;
    st.settle = undefined;
    st.dueAt = undefined;
    void Promise.resolve(rec).then((r) => settle?.(r));
  }

  private async skip(st: JobState, dueAt: Date, reason: string): Promise<SkippedRecord> {
    const rec: SkippedRecord = { kind: 'skipped', job: st.job.id, at: iso(dueAt), reason };
    this.log(`${st.job.id}: skipped the run due at ${rec.at}: ${reason}`);
    await this.record(rec);
    return rec;
  }

  /** Writes a record; a failed write is logged, never thrown: the runs go on. */
  private async record(rec: HistoryRecord): Promise<void> {
    const w: Promise<void> = this.history
      .append(rec)
      .catch((err: unknown) => this.log(`${rec.job}: could not record the ${rec.kind === 'run' ? 'run' : 'skip'}: ${describeError(err)}`))
      .finally(() => this.writes.delete(w));
    this.writes.add(w);
    await w;
  }

  private async flushWrites(): Promise<void> {
    while (this.writes.size > 0) await Promise.all([...this.writes]);
  }
}

/**
 * A job is due when its most recent fire time at or before `now` is later than the start of
 * its last recorded run (or it never ran): that fire has not been run yet.
 */
export function dueFire(schedule: CronSchedule, lastRun: RunRecord | undefined, now: Date): Date | undefined {
  const fire = schedule.latest(now);
  if (fire === undefined) return undefined;
  if (lastRun !== undefined && Date.parse(lastRun.startedAt) >= fire.getTime()) return undefined;
  return fire;
}

function positiveInt(n: number, name: string): number {
  if (!Number.isInteger(n) || n < 1) throw new CerberusError('CONFIG', `${name} must be a whole number of at least 1, not ${n}`);
  return n;
}

const iso = (d: Date) => d.toISOString();
const oneLine = (s: string) => s.replace(/\s*\n\s*/g, ' ').trim();
