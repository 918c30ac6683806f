import path from 'node:path';
import { Option, type Command } from 'commander';
import { loadTenants, parseDuration, tenantReferences } from '../../config/index.js';
import { ExitCode, usageError } from '../../errors.js';
import {
  applyTenantPlan,
  BUNDLED_JOBS_DIR,
  exitCodeOfResult,
  JenkinsClient,
  jenkinsCredentials,
  readJobDefinitions,
  RESTORE_JOB,
  tenantPlan,
} from '../../jenkins/index.js';
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
    .summary('create or update the cerberus jobs from pipelines/jobs/*.xml, or a job per tenant resource')
    .description(
      'Create each job of pipelines/jobs/*.xml (named after its file), or replace the config of\n' +
        'the job that already exists. The jobs declare their parameters, so the first "Build with\n' +
        'parameters" already offers them. --repo names the git repository that holds your\n' +
        'cerberus.yaml and the Jenkinsfiles: the jobs load their pipeline from there.\n\n' +
        'With --tenants FILE instead: a folder per tenant (made when missing) and in it a pipeline\n' +
        'job per resource, tenant/resource, that runs `cerberus backup --tenants FILE --job\n' +
        'tenant/resource --init --report reports` on the agent label of the tenant (default\n' +
        'cerberus), never two builds at once. Its cron trigger is the resource\'s schedule in the\n' +
        "file's timezone (TZ=…): @hourly, @daily, @weekly, @monthly and @yearly become Jenkins' H\n" +
        'forms (H * * * *, H H * * *, …) so the jobs spread over the period; five fields stay as\n' +
        'written; a schedule with seconds, names (MON), L, W or #, or both a day of month and a\n' +
        'day of week, is refused. Secrets come from Jenkins credentials: ${VAR} from the secret\n' +
        'text cerberus-<tenant>-<VAR>, ${file:PATH} from the secret file\n' +
        'cerberus-<tenant>-file-<file name>. A job already as it should be is left unchanged; a\n' +
        'job made this way whose resource left the file is disabled, never deleted; jobs made by\n' +
        'hand are never touched.\n\n' +
        `${CREDENTIALS}\n\n` +
        'Examples:\n' +
        '  JENKINS_USER=admin JENKINS_TOKEN_FILE=~/.jenkins-token \\\n' +
        '    cerberus jenkins apply --url https://jenkins.example.com --repo https://git.example.com/me/backup-config.git\n' +
        '  cerberus jenkins apply --url https://jenkins.example.com --tenants tenants.yaml \\\n' +
        '    --agent-tenants /etc/cerberus/tenants.yaml --dry-run',
    )
    .requiredOption('--url <url>', 'the Jenkins address')
    .option('--repo <git-url>', 'the git repository the jobs load their Jenkinsfile from')
    .option('--branch <name>', 'the branch of --repo (default: as in the XML, main)')
    .option('--jobs <dir>', 'the folder of job config.xml files', BUNDLED_JOBS_DIR)
    .addOption(new Option('--tenants <file>', 'a job per tenant × resource of this tenants file, in a folder per tenant').conflicts(['repo', 'branch', 'jobs']))
    .option('--agent-tenants <path>', 'with --tenants: where the tenants file is on the agents (default: its absolute path here)')
    .option('--dry-run', 'print the XML of each job and whether it would be created or updated; change nothing')
    .action(async (opts: ApplyOptions) => {
      if (opts.tenants !== undefined) return done(await applyTenants(ctx, opts, opts.tenants));
      if (opts.agentTenants !== undefined) throw usageError('--agent-tenants goes with --tenants', 'add --tenants FILE, or drop --agent-tenants');
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
  tenants?: string;
  agentTenants?: string;
  dryRun?: boolean;
}

/** `apply --tenants`: the plan is made (and a bad schedule refused) before Jenkins is asked anything. */
async function applyTenants(ctx: CommandContext, opts: ApplyOptions, file: string): Promise<ExitCode> {
  const abs = path.resolve(ctx.cwd, file);
  const agentFile = opts.agentTenants ?? abs;
  if (!path.posix.isAbsolute(agentFile)) throw usageError(`--agent-tenants ${agentFile} is not an absolute path`, 'give the full path of the tenants file on the agents, e.g. /etc/cerberus/tenants.yaml');
  // the values stay ${…} as written: Jenkins supplies them at run time, and none is needed here
  const tenants = await loadTenants(abs, ctx.env, { unresolved: true, keyless: true });
  const plan = tenantPlan(tenants, await tenantReferences(abs), agentFile);
  const client = await JenkinsClient.connect(await jenkinsCredentials(opts.url, ctx.env));
  const rows = await applyTenantPlan(client, plan, { dryRun: opts.dryRun === true });
  const reporter = reporterFor(ctx);
  const actionOf = (a: string) => (opts.dryRun && a !== 'unchanged' && a !== 'already disabled' ? `would ${a === 'created' ? 'create' : a === 'updated' ? 'update' : 'disable'}` : a);
  for (const r of rows) {
    if (opts.dryRun && r.xml !== undefined) ctx.stdout.write(`<!-- ${r.item}: ${actionOf(r.action)} -->\n${r.xml.trimEnd()}\n`);
    else if (!opts.dryRun && r.action !== 'unchanged' && r.action !== 'already disabled') reporter.info(`${r.action} ${client.url}/job/${r.item.split('/').join('/job/')}/`);
  }
  const commands = [...new Set(plan.jobs.flatMap((j) => j.commands))];
  if (commands.length > 0) reporter.info(`run on the agents as written (\${cmd:…}): ${commands.length} command${commands.length === 1 ? '' : 's'}; their tools must be there`);
  const out = table(['item', 'action', 'detail'], rows.map((r) => [r.kind === 'folder' ? `${r.item}/` : r.item, actionOf(r.action), r.detail]));
  (opts.dryRun ? ctx.stderr : ctx.stdout).write(out + '\n');
  return ExitCode.ok;
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
