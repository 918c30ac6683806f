import type { Command } from 'commander';
import { CerberusError, ExitCode } from '../../errors.js';
import { backupStatus, runBackup, type BackupResult, type TargetBackupResult } from '../../jobs/backup.js';
import { backupAlerts, backupTargets } from '../../jobs/backup-report.js';
import { runInit } from '../../jobs/init.js';
import { formatBytes, table } from '../../report/format.js';
import { alertGithub, reported } from '../report.js';
import { loadJob, parseNow, printJson, reporterFor, stateDir, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';

interface BackupOptions extends JobOptions {
  now?: string;
  dryRun?: boolean;
  rehash?: boolean;
  init?: boolean;
  json?: boolean;
  report?: string;
}

export function backupExitCode(r: BackupResult): number {
  return { failed: ExitCode.failed, warning: ExitCode.warnings, success: ExitCode.ok }[backupStatus(r)];
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(withJob(program.command('backup')))
    .summary('make one generation on every target, then prune')
    .description(
      'Run one backup of a job: pick the level (the first run of a quarter makes a full quarterly;\n' +
        'the first of a month a monthly, of an ISO week a weekly, otherwise a daily), store what\n' +
        'changed since the parent generation, commit it on every target, then apply retention.\n' +
        'A run that trips a guard (source gone or emptied, mass deletion, mass change) is committed\n' +
        'but marked suspicious, ends with exit 3, and prunes nothing.\n\n' +
        'The job\'s hooks run around it: before (once planned), afterSnapshot (as soon as the source\n' +
        'and its databases are read), after, and onError. With stages: [usb, pcloud], only the first\n' +
        'stage is written from the source; it is then replicated to the others (see replicate).\n' +
        'Ctrl-C or SIGTERM stops it with the owed hooks run and the report written.\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config, 3 warnings or guard tripped, 4 locked.',
    )
    .option('--now <iso-time>', 'pretend it is this time (for tests and simulations)')
    .option('--dry-run', 'show what would be stored; write nothing')
    .option('--rehash', 'read and hash every file, trusting no cached hash')
    .option('--init', 'first make the repository on a target that holds none, as `cerberus init` does (the scheduler\'s runs use it)')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  cerberus backup -c cerberus.yaml\n' +
        '  cerberus backup -c cerberus.yaml --job documents --dry-run\n' +
        '  cerberus backup --tenants tenants.yaml --job acme/website --init --report reports',
    )
    .action(async (opts: BackupOptions) => {
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const result = await reported(
        ctx,
        { report: opts.report, command: 'backup', job: opts.job, reporter },
        async (run) => {
          const job = await loadJob(ctx, opts, run);
          const now = parseNow(opts.now);
          if (opts.init && !opts.dryRun) await run.phases.time('init', undefined, () => runInit(job, { now, reporter, open: storageFor(ctx, reporter) }));
          const interrupt = ctx.ownsProcess ? interruption() : undefined;
          const r = await runBackup(job, {
            now,
            dryRun: Boolean(opts.dryRun),
            rehash: Boolean(opts.rehash),
            stateDir: stateDir(ctx),
            reporter,
            open: storageFor(ctx, reporter),
            phases: run.phases,
            env: ctx.env,
            ...(interrupt ? { interrupted: interrupt.promise } : {}),
          }).finally(() => interrupt?.dispose());
          // inside the reported run: a warning of the alerts reaches the report too
          if (!opts.dryRun) await alertGithub([job], backupAlerts(r, now), reporter);
          return r;
        },
        (r, phases) => ({ exitCode: backupExitCode(r), targets: backupTargets(r, phases) }),
      );
      const code = backupExitCode(result);
      if (opts.json) printJson(ctx, { ...result, exitCode: code });
      else {
        ctx.stdout.write(targetTable(result.targets));
        for (const h of result.hooks ?? []) if (h.error) ctx.stdout.write(`hook ${h.hook}: ${h.error}\n`);
      }
      done(code);
    });
}

/**
 * The first SIGINT or SIGTERM (Ctrl-C, a Jenkins abort) ends the run with its hooks owed run
 * (afterSnapshot, after, onError) and its report written; a second one kills at once.
 */
function interruption(): { promise: Promise<never>; dispose(): void } {
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  let onSignal: (sig: NodeJS.Signals) => void = () => undefined;
  const dispose = () => signals.forEach((s) => process.off(s, onSignal));
  const promise = new Promise<never>((_, reject) => {
    onSignal = (sig) => {
      dispose();
      reject(new CerberusError('INTERRUPTED', `interrupted by ${sig}`, { hint: 'run the backup again: the next run takes over the lock and clears the unfinished generation' }));
    };
  });
  promise.catch(() => undefined);
  for (const s of signals) process.on(s, onSignal);
  return { promise, dispose };
}

/** The per-target table of a backup (or of the generations a replication made), and each failure. */
export function targetTable(targets: TargetBackupResult[]): string {
  const rows = targets.map((t) => [
    t.target,
    t.status + (t.suspicious.length > 0 ? ' (suspicious)' : ''),
    t.level ?? '-',
    t.id ?? '-',
    t.stats ? String(t.stats.files) : '-',
    t.stats ? formatBytes(t.stats.bytes) : '-',
    t.stats ? `${t.stats.storedFiles} / ${formatBytes(t.stats.storedBytes)}` : '-',
    t.stats ? String(t.stats.deleted) : '-',
    String(t.pruned.length),
  ]);
  const failures = targets.filter((t) => t.error).map((t) => `${t.target}: ${t.error}\n`);
  return table(['target', 'status', 'level', 'id', 'files', 'size', 'stored', 'deleted', 'pruned'], rows) + '\n' + failures.join('');
}
