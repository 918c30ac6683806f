import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig, loadTenants, tenantReferences, type TenantsConfig } from '../../src/config/index.js';
import { CerberusError } from '../../src/errors.js';

let tmp: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cerberus-tenants-'));
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

async function load(text: string, env: NodeJS.ProcessEnv = {}): Promise<TenantsConfig> {
  return loadTenants(await write('ops/tenants.yaml', text), { HOME: tmp, ...env });
}

async function loadError(text: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const err = await load(text, env).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CerberusError);
  expect((err as CerberusError).code).toBe('CONFIG');
  const e = err as CerberusError;
  return e.hint ? `${e.message} (${e.hint})` : e.message;
}

// the contract's shape, with every kind of source
const CONTRACT = yaml(
  'targets:',
  '  - { name: cold, type: s3, endpoint: http://127.0.0.1:9000, bucket: backups, prefix: all, accessKeyId: k, secretAccessKey: "${S3_SECRET}" }',
  '  - { name: disk, type: local, path: /mnt/backup }',
  'encryption: { kind: openpgp, recipients: [keys/ops.pub.asc] }',
  'maxParallel: 4',
  'timezone: Europe/Berlin',
  'retention: { daily: 7, monthly: 6 }',
  'tenants:',
  '  - name: acme',
  '    storageFolder: customers/acme',
  '    resources:',
  '      - { name: website, schedule: "0 2 * * *", source: { type: sftp, host: sftp.acme.test, port: 2222, username: backup, privateKey: "${file:secrets/acme_key}", path: /var/www/ } }',
  '      - { name: files, schedule: "0 3 * * *", source: { type: ftps, host: ftp.acme.test, username: backup, password: "${ACME_FTP_PASSWORD}", path: / } }',
  '      - { name: local, schedule: "@hourly", source: { type: local, paths: [/srv/acme] }, retention: { daily: 14 } }',
  '  - name: globex',
  '    agent: pi-2',
  '    resources:',
  '      - { name: bucket, schedule: "*/30 * * * *", source: { type: s3, bucket: globex-docs, prefix: /shared/, endpoint: http://127.0.0.1:9001 } }',
);

describe('the tenants file', () => {
  it('makes one job per tenant × resource, each in its own folder of every target', async () => {
    await write('ops/secrets/acme_key', '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n');
    const t = await load(CONTRACT, { S3_SECRET: 's3-secret', ACME_FTP_PASSWORD: 'ftp-secret' });
    expect([...t.jobs.keys()]).toEqual(['acme/website', 'acme/files', 'acme/local', 'globex/bucket']);
    expect(t.maxParallel).toBe(4);
    const website = t.jobs.get('acme/website')!;
    expect(website.source.remote).toEqual({
      type: 'sftp', host: 'sftp.acme.test', port: 2222, username: 'backup', path: '/var/www',
      privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----',
    });
    expect(website.source.paths).toEqual([]);
    expect(website.schedule).toBe('0 2 * * *');
    expect(website.timezone).toBe('Europe/Berlin');
    expect(website.agent).toBe('cerberus');
    const [cold, disk] = website.targets;
    expect(cold).toMatchObject({ type: 's3', prefix: 'all/customers/acme/website', secretAccessKey: 's3-secret' });
    expect(disk).toMatchObject({ type: 'local', path: '/mnt/backup/customers/acme/website' });
    expect(t.jobs.get('acme/files')!.source.remote).toMatchObject({ type: 'ftps', port: 21, password: 'ftp-secret', path: '/', insecure: false });
    // a resource's retention changes what it names, the file's the rest
    expect(t.jobs.get('acme/local')!.retention).toMatchObject({ daily: 14, monthly: 6, weekly: 5 });
    expect(website.retention).toMatchObject({ daily: 7, monthly: 6 });
    const globex = t.jobs.get('globex/bucket')!;
    expect(globex.agent).toBe('pi-2');
    expect(globex.targets[1]).toMatchObject({ path: '/mnt/backup/globex/bucket' });
    expect(globex.source.remote).toEqual({ type: 's3', bucket: 'globex-docs', prefix: 'shared', region: 'us-east-1', endpoint: 'http://127.0.0.1:9001', forcePathStyle: true });
    // the encryption's key file is relative to the tenants file
    expect(website.encryption).toMatchObject({ recipients: [path.join(tmp, 'ops/keys/ops.pub.asc')] });
    expect(t.tenants).toEqual([
      { name: 'acme', storageFolder: 'customers/acme', agent: 'cerberus', resources: ['website', 'files', 'local'] },
      { name: 'globex', storageFolder: 'globex', agent: 'pi-2', resources: ['bucket'] },
    ]);
  });

  const base = (resource: string, extra: string[] = []) =>
    yaml('targets: [{ name: disk, type: local, path: /mnt/backup }]', 'encryption: { kind: openpgp, passphrase: x }', ...extra, 'tenants:', '  - name: acme', '    resources:', resource);

  it('names the line and the fix for what is wrong', async () => {
    expect(await loadError(base('      - { name: web, schedule: "0 2 * *", source: { paths: [/srv] } }'))).toMatch(
      /tenants\.yaml:6: tenants\[0\]\.resources\[0\]\.schedule: "0 2 \* \*" is not a cron expression: .*\(e\.g\. "0 2 \* \* \*", "@hourly"\)/,
    );
    expect(await loadError(base('      - { name: web, schedule: "@daily", source: { type: sftp, username: u, path: /x, privateKey: k } }'))).toContain(
      'tenants[0].resources[0].source.host: a sftp source needs host, e.g. host: files.example.com',
    );
    expect(await loadError(base('      - { name: web, schedule: "@daily", source: { type: sftp, host: h, username: u, path: /x } }'))).toContain('an sftp source needs privateKey');
    expect(await loadError(base('      - { name: web, schedule: "@daily", source: { type: ftps, host: h, username: u, password: p, bucket: b } }'))).toContain(
      'source.bucket: bucket is for s3 sources, not type ftps',
    );
    expect(await loadError(base('      - { name: web, schedule: "@daily", source: { type: ftps, host: h, username: u, password: p, paths: [/a] } }'))).toContain(
      'give it as path, not paths',
    );
    expect(await loadError(base('      - { name: web, schedule: "@daily", sorce: { paths: [/srv] } }'))).toContain('unknown key (did you mean "source"?)');
    expect(await loadError(base('      - { name: web, schedule: "@daily", source: { type: sftp, host: h, username: u, privateKey: k, hostKey: abc } }'))).toContain(
      'expected a fingerprint as ssh-keygen -lf prints it',
    );
  });

  it('refuses tenants that would share a folder, and names given twice', async () => {
    const two = (a: string, b: string) =>
      yaml(
        'targets: [{ name: disk, type: local, path: /mnt/backup }]',
        'encryption: { kind: openpgp, passphrase: x }',
        'tenants:',
        `  - { name: acme, ${a} resources: [{ name: r, schedule: "@daily", source: { paths: [/a] } }] }`,
        `  - { name: globex, ${b} resources: [{ name: r, schedule: "@daily", source: { paths: [/b] } }, { name: r, schedule: "@daily", source: { paths: [/c] } }] }`,
      );
    const msg = await loadError(two('storageFolder: shared/x,', 'storageFolder: shared,'));
    expect(msg).toContain('tenants.yaml:5: tenants[1].storageFolder: "shared" overlaps the storage folder "shared/x" of tenants[0]');
    expect(msg).toContain('duplicate resource name "r"');
    expect(await loadError(two('storageFolder: ../up,', ''))).toContain('without ".."');
  });

  it('refuses a remote source with the cryptomator kind', async () => {
    const msg = await loadError(
      yaml(
        'targets: [{ name: disk, type: local, path: /mnt/backup }]',
        'encryption: { kind: cryptomator, password: x }',
        'tenants:',
        '  - { name: acme, resources: [{ name: r, schedule: "@daily", source: { type: s3, bucket: b } }] }',
      ),
    );
    expect(msg).toContain('a s3 source is backed up with encryption kind openpgp');
  });
});

describe('secrets from files and commands', () => {
  const job = (password: string) =>
    yaml(
      'jobs:',
      '  d:',
      '    source: { paths: [/data] }',
      `    encryption: { kind: openpgp, passphrase: "${password}" }`,
      '    targets: [{ name: usb, type: local, path: /mnt/usb }]',
    );
  const passphrase = async (password: string, env: NodeJS.ProcessEnv = {}) => {
    const c = await loadConfig(await write('conf/cerberus.yaml', job(password)), { HOME: tmp, PATH: process.env.PATH, ...env });
    const e = c.jobs.get('d')!.encryption;
    return e.kind === 'openpgp' ? e.passphrase : undefined;
  };
  const failure = async (password: string) => {
    const err = await passphrase(password).then(() => undefined, (e: unknown) => e as CerberusError);
    expect(err?.code).toBe('CONFIG');
    return err!.message;
  };

  it('${file:PATH} is the file without its last newline, relative to the config', async () => {
    await write('conf/secrets/pass', 'file secret\n');
    expect(await passphrase('${file:secrets/pass}')).toBe('file secret');
    expect(await passphrase(`pre-\${file:${path.join(tmp, 'conf/secrets/pass')}}-post`)).toBe('pre-file secret-post');
  });

  it('${cmd:COMMAND} is what the command prints, run in the config folder with the environment', async () => {
    await write('conf/vault-cli', '#!/bin/sh\nprintf "%s\\n" "$1-$TOKEN"\n');
    await chmod(path.join(tmp, 'conf/vault-cli'), 0o755);
    expect(await passphrase('${cmd:./vault-cli db}', { TOKEN: 't0k' })).toBe('db-t0k');
  });

  it('a secret that cannot be had is a one-line error that never shows output or value', async () => {
    expect(await failure('${file:secrets/missing}')).toMatch(/cerberus\.yaml:4: jobs\.d\.encryption\.passphrase uses \$\{file:secrets\/missing\}, which cannot be read \(ENOENT: .*missing\)/);
    const msg = await failure('${cmd:echo half-of-the-secret; exit 3}');
    expect(msg).toContain('uses ${cmd:echo half-of-the-secret; exit 3}, which failed with exit code 3');
    expect(msg.split('half-of-the-secret').length).toBe(2); // in the reference only, never from its output
    expect(await failure('${cmd:}')).toContain('has an empty ${cmd:}');
  });

  it('a config error elsewhere never shows a secret that was read', async () => {
    await write('conf/secrets/pass', 'do-not-show');
    const text = job('${file:secrets/pass}').replace('paths: [/data]', 'paths: [/data], bogus: 1');
    const err = await loadConfig(await write('conf/cerberus.yaml', text), { HOME: tmp }).then(() => undefined, (e: unknown) => e as CerberusError);
    expect(err?.message).toContain('unknown key');
    expect(err?.message).not.toContain('do-not-show');
  });
});

describe('rendering a tenants file elsewhere', () => {
  it('lists each job\'s secrets by kind, shared ones included, and loads without resolving any', async () => {
    const file = await write('ops/tenants.yaml', CONTRACT);
    const refs = await tenantReferences(file);
    expect(refs.get('acme/website')).toEqual({ vars: ['S3_SECRET'], files: ['secrets/acme_key'], commands: [] });
    expect(refs.get('acme/files')).toEqual({ vars: ['S3_SECRET', 'ACME_FTP_PASSWORD'], files: [], commands: [] });
    expect(refs.get('globex/bucket')).toEqual({ vars: ['S3_SECRET'], files: [], commands: [] });
    // no variable set, no secret file there: the templates stay as written
    const t = await loadTenants(file, { HOME: tmp }, { unresolved: true });
    expect(t.jobs.get('acme/files')!.source.remote).toMatchObject({ password: '${ACME_FTP_PASSWORD}' });
    expect(t.jobs.get('acme/website')!.source.remote).toMatchObject({ privateKey: '${file:secrets/acme_key}' });
  });
});
