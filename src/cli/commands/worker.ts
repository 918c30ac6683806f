import path from 'node:path';
import type { Command } from 'commander';
import { CerberusError, describeError, ExitCode, usageError } from '../../errors.js';
import { openingOf } from '../../jobs/keys.js';
import { formatBytes, formatDuration, table } from '../../report/format.js';
import { PhaseLog } from '../../report/phases.js';
import { runReport } from '../../report/run-report.js';
import { writeReports } from '../../report/write.js';
import { loadWorkerConfig, type WorkerConfig } from '../../worker/config.js';
import { workerHealth, type WorkerHealth } from '../../worker/health.js';
import { passSummary, recordPass } from '../../worker/report.js';
import { restoreCopy } from '../../worker/restore.js';
import { MAX_TOLD, ObjectWorker, passLine, runLoop, type PassResult } from '../../worker/run.js';
import { durationOption, parseNow, printJson, reporterFor, storageFor, withReport, type CommandContext } from '../context.js';
import { reported } from '../report.js';

interface WorkerOptions {
  config?: string;
  once?: boolean;
  now?: string;
  json?: boolean;
  report?: string;
}

interface RestoreOptions {
  config?: string;
  fileId: string;
  version?: string;
  to: string;
  key?: string;
  overwrite?: boolean;
  json?: boolean;
  report?: string;
}

interface HealthOptions {
  config?: string;
  maxBehindRows?: string;
  maxBehind?: string;
  now?: string;
  json?: boolean;
  report?: string;
}

const EXAMPLE_CONFIG =
  '  worker:\n' +
  '    database: ${DB_URL}            # postgres://cerberus_worker:…@host/app, or sqlite:/srv/app/app.db\n' +
  '    storages:                      # by the value of the Storage column\n' +
  '      s3: { type: s3, endpoint: https://s3.eu-west-1.example, region: eu-west-1, bucket: car-erp,\n' +
  '            accessKeyId: ${S3_KEY}, secretAccessKey: ${S3_SECRET} }\n' +
  '    target: { name: disk, type: local, path: /mnt/backup/objects }\n' +
  '    encryption: { kind: openpgp, recipients: [keys/ops.pub.asc] }   # optional\n' +
  '    pollInterval: 60s\n' +
  '    deleteAfter: 7d\n' +
  '    concurrency: 4\n';

const configOption = (cmd: Command) => cmd.option('-c, --config <file>', 'the worker config file (a `worker:` section: see cerberus worker --help)');

function configFileOf(opts: { config?: string }): string {
  if (opts.config === undefined) throw usageError('say which file holds the worker config: --config FILE', 'e.g. cerberus worker --config worker.yaml');
  return opts.config;
}

/** The run's clock: the real time; with --now, that time (a service: moving on from there). */
function clockOf(now: string | undefined, once: boolean): () => number {
  if (now === undefined) return () => Date.now();
  const base = parseNow(now).getTime();
  const started = Date.now();
  return once ? () => base : () => base + (Date.now() - started);
}

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  const worker = withReport(configOption(program.command('worker')))
    // `worker restore --config …`: the options after a subcommand are the subcommand's
    .enablePositionalOptions()
    .summary('keep versioned copies of an application\'s uploads, from its SQL tables (a service, or --once)')
    .description(
      'The off-site copy of an application\'s uploads. The application records every upload in\n' +
        'ObjectStorageFiles and every delete in ObjectStorageDeleteLog (the SQL is in sql/); the\n' +
        'worker reads them (SELECT only), downloads each new version from its SignedDownloadUrl (or,\n' +
        'when that is absent or expired, from the storage the Storage column names), checks its\n' +
        'sha-256 against Hash, gzips it (and encrypts it with OpenPGP when configured) and writes it\n' +
        'atomically to <bucket>/<path without extension>/v<version>.gzip on the target.\n\n' +
        'Its progress is its own, in a SQLite file in the state dir ($CERBERUS_STATE_DIR/worker/<target>,\n' +
        'or worker.stateDir). A failed row is tried again later, waiting twice as long each time.\n' +
        'Copies of a deleted file go once DeletedAt is older than deleteAfter; older versions of a live\n' +
        'file go deleteAfter after a newer one was stored (keepVersions: N keeps the newest N). The\n' +
        'newest copy of a live file is never removed.\n\n' +
        '--once processes what is due and exits (Jenkins, cron). Without it the worker polls every\n' +
        'pollInterval until SIGTERM or Ctrl-C, then stops after the files in flight.\n\n' +
        'Exit codes: 0 ok, 1 the pass failed (database or target unreachable, interrupted), 2 usage\n' +
        'or config, 3 a row failed (it is tried again later) or a removal failed, 4 another worker\n' +
        'runs on the same state dir.',
    )
    .option('--once', 'process what is due now and exit (for Jenkins or cron)')
    .option('--now <iso-time>', 'pretend it is this time: retries, deleteAfter and retention follow it (for tests)')
    .option('--json', 'with --once: print the pass as JSON on stdout')
    .addHelpText(
      'after',
      `\nThe config (worker.yaml):\n${EXAMPLE_CONFIG}\n` +
        'Examples:\n' +
        '  cerberus worker --config worker.yaml --once --report reports   # from Jenkins, e.g. every 10 minutes\n' +
        '  cerberus worker --config worker.yaml                           # as a service\n' +
        '  cerberus worker health --config worker.yaml --max-behind 2h\n' +
        '  cerberus worker restore --config worker.yaml --file-id 1234 --to /tmp/thumbnail.png --key keys/ops.key.asc',
    )
    .action(async (opts: WorkerOptions) => {
      const file = configFileOf(opts);
      const clock = clockOf(opts.now, Boolean(opts.once));
      const reporter = reporterFor(ctx, Boolean(opts.json));
      if (!opts.once) {
        done(await daemon(ctx, await loadWorkerConfig(path.resolve(ctx.cwd, file), ctx.env), clock, opts.report));
        return;
      }
      const signals = stopSignals(reporter.info.bind(reporter));
      let pass: PassResult | undefined;
      let target = '-';
      try {
        pass = await reported(
          ctx,
          { report: opts.report, command: 'worker --once', job: 'worker', reporter },
          async (run) => {
            const cfg = await configFor(ctx, file, run);
            target = cfg.target.name;
            const w = await ObjectWorker.start(cfg, { reporter, open: storageFor(ctx, reporter), clock });
            let result: PassResult | undefined;
            try {
              await runLoop(w, {
                once: true,
                stop: signals.stop,
                abort: signals.abort,
                onPass: (r) => {
                  result = r;
                  recordPass(run.phases, cfg.target.name, r);
                  reporter.info(passLine(r));
                },
                onError: () => undefined,
              });
            } finally {
              await w.close();
            }
            if (!result) throw new CerberusError('INTERNAL', 'the pass gave no result');
            return result;
          },
          (r) => ({ exitCode: passExitCode(r), targets: [passSummary(target, r)] }),
        );
      } finally {
        signals.dispose();
      }
      if (opts.json) printJson(ctx, { ...pass, exitCode: passExitCode(pass) });
      else ctx.stdout.write(passTable(pass));
      done(passExitCode(pass));
    });

  withReport(configOption(worker.command('restore')))
    .summary('get one copy back: a file\'s newest stored version, or --version')
    .description(
      'Get one copy back from the target: the file that row --file-id of ObjectStorageFiles belongs\n' +
        'to (any of its versions\' Ids will do), in its newest stored version or --version. An\n' +
        'encrypted copy (.gzip.gpg) is decrypted with the private key from --key or\n' +
        '$CERBERUS_PRIVATE_KEY_FILE and its passphrase from $CERBERUS_KEY_PASSPHRASE (or the file in\n' +
        '$CERBERUS_KEY_PASSPHRASE_FILE). The content is checked against the Hash of that version\n' +
        'before it gets its name; --to may be a file name or a folder to put it in.\n\n' +
        'By hand, without cerberus: gpg -d v3.gzip.gpg | gunzip > thumbnail.png',
    )
    .requiredOption('--file-id <id>', 'the Id of a row of ObjectStorageFiles')
    .option('--version <n>', 'that version of the file (default: the newest stored)')
    .requiredOption('--to <path>', 'where to write it: a file, or a folder it goes into under its own name')
    .option('--key <file>', 'the private key, for an encrypted copy')
    .option('--overwrite', 'replace a file that is already there')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText('after', '\nExamples:\n  cerberus worker restore -c worker.yaml --file-id 1234 --to restored/\n  cerberus worker restore -c worker.yaml --file-id 1234 --version 2 --to /tmp/thumbnail.png --key keys/ops.key.asc')
    .action(async (opts: RestoreOptions) => {
      const file = configFileOf(opts);
      const fileId = wholeNumber(opts.fileId, '--file-id');
      const version = opts.version === undefined ? undefined : wholeNumber(opts.version, '--version');
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const result = await reported(
        ctx,
        { report: opts.report, command: 'worker restore', job: 'worker', reporter },
        async (run) => {
          const cfg = await configFor(ctx, file, run);
          return run.phases.time('restore', cfg.target.name, () =>
            restoreCopy(cfg, {
              fileId,
              ...(version !== undefined ? { version } : {}),
              to: path.resolve(ctx.cwd, opts.to),
              overwrite: Boolean(opts.overwrite),
              opening: () => openingOf(cfg.encryption ?? { kind: 'openpgp', recipients: [], compression: 'none' }, opts.key === undefined ? undefined : path.resolve(ctx.cwd, opts.key), ctx.env),
              open: storageFor(ctx, reporter),
            }),
          );
        },
        () => ({ exitCode: ExitCode.ok, targets: [] }),
      );
      if (opts.json) printJson(ctx, result);
      else ctx.stdout.write(`restored ${result.path} v${result.version} (row ${result.fileId}) from ${result.key}: ${formatBytes(result.bytes)} into ${result.to}\n`);
      done(ExitCode.ok);
    });

  withReport(configOption(worker.command('health')))
    .summary('fail when the worker is too far behind the application\'s uploads')
    .description(
      'Check that the worker keeps up: the rows not stored yet (new ones, and failed ones waiting for\n' +
        'a retry) are at most --max-behind-rows, and the oldest of them was uploaded at most\n' +
        '--max-behind ago. Reads the application\'s tables (SELECT only) and the worker\'s state dir,\n' +
        'so run it where the worker runs. Defaults: worker.health in the config (1000 rows, 1h).\n\n' +
        'Exit codes: 0 healthy, 1 behind, 2 usage or config.',
    )
    .option('--max-behind-rows <n>', 'rows not stored yet that are still healthy')
    .option('--max-behind <duration>', 'how old the oldest upload not stored yet may be, e.g. 30m or 2h')
    .option('--now <iso-time>', 'pretend it is this time (for tests)')
    .option('--json', 'print the result as JSON on stdout')
    .addHelpText('after', '\nExamples:\n  cerberus worker health -c worker.yaml\n  cerberus worker health -c worker.yaml --max-behind-rows 100 --max-behind 30m --report reports')
    .action(async (opts: HealthOptions) => {
      const file = configFileOf(opts);
      const rows = opts.maxBehindRows === undefined ? undefined : wholeNumber(opts.maxBehindRows, '--max-behind-rows', 0);
      const behindMs = opts.maxBehind === undefined ? undefined : durationOption(opts.maxBehind, '--max-behind', '30m, 2h or 1d');
      const reporter = reporterFor(ctx, Boolean(opts.json));
      const h = await reported(
        ctx,
        { report: opts.report, command: 'worker health', job: 'worker', reporter },
        async (run) => {
          const now = parseNow(opts.now).getTime();
          const cfg = await configFor(ctx, file, run, { keyless: true });
          const health = await workerHealth(cfg, now, { maxBehindRows: rows ?? cfg.health.maxBehindRows, maxBehindMs: behindMs ?? cfg.health.maxBehindMs });
          run.phases.record('health', cfg.target.name, 0, health.healthy ? undefined : health.problems.join('; '));
          for (const p of health.problems) reporter.warn(p);
          return health;
        },
        (out) => ({ exitCode: out.healthy ? ExitCode.ok : ExitCode.failed, targets: [] }),
      );
      if (opts.json) printJson(ctx, h);
      else ctx.stdout.write(healthTable(h));
      done(h.healthy ? ExitCode.ok : ExitCode.failed);
    });
}

/** The config, and the report's job named after its target. */
async function configFor(ctx: CommandContext, file: string, run: { job: string }, opts: { keyless?: boolean } = {}): Promise<WorkerConfig> {
  const cfg = await loadWorkerConfig(path.resolve(ctx.cwd, file), ctx.env, opts);
  run.job = `worker:${cfg.target.name}`;
  return cfg;
}

function wholeNumber(v: string, flag: string, min = 1): number {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min) throw usageError(`${flag} ${v} is not a whole number${min > 0 ? ` of ${min} or more` : ''}`, `e.g. ${flag} 42`);
  return n;
}

/** A failed row waits for its retry: a warning, as a backup's (exit 3); cut short by a signal: failed. */
const passExitCode = (r: PassResult) => (r.interrupted ? ExitCode.failed : r.failed.length > 0 || r.problems.length > 0 ? ExitCode.warnings : ExitCode.ok);

function passTable(r: PassResult): string {
  const rows = [[String(r.read), String(r.stored), String(r.viaStorage), String(r.failed.length), String(r.removed.length), String(r.pending), r.oldestPending ?? '-', formatBytes(r.bytesStored), formatDuration(r.durationMs)]];
  // the first MAX_TOLD failed rows were warned on stderr, each with its next attempt
  const more = r.failed.length > MAX_TOLD ? [`… and ${r.failed.length - MAX_TOLD} more failed rows (all in report.json with --report)\n`] : [];
  return table(['read', 'stored', 'from storage', 'failed', 'removed', 'pending', 'oldest pending', 'written', 'time'], rows) + '\n' + more.join('') + (r.interrupted ? 'interrupted: the files in flight were finished and recorded\n' : '');
}

function healthTable(h: WorkerHealth): string {
  const row = [h.target, h.healthy ? 'ok' : 'BEHIND', String(h.behindRows), h.oldestPending ?? '-', h.behindRows > 0 ? formatDuration(h.behindMs) : '-', String(h.failing), h.lastPass ?? 'never'];
  return table(['target', 'health', 'pending rows', 'oldest pending', 'behind', 'failing', 'last pass'], [row]) + '\n' + h.problems.map((p) => `${p}\n`).join('');
}

/** SIGINT or SIGTERM once: finish the files in flight and stop. Twice: cut them short. */
function stopSignals(say: (m: string) => void): { stop: AbortSignal; abort: AbortSignal; dispose(): void } {
  const stop = new AbortController();
  const abort = new AbortController();
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
  const on = (sig: NodeJS.Signals) => {
    if (!stop.signal.aborted) {
      say(`${sig}: stopping after the files in flight (again to stop at once)`);
      stop.abort();
    } else {
      say(`${sig}: stopping now; the files in flight are fetched again next time`);
      abort.abort(new CerberusError('INTERRUPTED', `interrupted by ${sig}`));
    }
  };
  for (const s of signals) process.on(s, on);
  return { stop: stop.signal, abort: abort.signal, dispose: () => signals.forEach((s) => process.off(s, on)) };
}

/** The service: a pass every pollInterval until a signal; a pass that fails is logged and the next one tries again. */
async function daemon(ctx: CommandContext, cfg: WorkerConfig, clock: () => number, report: string | undefined): Promise<number> {
  const reporter = reporterFor(ctx);
  const w = await ObjectWorker.start(cfg, { reporter, open: storageFor(ctx, reporter), clock });
  const signals = stopSignals(reporter.info.bind(reporter));
  reporter.info(`worker: polling every ${formatDuration(cfg.pollIntervalMs)}, ${cfg.concurrency} files at once, into target ${cfg.target.name}; state in ${cfg.stateDir}`);
  const write = async (r: PassResult | undefined, error?: string) => {
    if (report !== undefined) {
      const phases = new PhaseLog();
      if (r) recordPass(phases, cfg.target.name, r);
      const exitCode = r ? passExitCode(r) : ExitCode.failed;
      const meta = { command: 'worker', job: `worker:${cfg.target.name}`, startedAt: new Date(Date.now() - (r?.durationMs ?? 0)), durationMs: r?.durationMs ?? 0, exitCode, phases: phases.phases, warnings: [...reporter.warnings] };
      await writeReports(path.resolve(ctx.cwd, report), runReport(error === undefined ? meta : { ...meta, error }, r ? [passSummary(cfg.target.name, r)] : [])).catch((e: unknown) => reporter.notice(describeError(e)));
    }
    // a service runs for months: each pass's report holds its own warnings
    reporter.warnings.length = 0;
  };
  try {
    await runLoop(w, {
      once: false,
      stop: signals.stop,
      abort: signals.abort,
      onPass: async (r) => {
        reporter.info(passLine(r));
        await write(r);
      },
      onError: (err) => {
        reporter.warn(`the pass failed: ${describeError(err)}; trying again in ${formatDuration(cfg.pollIntervalMs)}`);
        void write(undefined, describeError(err));
      },
    });
  } finally {
    signals.dispose();
    await w.close();
  }
  reporter.info('worker: stopped');
  return ExitCode.ok;
}
