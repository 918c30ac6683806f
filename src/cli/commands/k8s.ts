import path from 'node:path';
import type { Command } from 'commander';
import { Cron } from 'croner';
import { CerberusError, ExitCode, usageError } from '../../errors.js';
import { kubernetesSchedule, renderTenantsFile, toYaml, writeManifests } from '../../k8s/index.js';
import { isDnsLabel } from '../../k8s/names.js';
import { VERSION } from '../../version.js';
import { reporterFor, type CommandContext } from '../context.js';

interface RenderOptions {
  tenants: string;
  namespace?: string;
  image: string;
  out?: string;
  healthSchedule: string;
  stateSize: string;
  storageClass?: string;
}

/** a Kubernetes quantity of bytes: 1Gi, 500Mi, 2G */
const QUANTITY = /^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/;

export function register(program: Command, ctx: CommandContext, done: (code: number) => void): void {
  const k8s = program
    .command('k8s')
    .summary('run a tenants file on Kubernetes: render its CronJobs')
    .description('Kubernetes manifests for the backups of a tenants file. Talks to no cluster: apply the output with kubectl.');

  k8s
    .command('render')
    .summary('write the CronJobs, volumes and ConfigMap of a tenants file as YAML')
    .description(
      'Write Kubernetes objects for every tenant × resource of a tenants file, to stdout (one\n' +
        'YAML stream) or with --out into a folder: tenant-<tenant>.yaml each, and shared.yaml.\n\n' +
        'Per tenant × resource: a CronJob (batch/v1) cerberus-<tenant>-<resource> running\n' +
        '`cerberus backup --tenants /config/tenants.yaml --job tenant/resource --init` on the\n' +
        "resource's schedule in the file's timezone, never two runs at once (concurrencyPolicy\n" +
        'Forbid), no retry but the next scheduled run (backoffLimit 0), as the image\'s user (1000)\n' +
        'on a read-only root file system, with 256Mi of memory; and a PersistentVolumeClaim\n' +
        'cerberus-<tenant>-<resource>-state for its state cache at /state.\n' +
        'Shared: the ConfigMap cerberus-tenants (the tenants file as written, its ${…} templates\n' +
        'and no values, and the public keys it names in its folder, mounted at /config) and the\n' +
        'CronJob cerberus-health (`cerberus health --tenants …`, --health-schedule).\n\n' +
        'Secrets are never rendered. Every pod of a tenant reads the Secret cerberus-<tenant>,\n' +
        'which you create: each ${VAR} its resources use (the shared targets\', encryption\'s and\n' +
        'report\'s included) as the key VAR, each ${file:PATH} as the key named as the file,\n' +
        'mounted at PATH (relative paths below /config). Each tenant\'s YAML begins with the\n' +
        'keys it needs. ${cmd:…} cannot come from a Secret: it is rendered with a warning, and the\n' +
        'image must hold that command. A secret written in the tenants file itself is refused,\n' +
        'as is a schedule a CronJob cannot run (a seconds field, L, W, #, 7 for Sunday).\n\n' +
        'Kubernetes names are lowercase with "-" for "." and "_", and at most 52 characters for\n' +
        'a CronJob (longer ones end in a hash); two tenants or resources that would get the same\n' +
        'name are refused.\n\n' +
        'Exit codes: 0 written (warnings on stderr), 2 usage or config (nothing written).',
    )
    .requiredOption('--tenants <file>', 'the tenants file')
    .option('-n, --namespace <name>', 'the namespace of every object (default: none, kubectl\'s current one)')
    .option('--image <image>', 'the cerberus image', `cerberus:${VERSION}`)
    .option('--out <dir>', 'write one file per tenant and shared.yaml there instead of stdout')
    .option('--health-schedule <cron>', 'when cerberus health runs', '@hourly')
    .option('--state-size <quantity>', 'the size of each state cache\'s volume', '1Gi')
    .option('--storage-class <name>', 'the StorageClass of the state volumes (default: the cluster\'s)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  cerberus k8s render --tenants tenants.yaml --namespace backup | kubectl apply -f -\n' +
        '  cerberus k8s render --tenants tenants.yaml --image registry.example.com/cerberus:0.1.0 --out k8s/\n' +
        '  kubectl -n backup create secret generic cerberus-acme --from-env-file=acme.env --from-file=acme_key=secrets/acme_key\n' +
        '  kubectl apply -n backup -f k8s/',
    )
    .action(async (opts: RenderOptions) => {
      if (opts.namespace !== undefined && !isDnsLabel(opts.namespace)) throw usageError(`--namespace ${JSON.stringify(opts.namespace)} is not a namespace name`, 'lowercase letters, digits and "-", at most 63');
      if (!QUANTITY.test(opts.stateSize)) throw usageError(`--state-size ${opts.stateSize} is not a size Kubernetes reads`, 'e.g. 1Gi or 500Mi');
      if (opts.image.trim() === '' || /\s/.test(opts.image)) throw usageError(`--image ${JSON.stringify(opts.image)} is not an image reference`, 'e.g. registry.example.com/cerberus:0.1.0');
      try {
        new Cron(opts.healthSchedule, { paused: true }).stop();
      } catch (err) {
        throw usageError(`--health-schedule ${JSON.stringify(opts.healthSchedule)} is not a cron expression: ${(err as Error).message.replace(/^CronPattern: /, '')}`, 'e.g. @hourly or "15 */6 * * *"');
      }
      try {
        kubernetesSchedule(opts.healthSchedule, '--health-schedule');
      } catch (err) {
        if (err instanceof CerberusError) throw usageError(err.message, err.hint);
        throw err;
      }
      const rendered = await renderTenantsFile(
        path.resolve(ctx.cwd, opts.tenants),
        { image: opts.image, namespace: opts.namespace, healthSchedule: opts.healthSchedule, stateSize: opts.stateSize, storageClass: opts.storageClass },
        ctx.env,
      );
      const reporter = reporterFor(ctx);
      for (const w of rendered.warnings) reporter.warn(w);
      if (opts.out === undefined) ctx.stdout.write(toYaml(rendered.manifests));
      else {
        const written = await writeManifests(path.resolve(ctx.cwd, opts.out), rendered.manifests);
        reporter.info(`wrote ${written.map((f) => path.relative(ctx.cwd, f) || f).join(', ')}`);
      }
      done(ExitCode.ok);
    });
}
