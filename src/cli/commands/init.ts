import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { runInit } from '../../jobs/init.js';
import { loadJob, parseNow, reporterFor, storageFor, type CommandContext, type JobOptions, withJob } from '../context.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withJob(program.command('init'))
    .summary('create the repository on every target of a job')
    .description(
      'Create the repository on every target of the job: cerberus.json (what kind of repository,\n' +
        'which keys; no secrets) and RESTORE.md (how to restore with standard tools alone: gpg and\n' +
        'tar, or the Cryptomator app). A Cryptomator repository also gets its masterkey here, once,\n' +
        'protected by the vault password. Running it again on a ready target changes nothing\n' +
        '(and checks the keys or password still fit).',
    )
    .action(async (opts: JobOptions) => {
      const job = await loadJob(ctx, opts);
      const reporter = reporterFor(ctx);
      const results = await runInit(job, { now: parseNow(undefined), reporter, open: storageFor(ctx, reporter) });
      for (const r of results) ctx.stdout.write(`${r.target}\t${r.created ? 'created' : 'exists'}\t${r.id}\n`);
      done(ExitCode.ok);
    });
}
