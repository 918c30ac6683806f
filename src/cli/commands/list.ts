import type { Command } from 'commander';
import { ExitCode } from '../../errors.js';
import { runList } from '../../jobs/list.js';
import { formatBytes, table } from '../../report/format.js';
import { loadJob, printJson, reporterFor, storageFor, type CommandContext, type JobOptions, withJob } from '../context.js';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withJob(program.command('list'))
    .summary('list the restore points on every target')
    .description('List the restore points of a job on every target, oldest first. Needs no key.')
    .option('--json', 'print JSON on stdout')
    .action(async (opts: JobOptions & { json?: boolean }) => {
      const job = await loadJob(ctx, opts);
      const result = await runList(job, storageFor(ctx, reporterFor(ctx, true)));
      if (opts.json) printJson(ctx, result);
      else {
        const rows = result.points.map((p) => [
          p.target, p.id, p.level, p.parent ?? '-', String(p.files), formatBytes(p.bytes), formatBytes(p.storedBytes), p.state,
        ]);
        ctx.stdout.write(table(['target', 'id', 'level', 'parent', 'files', 'size', 'stored', 'state'], rows) + '\n');
        for (const e of result.errors) ctx.stderr.write(`cerberus: ${e.target}: ${e.error}\n`);
      }
      done(result.errors.length > 0 ? ExitCode.failed : ExitCode.ok);
    });
}
