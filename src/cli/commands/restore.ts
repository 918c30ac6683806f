import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { openingFor } from '../../jobs/keys.js';
import { pickTarget, runRestore } from '../../jobs/restore.js';
import { kindFor } from '../../repository/descriptor.js';
import { loadJob, printJson, repeatable, reporterFor, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';
import { reported } from '../report.js';

interface RestoreOptions extends JobOptions {
  target?: string;
  at: string;
  to: string;
  path?: string[];
  overwrite?: boolean;
  dryRun?: boolean;
  key?: string;
  json?: boolean;
  report?: string;
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(withJob(program.command('restore')))
    .summary('restore a restore point, or some paths of it, into a folder')
    .description(
      'Restore a restore point into a folder. Files are written to a hidden staging folder inside\n' +
        '--to, checked against the manifest\'s sha256, and moved into place only when all is well:\n' +
        'a failed restore leaves nothing behind that looks complete.\n\n' +
        'OpenPGP: the private key comes from --key or $CERBERUS_PRIVATE_KEY_FILE, its passphrase from\n' +
        '$CERBERUS_KEY_PASSPHRASE (or the file in $CERBERUS_KEY_PASSPHRASE_FILE).\n' +
        'Cryptomator: the vault password comes from the config (encryption.password); no key needed.',
    )
    .option('-t, --target <name>', 'the target to restore from (default: the job\'s first)')
    .requiredOption('--at <point>', 'latest, a date YYYY-MM-DD (newest point on or before that day), or an id')
    .requiredOption('--to <dir>', 'the folder to restore into (empty or absent, unless --overwrite)')
    .option('--path <glob>', 'restore only matching paths (repeatable), e.g. --path "reports/**"', repeatable)
    .option('--overwrite', 'restore into a non-empty folder, replacing files that are there')
    .option('--dry-run', 'say what would be restored, and which files in --to it would replace; write nothing')
    .option('--key <file>', 'the private key file')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText('after', '\nExamples:\n  cerberus restore -c cerberus.yaml --at latest --to /tmp/restore --key keys/cerberus.key.asc\n  cerberus restore -c cerberus.yaml --at 2026-11-01 --to /tmp/r --path "invoices/**"')
    .action(async (opts: RestoreOptions) => {
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const result = await reported(
        ctx,
        { report: opts.report, command: 'restore', job: opts.job, reporter },
        async (run) => {
          const job = await loadJob(ctx, opts, run);
          // a plain stage needs no key
          const opening = kindFor(job, pickTarget(job, opts.target)) === 'openpgp' ? await openingFor(job, opts.key, ctx.env) : undefined;
          return run.phases.time(opts.dryRun ? 'restore --dry-run' : 'restore', opts.target ?? job.targets[0]?.name, () =>
            runRestore(job, {
              at: opts.at,
              to: opts.to,
              paths: opts.path ?? [],
              overwrite: Boolean(opts.overwrite),
              ...(opening ? { opening } : {}),
              reporter,
              open: storageFor(ctx, reporter),
              ...(opts.target !== undefined ? { target: opts.target } : {}),
              dryRun: Boolean(opts.dryRun),
            }),
          );
        },
        () => ({ exitCode: ExitCode.ok, targets: [] }),
      );
      if (opts.json) printJson(ctx, result);
      else if (result.wouldReplace) {
        ctx.stdout.write(`would restore ${result.level}/${result.id} from ${result.target}: ${result.files} files into ${result.to}\n`);
        for (const p of result.wouldReplace) ctx.stdout.write(`would replace: ${p}\n`);
      } else ctx.stdout.write(`restored ${result.level}/${result.id} from ${result.target}: ${result.files} files into ${result.to}\n`);
      done(ExitCode.ok);
    });
}
