import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { kindFor } from '../../repository/descriptor.js';
import { openingFor } from '../../jobs/keys.js';
import { runVerify } from '../../jobs/verify.js';
import { loadJob, printJson, reporterFor, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';
import { reported } from '../report.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(withJob(program.command('verify')))
    .summary('check every restore point on every target')
    .description(
      'Quick (default, no key needed): the structure, every chain, and every file against its\n' +
        'SHA256SUMS. --full: also decrypt everything and check every file against the manifest\n' +
        '(needs the private key, as for restore; a Cryptomator repository uses the vault password\n' +
        'from the config and walks each vault as the Cryptomator apps do). Exit 1 when anything is wrong.',
    )
    .option('--full', 'decrypt and check every file')
    .option('--key <file>', 'the private key file, for --full')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (opts: JobOptions & { full?: boolean; key?: string; json?: boolean; report?: string }) => {
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const result = await reported(
        ctx,
        { report: opts.report, command: 'verify', job: opts.job, reporter },
        async (run) => {
          const job = await loadJob(ctx, opts, run);
          const opening = opts.full && job.targets.some((t) => kindFor(job, t) === 'openpgp') ? await openingFor(job, opts.key, ctx.env) : undefined;
          return runVerify(job, { full: Boolean(opts.full), ...(opening ? { opening } : {}), reporter, open: storageFor(ctx, reporter), phases: run.phases });
        },
        (r) => ({ exitCode: r.problems.length > 0 ? ExitCode.failed : ExitCode.ok, targets: [] }),
      );
      if (opts.json) printJson(ctx, result);
      else {
        for (const l of result.leftovers) ctx.stdout.write(`leftover (prune clears it): ${l}\n`);
        ctx.stdout.write(
          result.problems.length === 0
            ? `${result.checked} restore points checked${opts.full ? ' (full)' : ''}: no problems\n`
            : `${result.checked} restore points checked: ${result.problems.length} problems\n`,
        );
      }
      done(result.problems.length > 0 ? ExitCode.failed : ExitCode.ok);
    });
}
