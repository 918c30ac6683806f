import path from 'node:path';
import type { Command } from 'commander';
import { loadConfig, selectJob } from '../../config/index.js';
import { ExitCode, usageError } from '../../errors.js';
import { runExport, verifyExport } from '../../jobs/export.js';
import { openingFor } from '../../jobs/keys.js';
import { pickTarget } from '../../jobs/restore.js';
import { kindFor } from '../../repository/descriptor.js';
import { formatBytes } from '../../report/format.js';
import { parseNow, printJson, reporterFor, stateDir, storageFor, withReport, type CommandContext } from '../context.js';
import { reported } from '../report.js';

interface ExportFlags {
  config: string;
  job?: string;
  year?: string;
  from: string;
  to?: string;
  target?: string;
  replace?: boolean;
  upload?: boolean;
  verify?: string;
  key?: string;
  now?: string;
  json?: boolean;
  report?: string;
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  withReport(program.command('export'))
    .summary('the yearly cold copy: an AES-256 7-Zip archive with a password of its own')
    .description(
      'Write <job>-<year>.7z into --to: AES-256 with encrypted headers (7-Zip shows no names\n' +
        'without the password), made by 7-Zip itself (7zz, Debian package 7zip). It holds the\n' +
        'source as it is now (one source path: its contents at the top; several: each under its\n' +
        'name), or with --from a restore point, and CERBERUS-MANIFEST.txt (sha256, size and path\n' +
        'of every file). The archive is tested by 7-Zip and checked entry by entry against what\n' +
        'was read before it gets its final name. An existing year is kept unless --replace.\n\n' +
        'The password comes from the job\'s export.password (e.g. ${EXPORT_PASSWORD}) and must\n' +
        'differ from the vault password: the cold copy guards against a fault of the main format.\n' +
        'Open it with any 7-Zip: 7zz x documents-2026.7z (it asks for the password).\n\n' +
        'Exit codes: 0 ok, 1 failed (nothing under the final name), 2 usage or config.',
    )
    .requiredOption('-c, --config <file>', 'the YAML config file')
    .option('-j, --job <name>', 'the job (may be left out when the config has one)')
    .option('--year <yyyy>', 'the year the archive is named after (default: this year)')
    .option('--from <point>', 'source (the folders as they are now), latest, a date YYYY-MM-DD, or a restore point id', 'source')
    .option('--to <dir>', 'the folder the archive goes to, e.g. a USB disk')
    .option('--upload', 'also send it to yearly/<year>/ on every target (resumes when run again)')
    .option('-t, --target <name>', 'with --from: the target to restore from (default: the job\'s first)')
    .option('--replace', 'make the year again when its archive exists')
    .option('--verify <file>', 'open an export made before and check it against its manifest; write nothing')
    .option('--key <file>', 'with --from on an OpenPGP job: the private key file (or $CERBERUS_PRIVATE_KEY_FILE)')
    .option('--now <iso-time>', 'pretend it is this time')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  EXPORT_PASSWORD=… cerberus export -c cerberus.yaml --to /media/usb/cold\n' +
        '  cerberus export -c cerberus.yaml --from latest --to /media/usb/cold --year 2025\n' +
        '  cerberus export -c cerberus.yaml --verify /media/usb/cold/documents-2025.7z',
    )
    .action(async (flags: ExportFlags) => {
      const reporter = reporterFor(ctx, Boolean(flags.json));
      if (flags.verify === undefined && flags.to === undefined && !flags.upload) throw usageError('say where the archive goes: --to DIR, --upload, or both', 'e.g. --to /media/usb/cold');
      const now = parseNow(flags.now);
      const year = yearOf(flags.year, now);
      const out = await reported(
        ctx,
        { report: flags.report, command: 'export', job: flags.job, reporter },
        async (run) => {
          const config = await loadConfig(path.resolve(ctx.cwd, flags.config), ctx.env, { export: true });
          const job = selectJob(config, flags.job);
          run.job = job.name;
          if (flags.verify !== undefined) {
            const file = path.resolve(ctx.cwd, flags.verify);
            const verified = await run.phases.time('verify export', undefined, () => verifyExport(job, file, ctx.env, reporter));
            return { json: verified, text: `${verified.archive}: ${files(verified.files)}, every one as its manifest says` };
          }
          // a plain stage restores without a key
          const opening = flags.from !== 'source' && kindFor(job, pickTarget(job, flags.target)) === 'openpgp' ? await openingFor(job, flags.key, ctx.env) : undefined;
          const r = await run.phases.time('export', undefined, () =>
            runExport(job, {
              year,
              from: flags.from,
              ...(flags.to !== undefined ? { to: path.resolve(ctx.cwd, flags.to) } : {}),
              upload: Boolean(flags.upload),
              stateDir: stateDir(ctx),
              replace: Boolean(flags.replace),
              ...(flags.target !== undefined ? { target: flags.target } : {}),
              ...(opening ? { opening } : {}),
              reporter,
              open: storageFor(ctx, reporter),
              env: ctx.env,
              now,
            }),
          );
          const where = [...(r.kept ? [r.archive] : []), ...r.uploaded.map((u) => `${u.target}:${u.dir}/ (${u.parts} part${u.parts === 1 ? '' : 's'})`)].join(', ');
          return { json: r, text: `exported ${files(r.files)} (${formatBytes(r.bytes)}) to ${where} (${formatBytes(r.archiveBytes)}), verified` };
        },
        () => ({ exitCode: ExitCode.ok, targets: [] }),
      );
      if (flags.json) printJson(ctx, out.json);
      else ctx.stdout.write(`${out.text}\n`);
      done(ExitCode.ok);
    });
}

function yearOf(flag: string | undefined, now: Date): number {
  if (flag === undefined) return now.getUTCFullYear();
  if (!/^\d{4}$/.test(flag)) throw usageError(`--year ${flag} is not a year`, 'use four digits, e.g. --year 2026');
  return Number(flag);
}

const files = (n: number) => `${n} file${n === 1 ? '' : 's'}`;
