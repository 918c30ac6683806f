import path from 'node:path';
import type { Command } from 'commander';
import { loadTenants, selectJob, type JobConfig } from '../../config/index.js';
import { RunHistory } from '../../schedule/index.js';
import { scheduleHealth, scheduleMaxAge, type ScheduleCheck } from '../../jobs/tenant-health.js';
import { scheduleDir } from './schedule.js';
import { ExitCode } from '../../errors.js';
import { runHealth, type HealthCheck } from '../../jobs/health.js';
import { formatDuration, table } from '../../report/format.js';
import { configFile, durationOption, loadJobs, parseNow, printJson, reporterFor, storageFor, withReport, type CommandContext } from '../context.js';
import type { Alert } from '../../report/github.js';
import { alertGithub, reported } from '../report.js';

interface HealthOptions {
  config?: string;
  tenants?: string;
  job?: string;
  maxAge?: string;
  now?: string;
  json?: boolean;
  report?: string;
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(program.command('health'))
    .summary('check from any machine that backups keep arriving')
    .description(
      'Check every job (or --job) on every target: the newest restore point is younger than\n' +
        '--max-age, no suspicious restore point is newer than the last clean one, no restore\n' +
        'point is damaged, and the chain behind the newest one is complete.\n\n' +
        'Needs only the targets\' credentials: no key and no vault password (variables of the\n' +
        'encryption settings may be unset). Run it on another machine than the one that backs\n' +
        'up, so it notices when that one stops.\n\n' +
        'With --tenants, every tenant × resource: its newest restore point may be two periods of\n' +
        'its schedule old (plus the grace a run gets), and where the scheduler runs (its state\n' +
        'dir) also the last success, the last failure, the runs skipped because the one before\n' +
        'was still going, and the scheduled runs missed: two missed make a resource stale.\n\n' +
        'Exit codes: 0 all healthy, 1 a check failed, 2 usage or config.',
    )
    .option('-c, --config <file>', 'the YAML config file')
    .option('--tenants <file>', 'a tenants file instead: every tenant × resource')
    .option('-j, --job <name>', 'only this job (default: every job); tenant/resource in a tenants file')
    .option('--max-age <duration>', 'how old the newest restore point may be (default 26h; with --tenants, from each schedule)')
    .option('--now <iso-time>', 'pretend it is this time (for tests and simulations)')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  cerberus health -c cerberus.yaml\n' +
        '  cerberus health -c cerberus.yaml --max-age 3d --report reports\n' +
        '  cerberus health --tenants tenants.yaml',
    )
    .action(async (opts: HealthOptions) => {
      const maxAgeMs = opts.maxAge === undefined ? undefined : durationOption(opts.maxAge, '--max-age', '26h, 3d or 90m');
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const result = await reported(
        ctx,
        { report: opts.report, command: 'health', job: opts.job ?? 'all', reporter },
        async (run) => {
          const now = parseNow(opts.now);
          const tenants = configFile(opts).kind === 'tenants' ? await loadTenants(path.resolve(ctx.cwd, opts.tenants!), ctx.env, { keyless: true }) : undefined;
          const config = tenants ?? (await loadJobs(ctx, opts, { keyless: true }));
          const jobs = opts.job !== undefined ? [selectJob(config, opts.job)] : [...config.jobs.values()];
          const ownJobs = tenants ? jobs.map((j) => tenants.jobs.get(j.name)!) : undefined;
          const maxAge = maxAgeMs ?? (ownJobs ? (job: JobConfig) => scheduleMaxAge(tenants!.jobs.get(job.name)!, now) : DEFAULT_MAX_AGE_MS);
          const checks = await runHealth(jobs, { now, maxAgeMs: maxAge, reporter, open: storageFor(ctx, reporter) });
          for (const c of checks) run.phases.record('health', `${c.job}/${c.target}`, 0, c.healthy ? undefined : c.problems.join('; '));
          const schedule = ownJobs ? await scheduleHealth(ownJobs, new RunHistory(scheduleDir(ctx)), now) : [];
          for (const s of schedule) {
            run.phases.record('schedule', s.job, 0, s.healthy ? undefined : s.message);
            if (s.healthy) reporter.info(s.message);
            else reporter.warn(s.message);
          }
          // inside the reported run: a warning of the alerts reaches the report too
          await alertGithub(jobs, [...checks.map((c) => healthAlert(c, now)), ...schedule.map((s) => scheduleAlert(s, now))], reporter);
          return { checks, schedule };
        },
        (out) => ({ exitCode: exitCodeOf(out), targets: [] }),
      );
      const code = exitCodeOf(result);
      if (opts.json) printJson(ctx, { ...result, exitCode: code });
      else {
        ctx.stdout.write(table(['job', 'target', 'health', 'newest', 'age'], result.checks.map(row)) + '\n');
        if (result.schedule.length > 0) ctx.stdout.write('\n' + table(['job', 'schedule', 'last success', 'last failure', 'skipped', 'missed'], result.schedule.map(scheduleRow)) + '\n');
      }
      done(code);
    });
}

const DEFAULT_MAX_AGE_MS = 26 * 3600_000;

function scheduleAlert(s: ScheduleCheck, at: Date): Alert {
  return { job: s.job, target: 'schedule', command: 'health', failing: !s.healthy, summary: s.healthy ? 'runs keep to the schedule' : s.message, details: [s.message], at };
}

function scheduleRow(s: ScheduleCheck): string[] {
  const state = { ok: 'ok', never: 'no run yet', stale: 'STALE', failing: 'FAILING' }[s.state];
  return [s.job, state, s.lastSuccess ?? '-', s.lastFailure ? `${s.lastFailure.at}: ${s.lastFailure.error}` : '-', String(s.skipped), String(s.missedPeriods)];
}

function healthAlert(c: HealthCheck, at: Date): Alert {
  return {
    job: c.job,
    target: c.target,
    command: 'health',
    failing: !c.healthy,
    summary: c.healthy ? `healthy, newest restore point ${c.newest!.level}/${c.newest!.id}` : 'the health check failed',
    details: c.problems,
    at,
  };
}

const exitCodeOf = (r: { checks: HealthCheck[]; schedule: ScheduleCheck[] }) =>
  r.checks.every((c) => c.healthy) && r.schedule.every((s) => s.healthy) ? ExitCode.ok : ExitCode.failed;

function row(c: HealthCheck): string[] {
  return [c.job, c.target, c.healthy ? 'ok' : 'FAILED', c.newest ? `${c.newest.level}/${c.newest.id}` : '-', c.newest ? formatDuration(c.newest.ageMs) : '-'];
}
