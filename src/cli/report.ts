import path from 'node:path';
import type { JobConfig } from '../config/index.js';
import { describeError, exitCodeFor } from '../errors.js';
import { sendAlerts, type Alert } from '../report/github.js';
import type { Reporter } from '../report/log.js';
import { PhaseLog, type PhaseRecord } from '../report/phases.js';
import { runReport, type TargetSummary } from '../report/run-report.js';
import { writeReports } from '../report/write.js';
import type { CommandContext } from './context.js';

export interface ReportOptions {
  /** --report DIR */
  report?: string;
  command: string;
  /** the job as named on the command line; the work names it once the config is loaded */
  job?: string;
  reporter: Reporter;
}

/** What the work of a reported run tells the report as it goes. */
export interface ReportedRun {
  phases: PhaseLog;
  /** the job's name, for the report: set it once the config is loaded */
  job: string;
}

/**
 * Runs a command's work with its steps recorded and, given --report DIR, writes junit.xml,
 * summary.md and report.json whatever the outcome: a run that ends in an error reports it,
 * a config that does not load included (so the work loads it, not the caller).
 */
export async function reported<T>(
  ctx: CommandContext,
  opts: ReportOptions,
  work: (run: ReportedRun) => Promise<T>,
  describe: (result: T, phases: PhaseRecord[]) => { exitCode: number; targets: TargetSummary[] },
): Promise<T> {
  const run: ReportedRun = { phases: new PhaseLog(), job: opts.job ?? '-' };
  const startedAt = new Date();
  const write = async (exitCode: number, targets: TargetSummary[], error?: string) => {
    if (opts.report === undefined) return;
    const meta = { command: opts.command, job: run.job, startedAt, durationMs: Date.now() - startedAt.getTime(), exitCode, phases: run.phases.phases, warnings: opts.reporter.warnings };
    await writeReports(path.resolve(ctx.cwd, opts.report), runReport(error === undefined ? meta : { ...meta, error }, targets));
  };
  let result: T;
  try {
    result = await work(run);
  } catch (err) {
    // the run's own error is what the caller must see; a report that cannot be written is said too
    await write(exitCodeFor(err), [], describeError(err)).catch((e: unknown) => opts.reporter.warn(describeError(e)));
    throw err;
  }
  const { exitCode, targets } = describe(result, run.phases.phases);
  await write(exitCode, targets);
  return result;
}

/**
 * Sends the alerts of a run to GitHub for the jobs that configure `report.github`. A failure
 * to reach GitHub is a warning: it must not turn a good backup into a failed one.
 */
export async function alertGithub(jobs: JobConfig[], alerts: Alert[], reporter: Reporter): Promise<void> {
  for (const job of jobs) {
    const cfg = job.report.github;
    const mine = alerts.filter((a) => a.job === job.name);
    if (!cfg || mine.length === 0) continue;
    try {
      for (const o of await sendAlerts(cfg, mine)) {
        if (o.action !== 'none') reporter.info(`GitHub ${cfg.repo}#${o.issue}: ${o.action} the issue for ${o.job} → ${o.target}`);
      }
    } catch (err) {
      const status = (err as { status?: unknown }).status;
      reporter.warn(`could not update the GitHub issues of job ${job.name} in ${cfg.repo}: ${typeof status === 'number' ? `HTTP ${status}: ` : ''}${firstLine(err)}`);
    }
  }
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split('\n')[0];
