import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { pruneRepository } from '../../jobs/prune.js';
import { acquireLock } from '../../repository/lock.js';
import { kindFor, requireDescriptor } from '../../repository/descriptor.js';
import type { JobConfig } from '../../config/index.js';
import type { Reporter } from '../../report/log.js';
import type { PhaseLog } from '../../report/phases.js';
import { loadJob, parseNow, printJson, reporterFor, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';
import { reported } from '../report.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(withJob(program.command('prune')))
    .summary('apply retention alone')
    .description(
      'Apply the job\'s retention on every target: keep the newest N generations of each level,\n' +
        'everything within keepWithin, and every ancestor of anything kept; delete the rest,\n' +
        'children first, and clear unfinished generations left by dead runs. Refuses to run while\n' +
        'the newest generation is suspicious.',
    )
    .option('--dry-run', 'show what would be removed')
    .option('--now <iso-time>', 'pretend it is this time')
    .option('--ignore-suspicious', 'prune even though the newest generation is suspicious')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (opts: PruneOptions) => {
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const out = await reported(
        ctx,
        { report: opts.report, command: 'prune', job: opts.job, reporter },
        async (run) => {
          const job = await loadJob(ctx, opts, run);
          return pruneTargets(ctx, job, opts, reporter, run.phases);
        },
        () => ({ exitCode: ExitCode.ok, targets: [] }),
      );
      if (opts.json) printJson(ctx, out);
      else for (const t of out) ctx.stdout.write(`${t.target}: ${opts.dryRun ? 'would remove' : 'removed'} ${t.removed.length}, kept ${t.kept.length}\n`);
      done(ExitCode.ok);
    });
}

interface PruneOptions extends JobOptions {
  dryRun?: boolean;
  now?: string;
  ignoreSuspicious?: boolean;
  json?: boolean;
  report?: string;
}

async function pruneTargets(ctx: CommandContext, job: JobConfig, opts: PruneOptions, reporter: Reporter, phases: PhaseLog) {
  const out: Array<{ target: string; removed: string[]; kept: string[] }> = [];
  for (const target of job.targets) {
    await phases.time('prune', target.name, async () => {
      const backend = storageFor(ctx, reporter)(target);
      await requireDescriptor(backend, target.name, kindFor(job, target));
      const lock = opts.dryRun ? undefined : await acquireLock(backend, `cerberus prune --job ${job.name}`, (m) => reporter.notice(m));
      try {
        reporter.phase(`prune ${target.name}${opts.dryRun ? ' (dry run)' : ''}`);
        const r = await pruneRepository(backend, job.retention, parseNow(opts.now), {
          dryRun: Boolean(opts.dryRun),
          reporter,
          target: target.name,
          allowAfterSuspicious: Boolean(opts.ignoreSuspicious),
        });
        out.push({ target: target.name, removed: r.removed, kept: r.kept.map((g) => `${g.level}/${g.id}`) });
      } finally {
        await lock?.release();
      }
    });
  }
  return out;
}
