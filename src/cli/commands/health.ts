import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, parseDuration, selectJob } from '../../config/index.js';
import { ExitCode, usageError } from '../../errors.js';
import { runHealth, type HealthCheck } from '../../jobs/health.js';
import { formatDuration, table } from '../../report/format.js';
import { parseNow, printJson, reporterFor, storageFor, withReport, type CommandContext } from '../context.js';
import type { Alert } from '../../report/github.js';
import { alertGithub, reported } from '../report.js';

interface HealthOptions {
  config: string;
  job?: string;
  maxAge: string;
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
        'Exit codes: 0 all healthy, 1 a check failed, 2 usage or config.',
    )
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('-j, --job <name>', 'only this job (default: every job)')
    .option('--max-age <duration>', 'how old the newest restore point may be', '26h')
    .option('--now <iso-time>', 'pretend it is this time (for tests and simulations)')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (opts: HealthOptions) => {
      let maxAgeMs: number;
      try {
        maxAgeMs = parseDuration(opts.maxAge);
      } catch {
        throw usageError(`--max-age ${opts.maxAge} is not a duration`, 'use e.g. 26h, 3d or 90m');
      }
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const checks = await reported(
        ctx,
        { report: opts.report, command: 'health', job: opts.job ?? 'all', reporter },
        async (run) => {
          const config = await loadConfig(path.resolve(ctx.cwd, opts.config), ctx.env, { keyless: true });
          const jobs = opts.job !== undefined ? [selectJob(config, opts.job)] : [...config.jobs.values()];
          const now = parseNow(opts.now);
          const out = await runHealth(jobs, { now, maxAgeMs, reporter, open: storageFor(ctx, reporter) });
          for (const c of out) run.phases.record('health', `${c.job}/${c.target}`, 0, c.healthy ? undefined : c.problems.join('; '));
          // inside the reported run: a warning of the alerts reaches the report too
          await alertGithub(jobs, out.map((c) => healthAlert(c, now)), reporter);
          return out;
        },
        (out) => ({ exitCode: exitCodeOf(out), targets: [] }),
      );
      if (opts.json) printJson(ctx, { checks, exitCode: exitCodeOf(checks) });
      else ctx.stdout.write(table(['job', 'target', 'health', 'newest', 'age'], checks.map(row)) + '\n');
      done(exitCodeOf(checks));
    });
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

const exitCodeOf = (checks: HealthCheck[]) => (checks.every((c) => c.healthy) ? ExitCode.ok : ExitCode.failed);

function row(c: HealthCheck): string[] {
  return [c.job, c.target, c.healthy ? 'ok' : 'FAILED', c.newest ? `${c.newest.level}/${c.newest.id}` : '-', c.newest ? formatDuration(c.newest.ageMs) : '-'];
}
