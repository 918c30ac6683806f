import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, selectJob } from '../../config/index.js';
import { ExitCode } from '../../errors.js';
import { runDownload, runUpload } from '../../jobs/handover.js';
import { runSyncDown, runSyncUp, type SyncOptions, type SyncResult } from '../../jobs/sync.js';
import type { Reporter } from '../../report/log.js';
import { configFile, loadJob, parseNow, printJson, reporterFor, stateDir, storageFor, type CommandContext, type JobOptions, withJob, withReport } from '../context.js';
import { reported, type ReportedRun } from '../report.js';

interface SyncFlags extends JobOptions {
  target?: string;
  dryRun?: boolean;
  yes?: boolean;
  json?: boolean;
  now?: string;
  report?: string;
}

function syncOptions(ctx: CommandContext, flags: SyncFlags, reporter: Reporter): SyncOptions {
  return {
    dryRun: Boolean(flags.dryRun),
    yes: Boolean(flags.yes),
    now: parseNow(flags.now),
    stateDir: stateDir(ctx),
    reporter,
    open: storageFor(ctx, reporter),
    ...(flags.target !== undefined ? { target: flags.target } : {}),
  };
}

/** Every add, change and delete, one per line: what --dry-run promises to show. */
function printChanges(ctx: CommandContext, results: SyncResult[], dryRun: boolean): void {
  for (const r of results) {
    for (const t of r.targets) {
      const verb = dryRun ? 'would ' : '';
      for (const p of t.changes.added) ctx.stdout.write(`${verb}add     ${p}\n`);
      for (const p of t.changes.changed) ctx.stdout.write(`${verb}change  ${p}\n`);
      for (const p of t.changes.deleted) ctx.stdout.write(`${verb}delete  ${p}\n`);
      ctx.stdout.write(
        `${t.target} (${r.direction}): ${t.changes.added.length} added, ${t.changes.changed.length} changed, ${t.changes.deleted.length} deleted${dryRun ? ' (dry run: nothing was changed)' : ''}\n`,
      );
    }
  }
}

const exitFor = (results: SyncResult[]) => (results.some((r) => r.targets.some((t) => t.problems.length > 0)) ? ExitCode.warnings : ExitCode.ok);

/**
 * A mirror command as a reported run: it loads its job inside (so a bad config is reported
 * too), and each target's sync is a step, failed when a guard held deletions back.
 */
async function syncReported<T>(
  ctx: CommandContext,
  flags: SyncFlags,
  command: string,
  work: (run: ReportedRun, opts: SyncOptions) => Promise<T>,
  results: (out: T) => SyncResult[],
  exitCode: (out: T) => number = (out) => exitFor(results(out)),
): Promise<T> {
  const reporter = reporterFor(ctx, Boolean(flags.json));
  return reported(
    ctx,
    { report: flags.report, command, job: flags.job, reporter },
    async (run) => {
      const started = Date.now();
      const out = await work(run, syncOptions(ctx, flags, reporter));
      for (const r of results(out)) {
        for (const t of r.targets) run.phases.record(`sync ${r.direction}`, t.target, Date.now() - started, t.problems.length > 0 ? t.problems.join('; ') : undefined);
      }
      return out;
    },
    (out) => ({ exitCode: exitCode(out), targets: [] }),
  );
}

const common = (cmd: Command) =>
  withReport(withJob(cmd, false))
    .option('-t, --target <name>', 'only this target')
    .option('--json', 'print the result as JSON on stdout')
    .option('--now <iso-time>', 'pretend it is this time (for tests)');

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  const sync = program
    .command('sync')
    .summary('mirror mode: keep one Cryptomator vault equal to the source')
    .description(
      'Mirror mode, for a job with encryption kind cryptomator: one vault per target, at\n' +
        '<repository>/mirror/, that the Cryptomator apps open as it is. Unlike backup, it keeps no\n' +
        'history: a file deleted from the source is deleted from the mirror (like rclone sync).\n' +
        'A step that would delete more than guards.maxShrink of the files stops unless --yes.',
    );
  common(sync.command('up'))
    .summary('make the mirror vault equal to the source (adds, changes, deletes)')
    .description(
      'Make the mirror vault on every target equal to the source: new and changed files are\n' +
        'encrypted and uploaded, files gone from the source are deleted from the vault. A file whose\n' +
        'size and times did not change is neither read nor sent; one that was only touched is read,\n' +
        'and sent only if its bytes changed. Run `cerberus init` first.\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config, 3 a guard stopped deletions (add --yes), 4 locked.',
    )
    .option('--dry-run', 'list every add, change and delete; change nothing')
    .option('--yes', 'delete even when that is more than guards.maxShrink of the files')
    .addHelpText('after', '\nExamples:\n  cerberus sync up -c cerberus.yaml --dry-run\n  cerberus sync up -c cerberus.yaml')
    .action(async (flags: SyncFlags) => {
      const result = await syncReported(ctx, flags, 'sync up', async (run, o) => runSyncUp(await loadJob(ctx, flags, run), o), (r) => [r]);
      if (flags.json) printJson(ctx, result);
      else printChanges(ctx, [result], Boolean(flags.dryRun));
      done(exitFor([result]));
    });
  common(sync.command('down'))
    .summary('make a local folder equal to the mirror vault (destructive there)')
    .description(
      'Make --to equal to the mirror vault of the target (default the job\'s first): files are\n' +
        'downloaded and decrypted, and whatever --to holds that the vault does not is DELETED.\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config, 3 a guard stopped deletions (add --yes), 4 locked.',
    )
    .requiredOption('--to <dir>', 'the local folder to make equal to the vault')
    .option('--dry-run', 'list every add, change and delete; change nothing')
    .option('--yes', 'delete even when that is more than guards.maxShrink of the files')
    .addHelpText('after', '\nExample:\n  cerberus sync down -c cerberus.yaml --to ~/Documents --dry-run')
    .action(async (flags: SyncFlags & { to: string }) => {
      const to = path.resolve(ctx.cwd, flags.to);
      const result = await syncReported(ctx, flags, 'sync down', async (run, o) => runSyncDown(await loadJob(ctx, flags, run), { ...o, to }), (r) => [r]);
      if (flags.json) printJson(ctx, result);
      else printChanges(ctx, [result], Boolean(flags.dryRun));
      done(exitFor([result]));
    });

  common(program.command('upload'))
    .summary('sync up, verify every file, then remove the local source, config and state')
    .description(
      'For a machine that must be handed over: `sync up`, then decrypt every file of the mirror\n' +
        'and compare it with the source. Only if all of it matches does upload remove the source\n' +
        'folders, this job\'s state, and the job from the config file (the file itself when it\n' +
        'holds no other job), and it lists what it removed. Anything wrong: nothing is removed.\n\n' +
        'Exit codes: 0 ok, 1 failed or not verified (nothing removed), 2 usage or config, 3 guard, 4 locked.',
    )
    .option('--yes', 'let the sync delete more than guards.maxShrink of the mirror\'s files')
    .action(async (flags: SyncFlags) => {
      const result = await syncReported(
        ctx,
        flags,
        'upload',
        async (run, o) => {
          const config = await loadConfig(path.resolve(ctx.cwd, configFile(flags, 'refused').file), ctx.env);
          const job = selectJob(config, flags.job);
          run.job = job.name;
          return runUpload(config, job, o);
        },
        (r) => [r.sync],
        () => ExitCode.ok,
      );
      if (flags.json) printJson(ctx, result);
      else {
        printChanges(ctx, [result.sync], false);
        ctx.stdout.write(`verified ${result.verified.files} files on ${result.verified.targets.join(', ')}\n`);
        for (const r of result.removed) ctx.stdout.write(`removed ${r}\n`);
      }
      done(ExitCode.ok);
    });

  common(program.command('download'))
    .summary('sync down into the job\'s source folder(s)')
    .description(
      'Bring the mirror back: `sync down` into the job\'s configured source path(s). What those\n' +
        'folders hold that the vault does not is deleted.\n\n' +
        'Exit codes: 0 ok, 1 failed, 2 usage or config, 3 a guard stopped deletions (add --yes), 4 locked.',
    )
    .option('--dry-run', 'list every add, change and delete; change nothing')
    .option('--yes', 'delete even when that is more than guards.maxShrink of the files')
    .action(async (flags: SyncFlags) => {
      const results = await syncReported(ctx, flags, 'download', async (run, o) => runDownload(await loadJob(ctx, flags, run), o), (r) => r);
      if (flags.json) printJson(ctx, results);
      else printChanges(ctx, results, Boolean(flags.dryRun));
      done(exitFor(results));
    });
}
