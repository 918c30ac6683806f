import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { main } from '../../src/cli/main.js';
import { CerberusError } from '../../src/errors.js';
import { kubernetesSchedule, renderTenantsFile } from '../../src/k8s/index.js';
import { dnsName } from '../../src/k8s/names.js';
import { startingDeadline } from '../../src/k8s/render.js';

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden/two-tenants.yaml');

let tmp: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cerberus-k8s-'));
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const yaml = (...lines: string[]) => lines.join('\n') + '\n';

async function write(rel: string, text: string): Promise<string> {
  const file = path.join(tmp, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

// every value a secret could have, each distinctive: none may reach the output
const SECRETS = {
  S3_KEY_ID: 'AKIA-k8s-test-4411',
  S3_SECRET: 's3-secret-value-9c1e77',
  GITHUB_TOKEN: 'ghp_k8stestTOKEN0042',
  ACME_FTP_PASSWORD: 'acme-ftp-pw-5b2d',
  GLOBEX_KEY_ID: 'globex-key-id-81aa',
};
const FILE_SECRETS = { 'secrets/globex_s3': 'globex-s3-file-secret-3f09' };

const TWO_TENANTS = yaml(
  'targets:',
  '  - { name: cold, type: s3, endpoint: https://s3.example.com, bucket: backups, accessKeyId: "${S3_KEY_ID}", secretAccessKey: "${S3_SECRET}" }',
  'encryption: { kind: openpgp, recipients: [keys/ops.pub.asc] }',
  'timezone: Europe/Berlin',
  'retention: { daily: 7 }',
  'report: { github: { repo: ops/backups, token: "${GITHUB_TOKEN}" } }',
  'tenants:',
  '  - name: acme',
  '    storageFolder: customers/acme',
  '    resources:',
  '      - { name: website, schedule: "0 2 * * *", source: { type: sftp, host: sftp.acme.example, username: backup, privateKey: "${file:/run/secrets/acme_key}", path: /var/www } }',
  '      - { name: files, schedule: "*/30 * * * *", source: { type: ftps, host: ftp.acme.example, username: backup, password: "${ACME_FTP_PASSWORD}", path: / } }',
  '  - name: Globex_Corp',
  '    resources:',
  '      - { name: docs.bucket, schedule: "@daily", source: { type: s3, bucket: globex-docs, endpoint: https://s3.globex.example, accessKeyId: "${GLOBEX_KEY_ID}", secretAccessKey: "${file:secrets/globex_s3}" } }',
  '      - { name: db, schedule: "15 3 * * 1-5", source: { type: sftp, host: db.globex.example, username: dump, password: "${cmd:vault kv get -field=pw secret/globex}", path: /dumps } }',
);

async function twoTenants(text = TWO_TENANTS): Promise<string> {
  await write('ops/.env', Object.entries(SECRETS).map(([k, v]) => `${k}=${v}`).join('\n') + '\n');
  for (const [rel, v] of Object.entries(FILE_SECRETS)) await write(`ops/${rel}`, v + '\n');
  await write('ops/keys/ops.pub.asc', '-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nxjMEZk8stest\n-----END PGP PUBLIC KEY BLOCK-----\n');
  return write('ops/tenants.yaml', text);
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await main(args, { cwd: tmp, env: { HOME: tmp, ...env }, stdout, stderr });
  return { code, stdout: out, stderr: err };
}

const OPTS = { image: 'registry.example.com/cerberus:0.1.0', namespace: 'backup', healthSchedule: '@hourly', stateSize: '1Gi' };

function validate(obj: { kind?: string }): void {
  switch (obj.kind) {
    case 'CronJob':
      new CronJob(obj as ConstructorParameters<typeof CronJob>[0]).validate();
      break;
    case 'PersistentVolumeClaim':
      new PersistentVolumeClaim(obj as ConstructorParameters<typeof PersistentVolumeClaim>[0]).validate();
      break;
    case 'ConfigMap':
      new ConfigMap(obj as ConstructorParameters<typeof ConfigMap>[0]).validate();
      break;
    default:
      throw new Error(`no validation for kind ${String(obj.kind)}`);
  }
}

interface Pod {
  securityContext: { runAsUser: number; runAsNonRoot: boolean };
  restartPolicy: string;
  containers: Array<{
    args: string[];
    env: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef: { name: string; key: string } } }>;
    volumeMounts: Array<{ name: string; mountPath: string; subPath?: string }>;
    securityContext: { readOnlyRootFilesystem: boolean };
    resources: { requests: Record<string, string>; limits: Record<string, string> };
  }>;
  volumes: Array<{ name: string; projected?: { sources: Array<{ configMap?: { items: Array<{ key: string; path: string }> }; secret?: { name: string; items: Array<{ key: string; path: string }> } }> }; secret?: { secretName: string }; persistentVolumeClaim?: { claimName: string } }>;
}
interface CronJobDoc {
  kind: 'CronJob';
  metadata: { name: string; labels: Record<string, string> };
  spec: { schedule: string; timeZone: string; concurrencyPolicy: string; startingDeadlineSeconds: number; jobTemplate: { spec: { backoffLimit: number; template: { spec: Pod } } } };
}

const docs = (text: string) => parseAllDocuments(text).map((d) => d.toJS() as { kind: string; metadata: { name: string } });

describe('k8s render', () => {
  it('renders valid objects for every tenant × resource, a health CronJob and the ConfigMap, and no secret value', async () => {
    const file = await twoTenants();
    const run = await cli(['k8s', 'render', '--tenants', file, '--namespace', 'backup', '--image', OPTS.image], { ...SECRETS, CERBERUS_STATE_DIR: path.join(tmp, 'state') });
    expect(run.stderr).not.toContain('error');
    expect(run.code).toBe(0);

    for (const secret of [...Object.values(SECRETS), ...Object.values(FILE_SECRETS)]) {
      expect(run.stdout).not.toContain(secret);
      expect(run.stderr).not.toContain(secret);
    }

    const objects = docs(run.stdout);
    for (const o of objects) validate(o);
    expect(objects.map((o) => `${o.kind} ${o.metadata.name}`)).toEqual([
      'ConfigMap cerberus-tenants',
      'CronJob cerberus-health',
      'PersistentVolumeClaim cerberus-acme-website-state',
      'CronJob cerberus-acme-website',
      'PersistentVolumeClaim cerberus-acme-files-state',
      'CronJob cerberus-acme-files',
      'PersistentVolumeClaim cerberus-globex-corp-docs-bucket-state',
      'CronJob cerberus-globex-corp-docs-bucket',
      'PersistentVolumeClaim cerberus-globex-corp-db-state',
      'CronJob cerberus-globex-corp-db',
    ]);
    const crons = objects.filter((o): o is CronJobDoc & typeof o => o.kind === 'CronJob') as unknown as CronJobDoc[];
    for (const c of crons) {
      expect(c.spec.concurrencyPolicy).toBe('Forbid');
      expect(c.spec.timeZone).toBe('Europe/Berlin');
      expect(c.spec.jobTemplate.spec.backoffLimit).toBe(0);
      const pod = c.spec.jobTemplate.spec.template.spec;
      expect(pod.restartPolicy).toBe('Never');
      expect(pod.securityContext).toMatchObject({ runAsUser: 1000, runAsNonRoot: true });
      expect(pod.containers[0]!.securityContext.readOnlyRootFilesystem).toBe(true);
      expect(pod.containers[0]!.resources).toEqual({ requests: { cpu: '250m', memory: '256Mi' }, limits: { cpu: '2', memory: '256Mi' } });
      expect(c.metadata.name.length).toBeLessThanOrEqual(52);
    }

    const website = crons.find((c) => c.metadata.name === 'cerberus-acme-website')!;
    expect(website.metadata.labels).toMatchObject({ 'app.kubernetes.io/name': 'cerberus', 'app.kubernetes.io/instance': 'acme-website', 'cerberus/tenant': 'acme', 'cerberus/resource': 'website' });
    expect(website.spec.startingDeadlineSeconds).toBe(3600);
    const pod = website.spec.jobTemplate.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.args).toEqual(['backup', '--tenants', '/config/tenants.yaml', '--job', 'acme/website', '--init']);
    // the shared settings' variables and its own, each from the tenant's Secret by name
    expect(c.env).toEqual([
      { name: 'CERBERUS_STATE_DIR', value: '/state' },
      ...['S3_KEY_ID', 'S3_SECRET', 'GITHUB_TOKEN'].map((v) => ({ name: v, valueFrom: { secretKeyRef: { name: 'cerberus-acme', key: v } } })),
    ]);
    // ${file:/run/secrets/acme_key}: that one file, at its path
    expect(c.volumeMounts).toContainEqual({ name: 'secret-acme', mountPath: '/run/secrets/acme_key', subPath: 'acme_key', readOnly: true });
    expect(pod.volumes.find((v) => v.name === 'secret-acme')?.secret?.secretName).toBe('cerberus-acme');
    expect(c.volumeMounts).toContainEqual({ name: 'state', mountPath: '/state' });
    expect(pod.volumes).toContainEqual({ name: 'state', persistentVolumeClaim: { claimName: 'cerberus-acme-website-state' } });
    // the public key beside the tenants file, in the ConfigMap at its relative path
    const config = pod.volumes.find((v) => v.name === 'config')!.projected!.sources;
    expect(config[0]!.configMap!.items).toEqual([
      { key: 'tenants.yaml', path: 'tenants.yaml' },
      { key: 'keys__ops.pub.asc', path: 'keys/ops.pub.asc' },
    ]);

    const files = crons.find((x) => x.metadata.name === 'cerberus-acme-files')!;
    expect(files.spec.startingDeadlineSeconds).toBe(1800);

    // ${file:secrets/globex_s3}: relative to the tenants file, so below /config
    const docsBucket = crons.find((x) => x.metadata.name === 'cerberus-globex-corp-docs-bucket')!.spec.jobTemplate.spec.template.spec;
    expect(docsBucket.volumes.find((v) => v.name === 'config')!.projected!.sources[1]).toEqual({
      secret: { name: 'cerberus-globex-corp', items: [{ key: 'globex_s3', path: 'secrets/globex_s3', mode: 0o440 }] },
    });

    // health: every tenant's variables, no state volume
    const health = crons.find((x) => x.metadata.name === 'cerberus-health')!.spec.jobTemplate.spec.template.spec;
    expect(health.containers[0]!.args).toEqual(['health', '--tenants', '/config/tenants.yaml']);
    expect(health.containers[0]!.env.map((e) => e.name)).toEqual(['CERBERUS_STATE_DIR', 'S3_KEY_ID', 'S3_SECRET', 'GITHUB_TOKEN', 'ACME_FTP_PASSWORD', 'GLOBEX_KEY_ID']);
    expect(health.volumes.some((v) => v.persistentVolumeClaim)).toBe(false);

    // the ConfigMap holds the file as written: templates, no values
    const configMap = objects[0] as unknown as { data: Record<string, string> };
    expect(configMap.data['tenants.yaml']).toBe(TWO_TENANTS);
    expect(Object.keys(configMap.data)).toEqual(['tenants.yaml', 'keys__ops.pub.asc']);

    // ${cmd:…}: rendered, with a warning that names it
    expect(run.stderr).toContain('${cmd:vault kv get -field=pw secret/globex} (Globex_Corp/db): no Secret can provide it');
  });

  it('matches the golden file (UPDATE_GOLDEN=1 rewrites it)', async () => {
    const run = await cli(['k8s', 'render', '--tenants', await twoTenants(), '--namespace', 'backup', '--image', OPTS.image]);
    expect(run.code).toBe(0);
    if (process.env.UPDATE_GOLDEN === '1') {
      await mkdir(path.dirname(GOLDEN), { recursive: true });
      await writeFile(GOLDEN, run.stdout);
    }
    expect(run.stdout).toBe(await readFile(GOLDEN, 'utf8'));
    // the tenant's header names the Secret's keys, never values
    expect(run.stdout).toContain('# e.g. kubectl create secret generic cerberus-acme --from-literal=S3_KEY_ID=… --from-literal=S3_SECRET=… --from-literal=GITHUB_TOKEN=… --from-literal=ACME_FTP_PASSWORD=… --from-file=acme_key=…');
  });

  it('writes a file per tenant and one for the shared objects with --out', async () => {
    const run = await cli(['k8s', 'render', '--tenants', await twoTenants(), '--image', OPTS.image, '--out', 'k8s']);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe('');
    expect((await readdir(path.join(tmp, 'k8s'))).sort()).toEqual(['shared.yaml', 'tenant-acme.yaml', 'tenant-globex-corp.yaml']);
    const acme = docs(await readFile(path.join(tmp, 'k8s/tenant-acme.yaml'), 'utf8'));
    expect(acme.map((o) => o.metadata.name)).toEqual(['cerberus-acme-website-state', 'cerberus-acme-website', 'cerberus-acme-files-state', 'cerberus-acme-files']);
    expect(acme.every((o) => !('namespace' in o.metadata))).toBe(true);
    const shared = docs(await readFile(path.join(tmp, 'k8s/shared.yaml'), 'utf8'));
    expect(shared.map((o) => o.kind)).toEqual(['ConfigMap', 'CronJob']);
  });

  it('refuses a schedule a CronJob cannot run, naming the resource', async () => {
    const file = await twoTenants(TWO_TENANTS.replace('"0 2 * * *"', '"0 0 2 * * *"'));
    const run = await cli(['k8s', 'render', '--tenants', file]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('acme/website: the schedule "0 0 2 * * *" has a seconds field');
    expect(run.stdout).toBe('');
  });

  it('refuses names that would collide, and secrets written in the file itself', async () => {
    const clash = TWO_TENANTS.replace('name: docs.bucket', 'name: docs_bucket').replace('name: db,', 'name: docs-bucket,');
    const run = await cli(['k8s', 'render', '--tenants', await twoTenants(clash)]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('"Globex_Corp/docs_bucket" and "Globex_Corp/docs-bucket" would both be the CronJob "cerberus-globex-corp-docs-bucket"');

    const literal = TWO_TENANTS.replace('"${ACME_FTP_PASSWORD}"', 'hunter2-literal');
    const lit = await cli(['k8s', 'render', '--tenants', await twoTenants(literal)]);
    expect(lit.code).toBe(2);
    expect(lit.stderr).toContain('acme/files: source.password is written in the tenants file itself');
    expect(lit.stderr).not.toContain('hunter2-literal');
  });

  it('shortens long names with a hash, within 52 characters for a CronJob', async () => {
    const long = TWO_TENANTS.replace('name: acme\n', 'name: acme-international-holdings-europe\n').replace('name: website,', 'name: public-website-production,');
    const rendered = await renderTenantsFile(await twoTenants(long), OPTS);
    const names = rendered.manifests.filter((m) => m.object.kind === 'CronJob').map((m) => m.object.metadata.name);
    const cron = names.find((n) => n.startsWith('cerberus-acme-international'))!;
    expect(cron).toMatch(/^cerberus-acme-international-holdings-europe-p-[0-9a-f]{6}$/);
    expect(cron.length).toBeLessThanOrEqual(52);
    for (const m of rendered.manifests) validate(m.object);
  });

  it('--help teaches, with examples and exit codes', async () => {
    const run = await cli(['k8s', 'render', '--help']);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('cerberus-<tenant>');
    expect(run.stdout).toContain('Examples:');
    expect(run.stdout).toContain('Exit codes:');
  });
});

describe('names and schedules', () => {
  it('maps names to DNS labels', () => {
    expect(dnsName('Globex_Corp')).toBe('globex-corp');
    expect(dnsName('docs.bucket')).toBe('docs-bucket');
    expect(dnsName('_x_')).toBe('x');
    expect(() => dnsName('__')).toThrow(CerberusError);
  });

  it('takes the schedules a CronJob takes, and says why not the others', () => {
    expect(kubernetesSchedule('@Daily', 'a/b')).toBe('@daily');
    expect(kubernetesSchedule('0 2 * JAN-MAR mon-fri', 'a/b')).toBe('0 2 * JAN-MAR mon-fri');
    expect(kubernetesSchedule('*/15 9-17 ? * 1-5', 'a/b')).toBe('*/15 9-17 ? * 1-5');
    expect(() => kubernetesSchedule('0 2 L * *', 'a/b')).toThrow(/a\/b: the schedule "0 2 L \* \*" uses "L"/);
    expect(() => kubernetesSchedule('0 2 * * 5#2', 'a/b')).toThrow(/uses "#"/);
    expect(() => kubernetesSchedule('0 2 * * 7', 'a/b')).toThrow(/7 for Sunday/);
    expect(() => kubernetesSchedule('0 0 2 * * * 2030', 'a/b')).toThrow(/has 7 fields/);
  });

  it('starts a missed run up to an hour late, or up to the next run when that comes sooner', () => {
    expect(startingDeadline('@daily', 'Europe/Berlin')).toBe(3600);
    expect(startingDeadline('*/10 * * * *', 'UTC')).toBe(600);
    expect(startingDeadline('0,5 * * * *', 'UTC')).toBe(300);
  });
});
