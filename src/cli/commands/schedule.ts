import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { loadTenants, type TenantsConfig } from '../../config/index.js';
import { ExitCode } from '../../errors.js';
import type { Reporter } from '../../report/log.js';
import { RunHistory, runChild, Scheduler, type HistoryRecord, type RunOutcome, type Runner, type ScheduledJob } from '../../schedule/index.js';
import { durationOption, printJson, reporterFor, stateDir, withReport, type CommandContext } from '../context.js';
import { reported } from '../report.js';

interface ScheduleOptions {
  tenants: string;
  once?: boolean;
  grace: string;
  json?: boolean;
  report?: string;
}

/** the built CLI, which every run is a process of */
const BIN = fileURLToPath(new URL('../../bin/cerberus.js', import.meta.url));
/** a run told to stop gets this long for its owed hooks and report before SIGKILL */
const RUN_KILL_GRACE_MS = 30_000;

/** Where the scheduler keeps its run history and locks (`health --tenants` reads them). */
export const scheduleDir = (ctx: CommandContext) => path.join(stateDir(ctx), 'schedule');

export const scheduledJobs = (t: TenantsConfig): ScheduledJob[] =>
  [...t.jobs.values()].map((j) => ({ id: j.name, tenant: j.tenant, cron: j.schedule, timezone: j.timezone }));

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(program.command('schedule'))
    .summary('run every tenant\'s backups on their schedules (a daemon, or --once)')
    .description(
      'Run the backups of a tenants file: each tenant × resource at the times its cron expression\n' +
        'names, each as its own `cerberus backup --tenants FILE --job tenant/resource --init`\n' +
        'process. Up to maxParallel runs go at once, one per tenant; more wait their turn.\n\n' +
        'A resource whose previous run is still going (or waiting) is not started again: the skip\n' +
        'is logged and recorded, and `cerberus health --tenants FILE` reports it. Another process\n' +
        'running the same resource (a --once from cron) counts as still going.\n\n' +
        'SIGTERM or Ctrl-C: no new runs start; runs going get --grace to finish, then are stopped\n' +
        '(their hooks run, nothing half-written is committed) and recorded as interrupted.\n\n' +
        '--once runs what is due now (a resource whose last fire time has no run yet) and exits:\n' +
        'for a cron entry or a Jenkins trigger instead of the daemon.\n\n' +
        'Exit codes: 0 ok (daemon: stopped cleanly), 1 a run failed, 2 usage or config,\n' +
        '3 a run ended with warnings or was skipped.',
    )
    .requiredOption('--tenants <file>', 'the tenants file')
    .option('--once', 'run what is due now, wait for it, and exit')
    .option('--grace <duration>', 'on SIGTERM, how long running backups may take to finish', '10m')
    .option('--json', 'with --once: print the runs as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  cerberus schedule --tenants tenants.yaml\n' +
        '  cerberus schedule --tenants tenants.yaml --once --report reports\n' +
        '  cerberus health --tenants tenants.yaml',
    )
    .action(async (opts: ScheduleOptions) => {
      const graceMs = durationOption(opts.grace, '--grace', '10m, 90s or 1h');
      const reporter = reporterFor(ctx, Boolean(opts.json));
      if (!opts.once) {
        const tenants = await loadTenants(path.resolve(ctx.cwd, opts.tenants), ctx.env);
        done(await daemon(ctx, tenants, { graceMs, report: opts.report }, reporter));
        return;
      }
      const records = await reported(
        ctx,
        { report: opts.report, command: 'schedule --once', job: 'all', reporter },
        async (run) => {
          const tenants = await loadTenants(path.resolve(ctx.cwd, opts.tenants), ctx.env);
          const sched = scheduler(ctx, tenants, opts.report, reporter);
          const out = await sched.runDue();
          for (const r of out) {
            if (r.kind === 'skipped') run.phases.skip('run', r.job, r.reason);
            else run.phases.record('run', r.job, Date.parse(r.endedAt) - Date.parse(r.startedAt), r.status === 'success' || r.status === 'warning' ? undefined : (r.error ?? r.status));
          }
          if (out.length === 0) reporter.info('nothing is due');
          return out;
        },
        (out) => ({ exitCode: onceExitCode(out), targets: [] }),
      );
      if (opts.json) printJson(ctx, { runs: records, exitCode: onceExitCode(records) });
      else for (const r of records) ctx.stdout.write(r.kind === 'skipped' ? `${r.job}\tskipped\t${r.reason}\n` : `${r.job}\t${r.status}${r.error ? `\t${r.error}` : ''}\n`);
      done(onceExitCode(records));
    });
}

function onceExitCode(records: HistoryRecord[]): number {
  if (records.some((r) => r.kind === 'run' && (r.status === 'failed' || r.status === 'interrupted'))) return ExitCode.failed;
  if (records.some((r) => r.kind === 'skipped' || r.status === 'warning')) return ExitCode.warnings;
  return ExitCode.ok;
}

function scheduler(ctx: CommandContext, tenants: TenantsConfig, report: string | undefined, reporter: Reporter): Scheduler {
  const runner: Runner = { run: (job, signal) => runBackupProcess(ctx, tenants, job, signal, report, reporter) };
  return new Scheduler({
    jobs: scheduledJobs(tenants),
    maxParallel: tenants.maxParallel,
    runner,
    history: new RunHistory(scheduleDir(ctx)),
    log: (line) => reporter.info(line),
  });
}

/** One run: the CLI's own backup in a process of its own, its lines in this log. */
async function runBackupProcess(
  ctx: CommandContext,
  tenants: TenantsConfig,
  job: ScheduledJob,
  signal: AbortSignal,
  report: string | undefined,
  reporter: Reporter,
): Promise<RunOutcome> {
  const argv = [process.execPath, BIN, 'backup', '--tenants', tenants.file, '--job', job.id, '--init'];
  if (report !== undefined) argv.push('--report', path.resolve(ctx.cwd, report, ...job.id.split('/')));
  let error: string | undefined;
  const exit = await runChild(argv, {
    env: ctx.env,
    cwd: ctx.cwd,
    signal,
    graceMs: RUN_KILL_GRACE_MS,
    onLine: (line) => {
      // cerberus never prints a secret: its own error line is safe to record
      const own = /^cerberus: error: (.*)$/.exec(line);
      if (own) error = own[1];
      reporter.info(`[${job.id}] ${line}`);
    },
  });
  if (signal.aborted) return { status: 'interrupted', exitCode: exit.exitCode ?? 1, error: error ?? 'stopped by the scheduler' };
  const code = exit.exitCode ?? 1;
  if (code === ExitCode.ok) return { status: 'success', exitCode: code };
  if (code === ExitCode.warnings) return { status: 'warning', exitCode: code, ...(error ? { error } : {}) };
  const why = error ?? (exit.signal ? `killed by ${exit.signal}` : `exit code ${code}`);
  return { status: 'failed', exitCode: code, error: why };
}

/** Until SIGINT or SIGTERM: then no new runs, and the running ones get the grace. */
async function daemon(ctx: CommandContext, tenants: TenantsConfig, opts: { graceMs: number; report: string | undefined }, reporter: Reporter): Promise<number> {
  const sched = scheduler(ctx, tenants, opts.report, reporter);
  sched.start();
  reporter.info(`scheduling ${tenants.jobs.size} resources of ${tenants.tenants.length} tenants from ${tenants.file}, up to ${tenants.maxParallel} at once`);
  for (const id of tenants.jobs.keys()) reporter.info(`${id}: next run ${sched.nextFire(id)?.toISOString() ?? 'never'}`);
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    const on = (sig: NodeJS.Signals) => {
      for (const s of signals) process.off(s, on);
      resolve(sig);
    };
    for (const s of signals) process.on(s, on);
  });
  const going = sched.running();
  reporter.info(`${signal}: no new runs${going.length > 0 ? `; waiting up to ${Math.round(opts.graceMs / 1000)} s for ${going.join(', ')}` : ''}`);
  await sched.stop(opts.graceMs);
  reporter.info('stopped');
  return ExitCode.ok;
}
