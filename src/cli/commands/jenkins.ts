import path from 'node:path';
import type { Command } from 'commander';
import { parseDuration } from '../../config/index.js';
import { ExitCode, usageError } from '../../errors.js';
import { BUNDLED_JOBS_DIR, JenkinsClient, jenkinsCredentials, readJobDefinitions, RESTORE_JOB, exitCodeOfResult } from '../../jenkins/index.js';
import { table } from '../../report/format.js';
import { repeatable, reporterFor, type CommandContext } from '../context.js';

const CREDENTIALS = 'The Jenkins user and API token come from JENKINS_USER and JENKINS_TOKEN (or\nJENKINS_TOKEN_FILE): never from flags, which any user of the machine can see.';

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  const jenkins = program
    .command('jenkins')
    .summary('set up the Jenkins jobs, and restore through Jenkins')
    .description(`Drive a Jenkins controller over its REST API.\n${CREDENTIALS}`);

  jenkins
    .command('apply')
    .summary('create or update the cerberus jobs from pipelines/jobs/*.xml')
    .description(
      'Create each job of pipelines/jobs/*.xml (named after its file), or replace the config of\n' +
        'the job that already exists. The jobs declare their parameters, so the first "Build with\n' +
        'parameters" already offers them. --repo names the git repository that holds your\n' +
        'cerberus.yaml and the Jenkinsfiles: the jobs load their pipeline from there.\n\n' +
        `${CREDENTIALS}\n\n` +
        'Example:\n' +
        '  JENKINS_USER=admin JENKINS_TOKEN_FILE=~/.jenkins-token \\\n' +
        '    cerberus jenkins apply --url https://jenkins.example.com --repo https://git.example.com/me/backup-config.git',
    )
    .requiredOption('--url <url>', 'the Jenkins address')
    .option('--repo <git-url>', 'the git repository the jobs load their Jenkinsfile from')
    .option('--branch <name>', 'the branch of --repo (default: as in the XML, main)')
    .option('--jobs <dir>', 'the folder of job config.xml files', BUNDLED_JOBS_DIR)
    .option('--dry-run', 'print the XML of each job and whether it would be created or updated; change nothing')
    .action(async (opts: ApplyOptions) => {
      const reporter = reporterFor(ctx);
      const defs = await readJobDefinitions(path.resolve(ctx.cwd, opts.jobs), opts);
      const client = await JenkinsClient.connect(await jenkinsCredentials(opts.url, ctx.env));
      const rows: string[][] = [];
      for (const d of defs) {
        if (opts.dryRun) {
          const action = (await client.jobExists(d.name)) ? 'would update' : 'would create';
          ctx.stdout.write(`<!-- ${d.name}: ${action} -->\n${d.xml.trimEnd()}\n`);
          rows.push([d.name, action, path.relative(ctx.cwd, d.file)]);
        } else {
          const action = await client.putJob(d.name, d.xml);
          reporter.info(`${action} ${client.url}/job/${d.name}/`);
          rows.push([d.name, action, path.relative(ctx.cwd, d.file)]);
        }
      }
      (opts.dryRun ? ctx.stderr : ctx.stdout).write(table(['job', 'action', 'from'], rows) + '\n');
      done(ExitCode.ok);
    });

  jenkins
    .command('restore')
    .summary('start the restore job with parameters, and follow it')
    .description(
      'Queue a build of the restore job (pipelines/restore.Jenkinsfile) with its parameters, wait\n' +
        'until it leaves the queue, and print its address. With --follow, stream its console log\n' +
        'and exit with its result: 0 SUCCESS, 3 UNSTABLE, 1 anything else.\n\n' +
        'A dry run is the default, as in the pipeline: it says what would be restored and which\n' +
        'files would be replaced. --no-dry-run restores; the build then waits for a person to\n' +
        `confirm in Jenkins before it writes anything.\n\n${CREDENTIALS}\n\n` +
        'Example:\n' +
        '  cerberus jenkins restore --url https://jenkins.example.com --job documents \\\n' +
        "    --at 2026-11-01 --path 'invoices/**' --follow",
    )
    .requiredOption('--url <url>', 'the Jenkins address')
    .requiredOption('-j, --job <name>', 'the cerberus job to restore (the JOB parameter)')
    .option('--at <point>', 'latest, a date YYYY-MM-DD, or a restore point id', 'latest')
    .option('-t, --target <name>', "the target to restore from (default: the job's first)")
    .option('--path <glob>', 'restore only what matches (repeatable; no spaces: the pipeline splits PATHS on them)', repeatable)
    .option('--to <dir>', 'the folder to restore into on the agent (default: the pipeline\'s, /restore)')
    .option('--no-dry-run', 'restore for real (the build asks for a confirmation in Jenkins first)')
    .option('--param <name=value>', 'another parameter of the restore job, e.g. CERBERUS_IMAGE_TAG=0.2.0 (repeatable)', repeatable)
    .option('--pipeline <name>', 'the Jenkins job to start (folder/job inside folders)', RESTORE_JOB)
    .option('--follow', 'stream the build log and exit with the build\'s result')
    .option('--poll <duration>', 'how often to ask Jenkins while waiting', '2s')
    .action(async (opts: RestoreOptions) => {
      const reporter = reporterFor(ctx);
      const pollMs = pollOf(opts.poll);
      const parameters = restoreParameters(opts);
      const client = await JenkinsClient.connect(await jenkinsCredentials(opts.url, ctx.env));
      const queued = await client.build(opts.pipeline, parameters);
      reporter.info(`queued ${opts.pipeline} (queue item ${queued})${opts.dryRun ? ', a dry run' : ''}`);
      const build = await client.waitForStart(queued, pollMs, (why) => reporter.info(`waiting in the queue: ${why}`));
      reporter.info(`started ${opts.pipeline} #${build.number}${build.url ? `: ${build.url}` : ''}`);
      if (!opts.follow) return done(ExitCode.ok);
      const result = await client.follow(opts.pipeline, build.number, pollMs, (text) => ctx.stdout.write(text));
      reporter.info(`${opts.pipeline} #${build.number}: ${result}`);
      done(exitCodeOfResult(result));
    });
}

interface ApplyOptions {
  url: string;
  repo?: string;
  branch?: string;
  jobs: string;
  dryRun?: boolean;
}

interface RestoreOptions {
  url: string;
  job: string;
  at: string;
  target?: string;
  path?: string[];
  to?: string;
  dryRun: boolean;
  param?: string[];
  pipeline: string;
  follow?: boolean;
  poll: string;
}

function pollOf(poll: string): number {
  try {
    const ms = parseDuration(poll);
    if (ms >= 100) return ms;
  } catch {
    // said below
  }
  throw usageError(`--poll ${poll} is not a duration of at least 100ms`, 'use e.g. 2s or 500ms');
}

/** The restore job's parameters, as restore.Jenkinsfile declares them. */
function restoreParameters(opts: RestoreOptions): Record<string, string> {
  const paths = opts.path ?? [];
  for (const p of paths) {
    if (/\s/.test(p)) throw usageError(`--path ${JSON.stringify(p)} holds a space, and the pipeline splits PATHS on spaces`, 'match the space with ? instead, e.g. My?Documents/**');
  }
  const params: Record<string, string> = { JOB: opts.job, AT: opts.at, PATHS: paths.join(' '), DRY_RUN: String(opts.dryRun) };
  if (opts.target !== undefined) params.TARGET = opts.target;
  if (opts.to !== undefined) params.RESTORE_TO = opts.to;
  for (const kv of opts.param ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw usageError(`--param ${kv} is not NAME=VALUE`, 'e.g. --param CERBERUS_IMAGE_TAG=0.2.0');
    params[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return params;
}
