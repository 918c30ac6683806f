import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { runInit } from '../../jobs/init.js';
import { loadJob, loadJobs, parseNow, reporterFor, storageFor, type CommandContext, type JobOptions, withJob } from '../context.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withJob(program.command('init'))
    .summary('create the repository on every target of a job')
    .description(
      'Create the repository on every target of the job: cerberus.json (what kind of repository,\n' +
        'which keys; no secrets) and RESTORE.md (how to restore with standard tools alone: gpg and\n' +
        'tar, or the Cryptomator app). A Cryptomator repository also gets its masterkey here, once,\n' +
        'protected by the vault password. Running it again on a ready target changes nothing\n' +
        '(and checks the keys or password still fit).\n\n' +
        'With --tenants and no --job, every tenant × resource of the file gets its repositories.',
    )
    .addHelpText('after', '\nExamples:\n  cerberus init -c cerberus.yaml\n  cerberus init --tenants tenants.yaml\n  cerberus init --tenants tenants.yaml --job acme/website')
    .action(async (opts: JobOptions) => {
      const jobs = opts.tenants !== undefined && opts.job === undefined ? [...(await loadJobs(ctx, opts)).jobs.values()] : [await loadJob(ctx, opts)];
      const reporter = reporterFor(ctx);
      for (const job of jobs) {
        const results = await runInit(job, { now: parseNow(undefined), reporter, open: storageFor(ctx, reporter) });
        const prefix = jobs.length > 1 ? `${job.name}\t` : '';
        for (const r of results) ctx.stdout.write(`${prefix}${r.target}\t${r.created ? 'created' : 'exists'}\t${r.id}\n`);
      }
      done(ExitCode.ok);
    });
}
