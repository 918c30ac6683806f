import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { runProbe } from '../../jobs/probe.js';
import { pickTarget } from '../../jobs/restore.js';
import { table } from '../../report/format.js';
import { openBackend } from '../../storage/open.js';
import { loadJob, printJson, reporterFor, type CommandContext, type JobOptions, withJob } from '../context.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withJob(program.command('probe'))
    .summary("check what a target's server really does")
    .description(
      'Try, in a scratch folder that is removed afterwards, what cerberus needs from a target and\n' +
        'print a table. For WebDAV: OPTIONS, MKCOL, PUT with a length, a chunked PUT, GET, a range\n' +
        'GET, MOVE and COPY of a file and of a folder, PROPFIND with Depth: 1, and upload speed.\n' +
        'Other targets are probed through their backend. No retries: you see the server as it is.\n' +
        'Exit 0 when everything cerberus relies on works, 1 otherwise.',
    )
    .requiredOption('-t, --target <name>', 'the target to probe')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText('after', '\nExample:\n  cerberus probe -c cerberus.yaml --target pcloud')
    .action(async (opts: JobOptions & { target: string; json?: boolean }) => {
      const job = await loadJob(ctx, opts);
      const target = pickTarget(job, opts.target);
      const reporter = reporterFor(ctx, Boolean(opts.json));
      reporter.phase(`probe ${target.name}`);
      const result = await runProbe(target, openBackend({ ...target, retries: 0 }), reporter);
      if (opts.json) printJson(ctx, result);
      else {
        const rows = result.checks.map((c) => [c.check, c.ok ? 'ok' : c.essential ? 'FAILED' : 'no', c.detail]);
        ctx.stdout.write(table(['check', 'result', 'detail'], rows) + '\n');
        ctx.stdout.write(result.usable ? `${target.name}: usable by cerberus\n` : `${target.name}: NOT usable: a check cerberus relies on failed\n`);
      }
      done(result.usable ? ExitCode.ok : ExitCode.failed);
    });
}
