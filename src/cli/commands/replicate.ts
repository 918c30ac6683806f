import type { Command } from 'commander';
import { runBackup } from '../../jobs/backup.js';
import { backupTargets } from '../../jobs/backup-report.js';
import { runReplicate } from '../../jobs/replicate.js';
import { reported } from '../report.js';
import { loadJob, printJson, reporterFor, stateDir, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';
import { backupExitCode, targetTable } from './backup.js';

interface ReplicateOptions extends JobOptions {
  from: string;
  to: string;
  dryRun?: boolean;
  json?: boolean;
  report?: string;
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(withJob(program.command('replicate'), false))
    .summary('copy a local stage\'s generations to an off-site target, encrypted')
    .description(
      'Copy the generations a target lacks from a plain stage (a local target with\n' +
        'snapshots: hardlink), oldest first. Each becomes the generation a backup would have made\n' +
        'at its time: encrypted for the target, differential against the target\'s own chain, then\n' +
        'retention on the target. Only files that changed are read (the stage\'s manifest knows\n' +
        'every hash). Each generation commits on its own: after an interruption, run it again and\n' +
        'it goes on where it stopped. It may run hours after the backup, as its own Jenkins build.\n\n' +
        'Example:\n' +
        '  cerberus replicate -c cerberus.yaml --job nextcloud --from usb --to pcloud\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config, 3 warnings or guard tripped, 4 locked.',
    )
    .requiredOption('--from <target>', 'the plain stage to copy from')
    .requiredOption('--to <target>', 'the target to copy to')
    .option('--dry-run', 'show what would be copied; write nothing')
    .option('--json', 'print the result as JSON on stdout')
    .action(async (opts: ReplicateOptions) => {
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const summary = (r: Awaited<ReturnType<typeof runReplicate>>) => ({ job: r.job, targets: r.copied });
      const result = await reported(
        ctx,
        { report: opts.report, command: 'replicate', job: opts.job, reporter },
        async (run) => {
          const job = await loadJob(ctx, opts, run);
          return runReplicate(job, {
            from: opts.from,
            to: opts.to,
            dryRun: Boolean(opts.dryRun),
            stateDir: stateDir(ctx),
            reporter,
            open: storageFor(ctx, reporter),
            phases: run.phases,
            env: ctx.env,
          }, runBackup);
        },
        (r, phases) => ({ exitCode: backupExitCode(summary(r)), targets: backupTargets(summary(r), phases) }),
      );
      const code = backupExitCode(summary(result));
      if (opts.json) printJson(ctx, { ...result, exitCode: code });
      else {
        if (result.copied.length > 0) ctx.stdout.write(targetTable(result.copied));
        else if (opts.dryRun && result.lacking.length > 0) ctx.stdout.write(`would copy ${result.lacking.join(', ')} to ${result.to}\n`);
        else ctx.stdout.write(`${result.to} has every generation of ${result.from}\n`);
      }
      done(code);
    });
}
