import type { HookName, JobConfig } from '../config/index.js';
import { CerberusError, describeError } from '../errors.js';
import type { Reporter } from '../report/log.js';
import type { PhaseLog } from '../report/phases.js';
import { hookLabel, runHook, type HookContext } from './hooks.js';

/** The points of a backup where hooks run, as the backup engines call them. */
export interface BackupHookCalls {
  /** the run's level and id are known and nothing is read yet: `before` runs (once) and may stop the run */
  planned(level: string, id: string): Promise<void>;
  /** the source has been read for the last time in this run: `afterSnapshot` runs (once) */
  sourceRead(): Promise<void>;
}

export interface HookOutcome {
  hook: HookName;
  status: 'ok' | 'failed';
  durationMs: number;
  error?: string;
}

export type RunStatus = 'success' | 'warning' | 'failed';

/**
 * When a backup's hooks run:
 * - `before` once the run is planned; a failure stops the run (thrown);
 * - `afterSnapshot` right after the last read of the source, and in any case at the end once
 *   `before` has run, so an application put into maintenance never stays there;
 * - `after` at the end, whatever happened; `onError` after it, when the run failed.
 * A failing afterSnapshot, after or onError is recorded and makes the run fail; the backup
 * itself goes on. A dry run runs no hook.
 */
export class BackupHooks implements BackupHookCalls {
  readonly outcomes: HookOutcome[] = [];
  private plan: { level: string; id: string } | undefined;
  private snapshot: 'not yet' | 'pending' | 'done' = 'not yet';
  private readonly stopRunning = new AbortController();
  /** finish() has run: a late call from an interrupted run must not start `before` any more */
  private closed = false;

  constructor(
    private readonly job: JobConfig,
    private readonly opts: { reporter: Reporter; phases: PhaseLog; env: NodeJS.ProcessEnv; dryRun: boolean },
  ) {
    const configured = Object.values(job.hooks).some((list) => list.length > 0);
    if (configured && opts.dryRun) opts.reporter.info('dry run: the job\'s hooks are not run');
  }

  get failed(): boolean {
    return this.outcomes.some((o) => o.status === 'failed');
  }

  async planned(level: string, id: string): Promise<void> {
    if (this.closed) throw new CerberusError('INTERRUPTED', 'the run was interrupted');
    if (this.plan !== undefined) return;
    this.plan = { level, id };
    this.snapshot = 'pending';
    const failure = await this.run('before', { status: 'running' });
    if (failure) throw failure;
  }

  async sourceRead(): Promise<void> {
    await this.afterSnapshot(false);
  }

  private async afterSnapshot(owed: boolean): Promise<void> {
    if (this.snapshot !== 'pending') return;
    this.snapshot = 'done';
    await this.run('afterSnapshot', { status: 'running' }, owed);
  }

  /** The end of the run: what is still owed, then `after`, then `onError` when anything failed. */
  async finish(status: RunStatus, error?: unknown): Promise<void> {
    // an interrupted run may be waiting on a hook: stop it so the ones owed can run
    this.closed = true;
    if (error !== undefined) this.stopRunning.abort();
    await this.afterSnapshot(true);
    const failed = status === 'failed' || this.failed;
    const why = error !== undefined ? describeError(error) : this.outcomes.find((o) => o.error !== undefined)?.error;
    await this.run('after', { status: failed ? 'failed' : status, ...(why !== undefined && failed ? { error: why } : {}) }, true);
    if (failed || this.failed) await this.run('onError', { status: 'failed', ...(why !== undefined ? { error: why } : {}) }, true);
  }

  /** Runs the hooks of one point in order, up to the first failure, which it returns. */
  private async run(name: HookName, ctx: Omit<HookContext, 'job' | 'level' | 'generation'>, owed = false): Promise<Error | undefined> {
    const list = this.job.hooks[name];
    if (this.opts.dryRun || list.length === 0) return undefined;
    const { reporter, env } = this.opts;
    const context: HookContext = { job: this.job.name, ...(this.plan ? { level: this.plan.level, generation: this.plan.id } : {}), ...ctx };
    for (const hook of list) {
      const started = Date.now();
      reporter.info(`running ${hookLabel(name, hook)}`);
      try {
        await runHook(name, hook, context, {
          env,
          log: (line) => reporter.notice(line),
          // the hooks owed at the end run even when the run was interrupted
          ...(owed ? {} : { signal: this.stopRunning.signal }),
        });
        this.record(name, started);
      } catch (err) {
        this.record(name, started, err);
        if (name !== 'before') reporter.warn(describeError(err));
        return err instanceof Error ? err : new Error(String(err));
      }
    }
    return undefined;
  }

  private record(hook: HookName, started: number, err?: unknown): void {
    const durationMs = Date.now() - started;
    const error = err === undefined ? undefined : describeError(err);
    this.outcomes.push({ hook, status: error === undefined ? 'ok' : 'failed', durationMs, ...(error !== undefined ? { error } : {}) });
    this.opts.phases.record(`hook ${hook}`, undefined, durationMs, error);
  }
}
