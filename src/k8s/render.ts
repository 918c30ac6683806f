import path from 'node:path';
import { Cron } from 'croner';
import { tenantJobName, type SecretReferences, type TenantJob, type TenantsConfig } from '../config/index.js';
import { configError } from '../errors.js';
import { CRONJOB_NAME_MAX, dnsName, fitName, LABEL_MAX, refuseCollisions } from './names.js';

/**
 * A tenants file as Kubernetes objects: per tenant × resource a CronJob and the
 * PersistentVolumeClaim of its state cache, and, shared, the tenants file as a ConfigMap and a
 * CronJob for `cerberus health`. Secrets are referred to by name and key, never rendered: their
 * values are the operator's to create (`kubectl create secret`). Pure: the caller reads files.
 */

/** A Kubernetes object, as it is written to YAML. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

export interface Manifest {
  /** the tenant (as the tenants file names it) whose file it belongs in; undefined: the shared one */
  tenant: string | undefined;
  object: KubeObject;
  /** comments placed before a key of `object`: why it holds what it holds */
  notes: Array<{ at: Array<string | number>; text: string }>;
  /** a comment before the whole document */
  header?: string;
}

export interface RenderInput {
  /** loaded with `{ unresolved: true }`: every `${…}` as written */
  tenants: TenantsConfig;
  /** tenantReferences() of the same file */
  references: Map<string, SecretReferences>;
  /** the tenants file as written: it becomes the ConfigMap's tenants.yaml */
  tenantsText: string;
  /** the public files it names inside its folder (publicFiles().inside), read: relative path → contents */
  configFiles: ReadonlyMap<string, Uint8Array>;
}

export interface RenderOptions {
  image: string;
  namespace?: string | undefined;
  /** of the `cerberus health` CronJob */
  healthSchedule: string;
  /** each state cache's PersistentVolumeClaim, e.g. 1Gi */
  stateSize: string;
  storageClass?: string | undefined;
}

export interface Rendered {
  manifests: Manifest[];
  /** what the objects cannot provide by themselves; no secret in any of them */
  warnings: string[];
}

/** where the pod finds the tenants file: its relative paths start here */
export const CONFIG_DIR = '/config';
export const TENANTS_KEY = 'tenants.yaml';
export const CONFIGMAP_NAME = 'cerberus-tenants';
export const HEALTH_NAME = 'cerberus-health';
const STATE_DIR = '/state';
/** the `node` user of docker/Dockerfile's image */
const IMAGE_UID = 1000;
/** a run's deadline when the schedule leaves more room (see startingDeadline) */
const MAX_STARTING_DEADLINE_S = 3600;
/** projected secret files: the owner (root) and the pod's fsGroup (the image's user) may read */
const SECRET_FILE_MODE = 0o440;

/** The Secret every job of `tenant` reads its variables and files from. */
export const secretName = (tenant: string) => fitName(`cerberus-${dnsName(tenant)}`, 253, tenant);

/** The key a `${file:PATH}` has in its tenant's Secret: the file's name. */
export const secretFileKey = (file: string) => path.posix.basename(file);

/** Where the pod sees `${file:PATH}`: relative paths start at the tenants file's folder, as in cerberus. */
const containerPath = (file: string) => path.posix.resolve(CONFIG_DIR, file);
const underConfig = (p: string) => p.startsWith(CONFIG_DIR + '/');

// ---- schedules ---------------------------------------------------------------------------------

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']);
const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const DAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];

/**
 * The schedule as a CronJob takes it. croner (what `cerberus schedule` uses) reads more than
 * Kubernetes' cron does: a seconds field, a year field, L, W, #, and 7 for Sunday.
 * A CronJob refuses those when applied; this names the resource instead.
 */
export function kubernetesSchedule(expr: string, what: string): string {
  const fail = (why: string, fix: string) => configError(`${what}: the schedule ${JSON.stringify(expr)} ${why}`, fix);
  const trimmed = expr.trim();
  if (trimmed.startsWith('@')) {
    // Kubernetes matches these case-sensitively, croner does not
    if (NICKNAMES.has(trimmed.toLowerCase())) return trimmed.toLowerCase();
    throw fail('is no nickname a Kubernetes CronJob knows', `use one of ${[...NICKNAMES].join(', ')} or five fields`);
  }
  const fields = trimmed.split(/\s+/);
  if (fields.length === 6) throw fail('has a seconds field, and a Kubernetes CronJob starts at most once a minute', 'use five fields (minute hour day month weekday), e.g. "*/5 * * * *"');
  if (fields.length !== 5) throw fail(`has ${fields.length} fields`, 'a Kubernetes CronJob takes five (minute hour day month weekday), e.g. "0 2 * * *"');
  fields.forEach((field, i) => {
    const names = i === 3 ? MONTHS : i === 4 ? DAYS : [];
    let bare = field.toLowerCase();
    names.forEach((n, k) => (bare = bare.replaceAll(n, String(i === 3 ? k + 1 : k))));
    const other = /[^0-9*?,/-]/.exec(bare);
    if (other) throw fail(`uses ${JSON.stringify(other[0].toUpperCase() === other[0].toLowerCase() ? other[0] : other[0].toUpperCase())}, which Kubernetes' cron does not know (croner's L, W and # are not)`, 'use plain numbers, ranges, lists and steps');
    if (i === 4 && bare.split(/[,/-]/).includes('7')) throw fail('uses 7 for Sunday, which Kubernetes refuses', 'write 0 (or SUN) for Sunday');
  });
  return fields.join(' ');
}

/**
 * How late a missed run may still start: an hour, or less when the schedule fires more often,
 * so a late run never overlaps the next one's start (concurrencyPolicy Forbid would skip that).
 * From the shortest gap between fire times, counted from a fixed date so the output is stable.
 */
export function startingDeadline(expr: string, timezone: string): number {
  const cron = new Cron(expr, { paused: true, timezone });
  const runs = cron.nextRuns(100, new Date('2026-01-01T00:00:00Z'));
  cron.stop();
  let gap = MAX_STARTING_DEADLINE_S;
  for (let i = 1; i < runs.length; i++) gap = Math.min(gap, Math.round((runs[i]!.getTime() - runs[i - 1]!.getTime()) / 1000));
  return gap;
}

// ---- what the tenants file must not hold ------------------------------------------------------

/**
 * Settings a tenants file may only take from elsewhere here: written in the file itself, a value
 * would sit in a ConfigMap, readable by whoever may read the namespace's ConfigMaps.
 */
function literalSecrets(job: TenantJob): string[] {
  const literal = (v: string | undefined) => v !== undefined && v !== '' && !v.includes('${');
  const out: string[] = [];
  const check = (where: string, v: string | undefined) => {
    if (literal(v)) out.push(where);
  };
  for (const t of job.targets) {
    if (t.type === 'webdav') check(`targets (${t.name}).password`, t.password);
    if (t.type === 's3') {
      check(`targets (${t.name}).secretAccessKey`, t.secretAccessKey);
      check(`targets (${t.name}).sessionToken`, t.sessionToken);
    }
  }
  const e = job.encryption;
  if (e.kind === 'openpgp') check('encryption.passphrase', e.passphrase);
  else check('encryption.password', e.password);
  check('report.github.token', job.report.github?.token);
  const r = job.source.remote;
  if (r?.type === 'ftps') check('source.password', r.password);
  if (r?.type === 'sftp') {
    check('source.password', r.password);
    check('source.privateKey', r.privateKey);
    check('source.passphrase', r.passphrase);
  }
  if (r?.type === 's3') check('source.secretAccessKey', r.secretAccessKey);
  job.source.databases.forEach((d, i) => {
    // a password in the URL (postgres://user:password@host/db)
    if (!d.url.includes('${') && /^[a-z]+:\/\/[^/@]*:[^/@]+@/i.test(d.url)) out.push(`source.databases[${i}].url`);
  });
  return out;
}

/**
 * The files a tenants file names that are no secret (public keys, CA certificates): inside its
 * folder they go into the ConfigMap at the same relative path; elsewhere the image must hold them.
 * `written`: the tenants file's text, to tell a path written absolute (which the pod reads as
 * written) from one written relative (which it reads below /config).
 */
export function publicFiles(tenants: TenantsConfig, written: string): { inside: string[]; outside: string[] } {
  const files = new Set<string>();
  for (const job of tenants.jobs.values()) {
    if (job.encryption.kind === 'openpgp') for (const r of job.encryption.recipients) files.add(r);
    const r = job.source.remote;
    if (r?.type === 'ftps' && r.caFile !== undefined) files.add(r.caFile);
  }
  const inside: string[] = [];
  const outside: string[] = [];
  for (const f of files) {
    const rel = path.relative(tenants.dir, f);
    if (rel.startsWith('..') || path.isAbsolute(rel) || written.includes(f)) outside.push(f);
    else inside.push(rel.split(path.sep).join('/'));
  }
  return { inside, outside };
}

// ---- the objects -------------------------------------------------------------------------------

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef: { name: string; key: string } };
}

interface Volume {
  name: string;
  [source: string]: unknown;
}

interface VolumeMount {
  name: string;
  mountPath: string;
  subPath?: string;
  readOnly?: boolean;
}

interface ProjectedSource {
  configMap?: { name: string; items: Array<{ key: string; path: string }> };
  secret?: { name: string; items: Array<{ key: string; path: string; mode: number }> };
}

/** What a pod needs from Secrets: the variables and files of the jobs it runs, by tenant. */
interface SecretNeeds {
  env: EnvVar[];
  /** for the /config projected volume: files named relative to the tenants file */
  projected: ProjectedSource[];
  volumes: Volume[];
  mounts: VolumeMount[];
}

/** One tenant's Secret: each variable by its name, each file by its file name. */
interface TenantSecret {
  tenant: string;
  name: string;
  vars: string[];
  /** the `${file:PATH}` as written → its key */
  files: Map<string, string>;
}

function tenantSecrets(tenants: TenantsConfig, references: Map<string, SecretReferences>): Map<string, TenantSecret> {
  const out = new Map<string, TenantSecret>();
  for (const t of tenants.tenants) {
    const secret: TenantSecret = { tenant: t.name, name: secretName(t.name), vars: [], files: new Map() };
    const keyOf = new Map<string, string>();
    const claim = (key: string, what: string) => {
      const before = keyOf.get(key);
      if (before !== undefined && before !== what) {
        throw configError(`tenant ${t.name}: ${before} and ${what} would both be the key ${JSON.stringify(key)} of the Secret ${secret.name}`, 'give the files different names (a file is keyed by its name)');
      }
      keyOf.set(key, what);
    };
    for (const resource of t.resources) {
      const refs = references.get(tenantJobName(t.name, resource));
      if (!refs) continue;
      for (const v of refs.vars) {
        claim(v, `the variable ${v}`);
        if (!secret.vars.includes(v)) secret.vars.push(v);
      }
      for (const f of refs.files) {
        const key = secretFileKey(containerPath(f));
        if (!/^[-._a-zA-Z0-9]+$/.test(key)) throw configError(`tenant ${t.name}: \${file:${f}} cannot be a Secret key (${JSON.stringify(key)})`, 'name the file with letters, digits, ".", "_" and "-" only');
        claim(key, `the file ${f}`);
        secret.files.set(f, key);
      }
    }
    out.set(t.name, secret);
  }
  return out;
}

/**
 * The env and volumes for the jobs `jobs`: each variable and file from the Secret of the first
 * tenant that uses it (one tenants file has one value per variable name, so any would do).
 */
function secretNeeds(jobs: TenantJob[], secrets: Map<string, TenantSecret>, references: Map<string, SecretReferences>): SecretNeeds {
  const needs: SecretNeeds = { env: [], projected: [], volumes: [], mounts: [] };
  const vars = new Set<string>();
  const files = new Set<string>();
  const projectedBy = new Map<string, NonNullable<ProjectedSource['secret']>>();
  const volumeBy = new Map<string, { name: string; secret: { secretName: string; defaultMode: number; items: Array<{ key: string; path: string }> } }>();
  for (const job of jobs) {
    const refs = references.get(job.name);
    const secret = secrets.get(job.tenant);
    if (!refs || !secret) continue;
    for (const v of refs.vars) {
      if (vars.has(v)) continue;
      vars.add(v);
      needs.env.push({ name: v, valueFrom: { secretKeyRef: { name: secret.name, key: v } } });
    }
    for (const f of refs.files) {
      const at = containerPath(f);
      if (files.has(at)) continue;
      files.add(at);
      const key = secret.files.get(f) ?? secretFileKey(at);
      if (underConfig(at)) {
        const source = projectedBy.get(secret.name) ?? { name: secret.name, items: [] };
        projectedBy.set(secret.name, source);
        source.items.push({ key, path: at.slice(CONFIG_DIR.length + 1), mode: SECRET_FILE_MODE });
      } else {
        // one file at its own path: a mount of the folder would hide what the image has there
        const volume = volumeBy.get(secret.name) ?? { name: fitName(`secret-${dnsName(secret.tenant)}`, LABEL_MAX, secret.tenant), secret: { secretName: secret.name, defaultMode: SECRET_FILE_MODE, items: [] } };
        volumeBy.set(secret.name, volume);
        if (!volume.secret.items.some((i) => i.key === key)) volume.secret.items.push({ key, path: key });
        needs.mounts.push({ name: volume.name, mountPath: at, subPath: key, readOnly: true });
      }
    }
  }
  needs.projected = [...projectedBy.values()].map((secret) => ({ secret }));
  needs.volumes = [...volumeBy.values()];
  return needs;
}

function configMapKey(rel: string): string {
  return rel.replaceAll('/', '__');
}

function isUtf8Text(bytes: Uint8Array): boolean {
  try {
    return !new TextDecoder('utf-8', { fatal: true }).decode(bytes).includes('\0');
  } catch {
    return false;
  }
}

interface PodParts {
  labels: Record<string, string>;
  args: string[];
  env: EnvVar[];
  volumes: Volume[];
  mounts: VolumeMount[];
}

function podTemplate(image: string, p: PodParts) {
  return {
    metadata: { labels: p.labels },
    spec: {
      restartPolicy: 'Never',
      // cerberus never calls the Kubernetes API
      automountServiceAccountToken: false,
      enableServiceLinks: false,
      securityContext: {
        runAsNonRoot: true,
        runAsUser: IMAGE_UID,
        runAsGroup: IMAGE_UID,
        fsGroup: IMAGE_UID,
        // a state cache holds a file per folder it saw: no recursive chown on every start
        fsGroupChangePolicy: 'OnRootMismatch',
        seccompProfile: { type: 'RuntimeDefault' },
      },
      containers: [
        {
          name: 'cerberus',
          image,
          args: p.args,
          env: p.env,
          resources: {
            requests: { cpu: '250m', memory: '256Mi' },
            limits: { cpu: '2', memory: '256Mi' },
          },
          securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
          volumeMounts: p.mounts,
        },
      ],
      volumes: p.volumes,
    },
  };
}

const NOTE_RESOURCES =
  'a backup streams through a bounded buffer: its peak RSS stays under 200 MB (BENCHMARKS.md),\n' +
  'whatever the size of the data; CPU is what compression and encryption take when there is some';
const NOTE_FORBID = 'a run still going when the next one is due: the next one is skipped, never run beside it';
const NOTE_BACKOFF =
  'no retry inside a Job: a failed backup has cleaned up after itself, and the next scheduled\n' +
  'run is the retry; a pod retried at once would meet the same cause and pile up failed pods';

function meta(name: string, labels: Record<string, string>, opts: RenderOptions, annotations?: Record<string, string>): KubeObject['metadata'] {
  return { name, ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}), labels, ...(annotations ? { annotations } : {}) };
}

/** a tenants-file name as a label value when it is one, else its DNS form */
function labelValue(name: string): string {
  return name.length <= LABEL_MAX && /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(name) ? name : dnsName(name);
}

function cronJob(name: string, labels: Record<string, string>, annotations: Record<string, string> | undefined, schedule: { expr: string; timezone: string; what: string }, pod: ReturnType<typeof podTemplate>, opts: RenderOptions): Manifest {
  const object: KubeObject = {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: meta(name, labels, opts, annotations),
    spec: {
      schedule: kubernetesSchedule(schedule.expr, schedule.what),
      timeZone: schedule.timezone,
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: startingDeadline(schedule.expr, schedule.timezone),
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      jobTemplate: {
        metadata: { labels },
        spec: { backoffLimit: 0, template: pod },
      },
    },
  };
  return {
    tenant: undefined,
    object,
    notes: [
      { at: ['spec', 'concurrencyPolicy'], text: NOTE_FORBID },
      { at: ['spec', 'startingDeadlineSeconds'], text: 'a run missed by more than this (an hour, or the gap to the next run) waits for the next one' },
      { at: ['spec', 'jobTemplate', 'spec', 'backoffLimit'], text: NOTE_BACKOFF },
      { at: ['spec', 'jobTemplate', 'spec', 'template', 'spec', 'containers', 0, 'resources'], text: NOTE_RESOURCES },
    ],
  };
}

/** Every object for the tenants file; throws a CONFIG error for what Kubernetes could not run. */
export function render(input: RenderInput, opts: RenderOptions): Rendered {
  const { tenants, references } = input;
  const warnings: string[] = [];
  const jobs = [...tenants.jobs.values()];

  for (const job of jobs) {
    const literal = literalSecrets(job);
    if (literal.length > 0) {
      throw configError(
        `${job.name}: ${literal.join(', ')} ${literal.length === 1 ? 'is' : 'are'} written in the tenants file itself, which becomes a ConfigMap that whoever may read the namespace's ConfigMaps can read`,
        `take ${literal.length === 1 ? 'it' : 'each'} from a variable (e.g. password: "\${ACME_FTP_PASSWORD}") and put the value in the Secret ${secretName(job.tenant)}`,
      );
    }
  }

  // names: refuse two things that would be one object
  const tenantNames = tenants.tenants.map((t) => ({ of: t.name, name: secretName(t.name) }));
  refuseCollisions('Secret', tenantNames);
  const jobNames = new Map(jobs.map((j) => [j.name, fitName(`cerberus-${dnsName(j.tenant)}-${dnsName(j.resource)}`, CRONJOB_NAME_MAX, j.name)]));
  refuseCollisions('CronJob', [...jobNames].map(([of, name]) => ({ of, name })));

  const secrets = tenantSecrets(tenants, references);

  // the ConfigMap: the tenants file (its ${…} templates, no values) and the public files it names
  const configItems: Array<{ key: string; path: string }> = [{ key: TENANTS_KEY, path: TENANTS_KEY }];
  const data: Record<string, string> = { [TENANTS_KEY]: input.tenantsText };
  const binaryData: Record<string, string> = {};
  for (const [rel, bytes] of input.configFiles) {
    const key = configMapKey(rel);
    if (configItems.some((i) => i.key === key || i.path === rel)) throw configError(`the file ${rel} would be the ConfigMap key ${key} twice`, 'rename one of the files');
    configItems.push({ key, path: rel });
    if (isUtf8Text(bytes)) data[key] = new TextDecoder().decode(bytes);
    else binaryData[key] = Buffer.from(bytes).toString('base64');
  }
  const configPaths = new Set(configItems.map((i) => i.path));
  for (const s of secrets.values()) {
    for (const f of s.files.keys()) {
      const at = containerPath(f);
      if (underConfig(at) && configPaths.has(at.slice(CONFIG_DIR.length + 1))) throw configError(`\${file:${f}} is also a public file of the ConfigMap`, 'keep secrets and public keys in different files');
    }
  }

  // what no object provides
  const commands = new Map<string, string[]>();
  for (const job of jobs) for (const c of references.get(job.name)?.commands ?? []) commands.set(c, [...(commands.get(c) ?? []), job.name]);
  for (const [c, used] of commands) {
    warnings.push(`\${cmd:${c}} (${used.join(', ')}): no Secret can provide it; the image must hold that command and whatever it needs to log in, or use \${VAR} or \${file:PATH} instead`);
  }
  for (const job of jobs) {
    if (job.source.paths.length > 0) warnings.push(`${job.name} backs up ${job.source.paths.join(', ')} from the pod's own file system: mount ${job.source.paths.length === 1 ? 'it' : 'them'} into its CronJob's pod before applying`);
  }
  const localTargets = new Map<string, string>();
  for (const job of jobs) for (const t of job.targets) if (t.type === 'local' && !localTargets.has(t.name)) localTargets.set(t.name, t.path);
  for (const [name, at] of localTargets) warnings.push(`the target ${name} is a folder (${at}, and the other resources' beside it): mount it into every pod (backups and health) before applying`);
  for (const f of publicFiles(tenants, input.tenantsText).outside) warnings.push(`${f} is not in the tenants file's folder (or written as an absolute path), so not in the ConfigMap: the image must hold it at that path`);

  const configSource: ProjectedSource = { configMap: { name: CONFIGMAP_NAME, items: configItems } };
  const baseMounts = (needs: SecretNeeds): VolumeMount[] => [{ name: 'config', mountPath: CONFIG_DIR, readOnly: true }, { name: 'tmp', mountPath: '/tmp' }, ...needs.mounts];
  const baseVolumes = (needs: SecretNeeds): Volume[] => [
    { name: 'config', projected: { sources: [configSource, ...needs.projected] } },
    // the root file system is read-only; database dumps keep a password file here
    { name: 'tmp', emptyDir: {} },
    ...needs.volumes,
  ];
  const commonLabels = { 'app.kubernetes.io/name': 'cerberus' };
  const tenantsPath = `${CONFIG_DIR}/${TENANTS_KEY}`;

  const manifests: Manifest[] = [];
  manifests.push({
    tenant: undefined,
    object: {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: meta(CONFIGMAP_NAME, { ...commonLabels, 'app.kubernetes.io/component': 'config' }, opts),
      data,
      ...(Object.keys(binaryData).length > 0 ? { binaryData } : {}),
    },
    notes: [],
    header:
      ' The tenants file as written: its secrets are ${VAR}, ${file:PATH} and ${cmd:…} templates that\n' +
      ' each pod resolves from its tenant\'s Secret, never values; beside it the public files it names.',
  });

  // health: every tenant × resource, so every tenant's Secret; no state (it keeps none)
  const healthNeeds = secretNeeds(jobs, secrets, references);
  const healthLabels = { ...commonLabels, 'app.kubernetes.io/instance': 'health', 'app.kubernetes.io/component': 'health' };
  const health = cronJob(
    HEALTH_NAME,
    healthLabels,
    undefined,
    { expr: opts.healthSchedule, timezone: tenants.timezone, what: 'the health check' },
    podTemplate(opts.image, {
      labels: healthLabels,
      args: ['health', '--tenants', tenantsPath],
      // it only reads the scheduler's history there, which Kubernetes keeps instead (kubectl get jobs)
      env: [{ name: 'CERBERUS_STATE_DIR', value: '/tmp/state' }, ...healthNeeds.env],
      volumes: baseVolumes(healthNeeds),
      mounts: baseMounts(healthNeeds),
    }),
    opts,
  );
  manifests.push({ ...health, header: ' cerberus health over every tenant × resource: it reads every tenant\'s Secret (targets\' and sources\' credentials).' });

  for (const t of tenants.tenants) {
    const secret = secrets.get(t.name)!;
    const header = secretHeader(secret);
    t.resources.forEach((resource, i) => {
      const job = tenants.jobs.get(tenantJobName(t.name, resource))!;
      const name = jobNames.get(job.name)!;
      const labels = {
        ...commonLabels,
        'app.kubernetes.io/instance': fitName(`${dnsName(t.name)}-${dnsName(resource)}`, LABEL_MAX, job.name),
        'app.kubernetes.io/component': 'backup',
        'cerberus/tenant': labelValue(t.name),
        'cerberus/resource': labelValue(resource),
      };
      const annotations = { 'cerberus/job': job.name };
      const pvc = `${name}-state`;
      manifests.push({
        tenant: t.name,
        object: {
          apiVersion: 'v1',
          kind: 'PersistentVolumeClaim',
          metadata: meta(pvc, labels, opts, annotations),
          spec: {
            accessModes: ['ReadWriteOnce'],
            ...(opts.storageClass !== undefined ? { storageClassName: opts.storageClass } : {}),
            resources: { requests: { storage: opts.stateSize } },
          },
        },
        notes: [
          {
            at: ['spec', 'accessModes'],
            text:
              'one per resource, not shared: a ReadWriteOnce volume is attached to one node at a time, and\n' +
              'two resources\' runs may start at the same minute on different nodes. It only saves work\n' +
              '(which files changed): lost, the next run reads everything again',
          },
        ],
        ...(i === 0 ? { header } : {}),
      });
      const needs = secretNeeds([job], secrets, references);
      const cron = cronJob(
        name,
        labels,
        annotations,
        { expr: job.schedule, timezone: job.timezone, what: job.name },
        podTemplate(opts.image, {
          labels,
          args: ['backup', '--tenants', tenantsPath, '--job', job.name, '--init'],
          env: [{ name: 'CERBERUS_STATE_DIR', value: STATE_DIR }, ...needs.env],
          volumes: [...baseVolumes(needs), { name: 'state', persistentVolumeClaim: { claimName: pvc } }],
          mounts: [...baseMounts(needs), { name: 'state', mountPath: STATE_DIR }],
        }),
        opts,
      );
      manifests.push({ ...cron, tenant: t.name });
    });
  }
  return { manifests, warnings };
}

/** What the operator creates by hand: the Secret's keys, never values. */
function secretHeader(s: TenantSecret): string {
  const lines = [` Tenant ${s.tenant}: its pods read the Secret ${s.name}, which is not rendered here (values never are).`];
  if (s.vars.length === 0 && s.files.size === 0) return lines.concat(' It needs no keys.').join('\n');
  lines.push(' Its keys: each variable by its name, each ${file:PATH} by the file\'s name:');
  for (const v of s.vars) lines.push(`   ${v}`);
  for (const [f, key] of s.files) lines.push(`   ${key}  (\${file:${f}})`);
  const from = [...s.vars.map((v) => `--from-literal=${v}=…`), ...[...s.files.values()].map((k) => `--from-file=${k}=…`)];
  lines.push(` e.g. kubectl create secret generic ${s.name} ${from.join(' ')}`);
  return lines.join('\n');
}
