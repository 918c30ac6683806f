import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Config, type JobConfig, type OpenpgpEncryption, loadConfig, selectJob } from '../../src/config/index.js';
import { CerberusError } from '../../src/errors.js';

function pgp(job: JobConfig): OpenpgpEncryption {
  if (job.encryption.kind !== 'openpgp') throw new Error('expected an openpgp job');
  return job.encryption;
}

let tmp: string;
let home: string;

beforeEach(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'cerberus-config-'));
  home = path.join(tmp, 'home');
  await mkdir(home);
});

afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function write(rel: string, text: string): Promise<string> {
  const file = path.join(tmp, rel);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, text);
  return file;
}

/** Lines joined with \n, so tests can count lines the way the file does. */
const yaml = (...lines: string[]) => lines.join('\n') + '\n';

const MINIMAL = yaml(
  'jobs:',
  '  documents:',
  '    source:',
  '      paths: [/data/documents]',
  '    encryption: { kind: openpgp, recipients: [/keys/cerberus.pub.asc] }',
  '    targets:',
  '      - { name: usb, type: local, path: /mnt/usb/documents }',
);

async function load(text: string, env: NodeJS.ProcessEnv = {}): Promise<Config> {
  const file = await write('conf/config.yaml', text);
  return loadConfig(file, { HOME: home, ...env });
}

async function loadJob(text: string, env: NodeJS.ProcessEnv = {}): Promise<JobConfig> {
  const config = await load(text, env);
  return selectJob(config, undefined);
}

async function loadError(text: string, env: NodeJS.ProcessEnv = {}): Promise<CerberusError> {
  try {
    await load(text, env);
  } catch (err) {
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('CONFIG');
    return err as CerberusError;
  }
  throw new Error('expected loadConfig to fail');
}

/** message plus hint, as the CLI prints it */
const full = (err: CerberusError) => (err.hint ? `${err.message} (${err.hint})` : err.message);

describe('loadConfig: defaults and values', () => {
  it('fills in defaults', async () => {
    const config = await load(MINIMAL);
    expect(config.file).toBe(path.join(tmp, 'conf/config.yaml'));
    expect(config.dir).toBe(path.join(tmp, 'conf'));
    expect([...config.jobs.keys()]).toEqual(['documents']);
    const job = config.jobs.get('documents');
    expect(job).toEqual({
      name: 'documents',
      source: { paths: ['/data/documents'], exclude: [], databases: [] },
      encryption: { kind: 'openpgp', recipients: ['/keys/cerberus.pub.asc'], compression: 'none' },
      targets: [{ name: 'usb', type: 'local', path: '/mnt/usb/documents', retries: 5, timeoutMs: 60_000, concurrency: 4, bwlimit: undefined }],
      retention: { daily: 7, weekly: 5, monthly: 12, quarterly: 8, keepWithinMs: 2 * 86_400_000 },
      guards: { maxShrink: 0.3, maxChanged: 0.5, minFiles: 1 },
      hooks: { before: [], afterSnapshot: [], after: [], onError: [] },
      timezone: Intl.DateTimeFormat().resolvedOptions().timeZone,
      volumeSize: 512 * 2 ** 20,
      report: {},
    });
  });

  it('treats an empty optional section like a missing one', async () => {
    const job = await loadJob(MINIMAL + yaml('    retention:', '    guards:', '    timezone:'));
    expect(job.retention.daily).toBe(7);
    expect(job.guards.maxShrink).toBe(0.3);
    expect(job.timezone).toBe(Intl.DateTimeFormat().resolvedOptions().timeZone);
  });

  it('reads every key', async () => {
    const job = await loadJob(
      yaml(
        'jobs:',
        '  documents:',
        '    source:',
        '      paths: [/data/documents, /data/photos]',
        '      exclude: ["**/.DS_Store", "**/~$*"]',
        '    encryption: { kind: openpgp, passphrase: correct horse, compression: zlib }',
        '    targets:',
        '      - { name: usb, type: local, path: /mnt/usb }',
        '      - { name: nas.2, type: local, path: /mnt/nas }',
        '    retention: { daily: 0, weekly: 1, monthly: 2, quarterly: 1, keepWithin: 1d12h }',
        '    guards: { maxShrink: 10%, maxChanged: 0.75, minFiles: 100 }',
        '    timezone: Europe/Paris',
        '    volumeSize: 4KiB',
      ),
    );
    expect(job.source.exclude).toEqual(['**/.DS_Store', '**/~$*']);
    expect(job.encryption).toEqual({ kind: 'openpgp', recipients: [], passphrase: 'correct horse', compression: 'zlib' });
    expect(job.targets.map((t) => t.name)).toEqual(['usb', 'nas.2']);
    expect(job.retention).toEqual({ daily: 0, weekly: 1, monthly: 2, quarterly: 1, keepWithinMs: 36 * 3_600_000 });
    expect(job.guards).toEqual({ maxShrink: 0.1, maxChanged: 0.75, minFiles: 100 });
    expect(job.timezone).toBe('Europe/Paris');
    expect(job.volumeSize).toBe(4096);
  });

  it('keeps jobs in file order and selects by name', async () => {
    const two = MINIMAL + MINIMAL.replace('jobs:\n', '').replace('documents:', 'photos:');
    const config = await load(two);
    expect([...config.jobs.keys()]).toEqual(['documents', 'photos']);
    expect(selectJob(config, 'photos').name).toBe('photos');
  });
});

describe('loadConfig: paths', () => {
  it('resolves relative paths against the config folder, expands ~/ and normalizes', async () => {
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), 'cerberus-cwd-'));
    const before = process.cwd();
    process.chdir(elsewhere); // relative paths must not depend on the working directory
    try {
      const job = await loadJob(
        yaml(
          'jobs:',
          '  documents:',
          '    source:',
          '      paths: [docs, ~/notes, ./a/../photos/, /abs/music/]',
          '    encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc, ~/.keys/b.asc] }',
          '    targets:',
          '      - { name: usb, type: local, path: ../backup }',
          '      - { name: home, type: local, path: "~" }',
        ),
      );
      const dir = path.join(tmp, 'conf');
      expect(job.source.paths).toEqual([path.join(dir, 'docs'), path.join(home, 'notes'), path.join(dir, 'photos'), '/abs/music']);
      expect(pgp(job).recipients).toEqual([path.join(dir, 'keys/cerberus.pub.asc'), path.join(home, '.keys/b.asc')]);
      expect(job.targets.map((t) => (t.type === 'local' ? t.path : undefined))).toEqual([path.join(tmp, 'backup'), home]);
    } finally {
      process.chdir(before);
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it('refuses ~user paths', async () => {
    const err = await loadError(MINIMAL.replace('/data/documents', '~bob/docs'));
    expect(err.message).toMatch(/config\.yaml:4: jobs\.documents\.source\.paths\[0\]: .*only ~\//);
  });

  it('refuses two sources with the same basename, naming both', async () => {
    const err = await loadError(MINIMAL.replace('[/data/documents]', '[/data/documents, /other/Documents]'));
    expect(err.message).toContain('config.yaml:4: jobs.documents.source.paths[1]');
    expect(err.message).toContain('"/other/Documents"');
    expect(err.message).toContain('"/data/documents"');
  });

  it('refuses the root folder as a source', async () => {
    const err = await loadError(MINIMAL.replace('[/data/documents]', '[/]'));
    expect(err.message).toContain('jobs.documents.source.paths[0]');
  });
});

describe('loadConfig: ${VAR} interpolation', () => {
  const withPass = MINIMAL.replace('recipients: [/keys/cerberus.pub.asc]', 'passphrase: ${BACKUP_PASS}');

  it('interpolates from the environment', async () => {
    const job = await loadJob(withPass.replace('/data/documents', '"${DATA}/docs"'), { BACKUP_PASS: 's3cret', DATA: '/srv' });
    expect(job.encryption).toEqual({ kind: 'openpgp', recipients: [], passphrase: 's3cret', compression: 'none' });
    expect(job.source.paths).toEqual(['/srv/docs']);
  });

  it('names the missing variable, key path and line', async () => {
    const err = await loadError(withPass);
    expect(full(err)).toBe(
      `${path.join(tmp, 'conf/config.yaml')}:5: jobs.documents.encryption.passphrase uses \${BACKUP_PASS}, which is not set (export it or put it in .env)`,
    );
  });

  it('allows unquoted references inside flow collections', async () => {
    const job = await loadJob(withPass.replace('[/data/documents]', () => '[${DATA}/docs, /x/$${LITERAL}]'), { BACKUP_PASS: 'p', DATA: '/srv' });
    expect(job.source.paths).toEqual(['/srv/docs', '/x/${LITERAL}']);
  });

  it('escapes $${ to a literal ${ and leaves other $ alone', async () => {
    const job = await loadJob(withPass.replace('${BACKUP_PASS}', () => '"$${NOT_A_VAR} costs $5"'));
    expect(pgp(job).passphrase).toBe('${NOT_A_VAR} costs $5');
  });

  it('rejects a malformed reference', async () => {
    const err = await loadError(withPass.replace('${BACKUP_PASS}', '"${BACKUP PASS}"'));
    expect(err.message).toContain('config.yaml:5: jobs.documents.encryption.passphrase');
    const unterminated = await loadError(withPass.replace('${BACKUP_PASS}', '"${BACKUP_PASS"'));
    expect(unterminated.message).toContain('without a closing');
  });

  it('cannot inject YAML structure', async () => {
    const job = await loadJob(withPass, { BACKUP_PASS: 'x }\n    volumeSize: 4KiB\n#' });
    expect(pgp(job).passphrase).toBe('x }\n    volumeSize: 4KiB\n#');
    expect(job.volumeSize).toBe(512 * 2 ** 20);
  });

  it('accepts counts that come from variables', async () => {
    const job = await loadJob(MINIMAL + yaml('    retention: { daily: "${DAILY}" }'), { DAILY: '3' });
    expect(job.retention.daily).toBe(3);
  });

  it('never prints the value of a variable', async () => {
    const err = await loadError(MINIMAL + yaml('    volumeSize: ${SIZE}'), { SIZE: 'hunter2' });
    expect(err.message).toContain('config.yaml:8: jobs.documents.volumeSize');
    expect(err.message).toContain('${SIZE}');
    expect(full(err)).not.toContain('hunter2');

    const empty = await loadError(withPass, { BACKUP_PASS: '' });
    expect(empty.message).toContain('jobs.documents.encryption.passphrase: must not be empty');
  });
});

describe('loadConfig: .env', () => {
  const withVars = MINIMAL.replace('recipients: [/keys/cerberus.pub.asc]', 'passphrase: ${PASS}').replace('/data/documents', '"/data/${WHICH}"');

  it('loads .env from the config folder, then the working directory; the environment wins', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'cerberus-cwd-'));
    const before = process.cwd();
    const processEnvBefore = { ...process.env };
    await write('conf/.env', 'PASS=from-config-dir\n# a comment\nWHICH="conf"\n');
    await writeFile(path.join(cwd, '.env'), 'PASS=from-cwd\nWHICH=cwd\nONLY_CWD=yes\n');
    process.chdir(cwd);
    try {
      let job = await loadJob(withVars);
      expect(pgp(job).passphrase).toBe('from-config-dir');
      expect(job.source.paths).toEqual(['/data/conf']);

      job = await loadJob(withVars, { PASS: 'from-env' });
      expect(pgp(job).passphrase).toBe('from-env');

      job = await loadJob(withVars.replace('${WHICH}', '${ONLY_CWD}'));
      expect(job.source.paths).toEqual(['/data/yes']);
      expect(process.env).toEqual(processEnvBefore);
    } finally {
      process.chdir(before);
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('ignores a .env folder (a Python virtualenv)', async () => {
    await mkdir(path.join(tmp, 'conf/.env'), { recursive: true });
    const job = await loadJob(withVars, { PASS: 'p', WHICH: 'w' });
    expect(pgp(job).passphrase).toBe('p');
  });
});

describe('loadConfig: validation errors', () => {
  it('reports an unknown key with its line and the nearest known key', async () => {
    const err = await loadError(MINIMAL + yaml('    retention:', '      dayly: 7'));
    expect(err.message).toBe(`${path.join(tmp, 'conf/config.yaml')}:9: jobs.documents.retention.dayly: unknown key (did you mean "daily"?)`);
  });

  it('reports unknown keys at every level', async () => {
    expect((await loadError(MINIMAL + yaml('    volume_size: 1MiB'))).message).toMatch(/:8: jobs\.documents\.volume_size: unknown key \(did you mean "volumeSize"\?\)$/);
    expect((await loadError(MINIMAL + yaml('job: {}'))).message).toMatch(/:8: job: unknown key \(did you mean "jobs"\?\)$/);
    expect((await loadError(MINIMAL.replace('type: local,', 'type: local, pth: x,'))).message).toContain(
      ':7: jobs.documents.targets[0].pth: unknown key (did you mean "path"?)',
    );
    expect((await loadError(MINIMAL.replace('kind: openpgp,', 'kind: openpgp, recipient: [],'))).message).toContain(
      ':5: jobs.documents.encryption.recipient: unknown key (did you mean "recipients"?)',
    );
    const far = await loadError(MINIMAL + yaml('    zzzzzzzz: 1'));
    expect(far.message).toContain('unknown key (known keys: source, encryption,');
  });

  it('reports wrong types, one line per problem, in file order', async () => {
    const err = await loadError(
      yaml(
        'jobs:',
        '  documents:',
        '    source:',
        '      paths: /data/documents',
        '    encryption: { kind: openpgp, passphrase: 1234 }',
        '    targets:',
        '      - { name: usb, type: local, path: /mnt/usb }',
        '    retention: { daily: seven, weekly: 1.5, quarterly: 0 }',
        '    guards: { maxShrink: 130% }',
        '    timezone: Mars/Olympus',
        '    volumeSize: 1KiB',
      ),
    );
    const lines = err.message.split('\n').map((l) => l.replace(/^.*config\.yaml/, ''));
    expect(lines).toEqual([
      ':4: jobs.documents.source.paths: expected a list, got text',
      ':5: jobs.documents.encryption.passphrase: expected text, got a number (put it in quotes)',
      ':8: jobs.documents.retention.daily: expected a number, got text',
      ':8: jobs.documents.retention.weekly: must be a whole number',
      ':8: jobs.documents.retention.quarterly: must be at least 1',
      expect.stringMatching(/^:9: jobs\.documents\.guards\.maxShrink: invalid percentage "130%"/),
      expect.stringMatching(/^:10: jobs\.documents\.timezone: unknown time zone/),
      ':11: jobs.documents.volumeSize: must be at least 4096 bytes (4KiB)',
    ]);
  });

  it('reports missing required keys at their parent', async () => {
    const err = await loadError(yaml('jobs:', '  documents:', '    source: { paths: [/a] }', '    encryption: { kind: openpgp, recipients: [/k] }'));
    expect(err.message).toMatch(/:2: jobs\.documents\.targets: required$/);
  });

  it('checks encryption has exactly one of recipients and passphrase', async () => {
    const both = await loadError(MINIMAL.replace('recipients: [/keys/cerberus.pub.asc]', 'recipients: [/k], passphrase: p'));
    expect(both.message).toMatch(/:5: jobs\.documents\.encryption\.passphrase: give either recipients or a passphrase, not both$/);
    const neither = await loadError(MINIMAL.replace('recipients: [/keys/cerberus.pub.asc]', 'compression: zlib'));
    expect(neither.message).toMatch(/:5: jobs\.documents\.encryption: needs recipients/);
    const empty = await loadError(MINIMAL.replace('[/keys/cerberus.pub.asc]', '[]'));
    expect(empty.message).toMatch(/jobs\.documents\.encryption\.recipients: must list at least one item$/);
    const badCompression = await loadError(MINIMAL.replace('kind: openpgp,', 'kind: openpgp, compression: gzip,'));
    expect(badCompression.message).toMatch(/compression: must be one of: none, zlib$/);
  });

  it('refuses duplicate target names', async () => {
    const err = await loadError(MINIMAL + yaml('      - { name: usb, type: local, path: /mnt/other }'));
    expect(err.message).toMatch(/:8: jobs\.documents\.targets\[1\]\.name: duplicate target name "usb" \(also targets\[0\]\)$/);
  });

  it('refuses unknown target types and bad names', async () => {
    expect((await loadError(MINIMAL.replace('type: local', 'type: ftp'))).message).toMatch(/:7: jobs\.documents\.targets\[0\]\.type: must be one of: local, webdav, s3$/);
    expect((await loadError(MINIMAL.replace('type: local, ', ''))).message).toMatch(/targets\[0\]\.type: required \(one of: local, webdav, s3\)$/);
    expect((await loadError(MINIMAL.replace('name: usb', 'name: my usb'))).message).toMatch(/targets\[0\]\.name: must use only letters/);
    expect((await loadError(MINIMAL.replace('documents:', 'my documents:'))).message).toMatch(/:2: jobs\.my documents: job names must use only/);
  });

  it('reads webdav targets, with presets and transport settings', async () => {
    const job = await loadJob(
      MINIMAL.replace(
        '      - { name: usb, type: local, path: /mnt/usb/documents }',
        yaml(
          '      - { name: pcloud, type: webdav, preset: pcloud-eu, username: me, password: "p@ss: word", path: /Backups/documents/, verify: readback, bwlimit: 2MiB/s, timeout: 5m, retries: 3, concurrency: 2 }',
          '      - { name: nas, type: webdav, url: "http://127.0.0.1:8080/dav/", path: x }',
        ).trimEnd(),
      ),
    );
    expect(job.targets).toEqual([
      {
        name: 'pcloud', type: 'webdav', url: 'https://ewebdav.pcloud.com', username: 'me', password: 'p@ss: word', path: 'Backups/documents',
        verify: 'readback', retries: 3, timeoutMs: 300_000, concurrency: 2, bwlimit: 2 * 2 ** 20,
      },
      {
        name: 'nas', type: 'webdav', url: 'http://127.0.0.1:8080/dav', username: undefined, password: undefined, path: 'x',
        verify: 'size', retries: 5, timeoutMs: 60_000, concurrency: 4, bwlimit: undefined,
      },
    ]);
  });

  it('reads s3 targets, with the safe checksum default for custom endpoints', async () => {
    const job = await loadJob(
      MINIMAL.replace(
        '      - { name: usb, type: local, path: /mnt/usb/documents }',
        yaml(
          '      - { name: minio, type: s3, endpoint: "http://127.0.0.1:9000", bucket: backups, prefix: /documents/, accessKeyId: k, secretAccessKey: s }',
          '      - { name: aws, type: s3, region: eu-central-1, bucket: my-backups }',
        ).trimEnd(),
      ),
    );
    const [minio, aws] = job.targets;
    expect(minio).toMatchObject({ endpoint: 'http://127.0.0.1:9000', forcePathStyle: true, checksums: 'when_required', prefix: 'documents', region: 'us-east-1', partSize: 16 * 2 ** 20 });
    expect(aws).toMatchObject({ endpoint: undefined, forcePathStyle: false, checksums: 'when_supported', prefix: '', region: 'eu-central-1', accessKeyId: undefined });
  });

  it('checks remote targets: url or preset, credentials in pairs, bucket names, rates', async () => {
    const web = (extra: string) => loadError(MINIMAL.replace('type: local, path: /mnt/usb/documents', `type: webdav, ${extra}`));
    expect((await web('path: /x')).message).toMatch(/targets\[0\]\.url: needs a url, or a preset \(pcloud-us, pcloud-eu\)$/);
    expect((await web('url: "ftp://x"')).message).toMatch(/targets\[0\]\.url: expected an http:\/\/ or https:\/\/ URL$/);
    expect((await web('preset: pcloud, username: a, password: b')).message).toMatch(/preset: must be one of: pcloud-us, pcloud-eu$/);
    expect((await web('preset: pcloud-us, username: a')).message).toMatch(/targets\[0\]\.password: give both username and password, or neither$/);
    expect((await web('preset: pcloud-us, bwlimit: fast')).message).toMatch(/bwlimit: invalid size "fast"/);
    expect((await web('preset: pcloud-us, verify: hash')).message).toMatch(/verify: must be one of: size, readback$/);
    const s3 = (extra: string) => loadError(MINIMAL.replace('type: local, path: /mnt/usb/documents', `type: s3, ${extra}`));
    expect((await s3('bucket: My_Bucket')).message).toMatch(/bucket: must be a valid S3 bucket name/);
    expect((await s3('bucket: ok-bucket, accessKeyId: k')).message).toMatch(/secretAccessKey: give both accessKeyId and secretAccessKey, or neither/);
    expect((await s3('bucket: ok-bucket, partSize: 1MiB')).message).toMatch(/partSize: must be at least 5MiB/);
    expect((await s3("bucket: ok-bucket, path: /x")).message).toMatch(/targets\[0\]\.path: unknown key/);
  });

  it('reports YAML syntax errors with a line', async () => {
    const err = await loadError(yaml('jobs:', '  documents:', '    source: { paths: [/a }', '    x: 1'));
    expect(err.message).toMatch(/config\.yaml:\d+: YAML syntax: /);
    const dup = await loadError(MINIMAL + yaml('    targets: []'));
    expect(dup.message).toMatch(/config\.yaml:8: YAML syntax: Map keys must be unique/);
  });

  it('reports an empty file and a file without jobs', async () => {
    expect((await loadError('# nothing yet\n')).message).toMatch(/config\.yaml:1: the file is empty/);
    expect((await loadError('jobs: {}\n')).message).toMatch(/:1: jobs: define at least one job$/);
    expect((await loadError('- a\n')).message).toMatch(/:1: \(top level\): expected a mapping/);
  });

  it('names a missing file and hints --config', async () => {
    const file = path.join(tmp, 'nope.yaml');
    const err = await loadConfig(file, { HOME: home }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(CerberusError);
    const e = err as CerberusError;
    expect(e.code).toBe('CONFIG');
    expect(e.message).toContain(file);
    expect(e.hint).toContain('--config');
  });

  it('shows the file relative to the working directory when inside it', async () => {
    const before = process.cwd();
    await write('conf/config.yaml', MINIMAL + yaml('    volumeSize: 1'));
    process.chdir(path.join(tmp, 'conf'));
    try {
      const err = await loadConfig('config.yaml', { HOME: home }).then(
        () => undefined,
        (e: unknown) => e as CerberusError,
      );
      expect(err?.message).toMatch(/^config\.yaml:8: /);
    } finally {
      process.chdir(before);
    }
  });
});

describe('selectJob', () => {
  const job = (name: string): JobConfig => ({
    name,
    source: { paths: ['/a'], exclude: [], databases: [] },
    encryption: { kind: 'openpgp', recipients: ['/k'], compression: 'none' },
    targets: [{ name: 't', type: 'local', path: '/t', retries: 0, timeoutMs: 1000, concurrency: 1, bwlimit: undefined }],
    retention: { daily: 7, weekly: 5, monthly: 12, quarterly: 8, keepWithinMs: 0 },
    guards: { maxShrink: 0.3, maxChanged: 0.5, minFiles: 1 },
    hooks: { before: [], afterSnapshot: [], after: [], onError: [] },
    timezone: 'UTC',
    volumeSize: 4096,
    report: {},
  });
  const config = (...names: string[]): Config => ({ file: '/c/config.yaml', dir: '/c', jobs: new Map(names.map((n) => [n, job(n)])) });
  const fails = (fn: () => unknown): CerberusError => {
    try {
      fn();
    } catch (err) {
      expect((err as CerberusError).code).toBe('CONFIG');
      return err as CerberusError;
    }
    throw new Error('expected a CONFIG error');
  };

  it('with no jobs', () => {
    expect(fails(() => selectJob(config(), undefined)).message).toContain('defines no jobs');
    expect(fails(() => selectJob(config(), 'a')).message).toContain('(none)');
  });

  it('with one job, the name is optional', () => {
    expect(selectJob(config('a'), undefined).name).toBe('a');
    expect(selectJob(config('a'), 'a').name).toBe('a');
    expect(fails(() => selectJob(config('a'), 'b')).message).toContain('no job named "b"');
  });

  it('with several jobs, the name is required and the error lists them', () => {
    const c = config('documents', 'photos');
    expect(selectJob(c, 'photos').name).toBe('photos');
    expect(fails(() => selectJob(c, undefined)).message).toContain('documents, photos');
    expect(fails(() => selectJob(c, 'music')).message).toContain('documents, photos');
  });
});

describe('encryption kind cryptomator', () => {
  const CRYPTOMATOR = MINIMAL.replace(
    'encryption: { kind: openpgp, recipients: [/keys/cerberus.pub.asc] }',
    'encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }',
  );

  it('takes the vault password from the environment', async () => {
    const job = await loadJob(CRYPTOMATOR, { VAULT_PASSWORD: 'pässword' });
    expect(job.encryption).toEqual({ kind: 'cryptomator', password: 'pässword' });
  });

  it('names a missing or empty password, and keys that belong to OpenPGP', async () => {
    expect((await loadError(CRYPTOMATOR)).message).toMatch(/VAULT_PASSWORD/);
    expect((await loadError(CRYPTOMATOR, { VAULT_PASSWORD: '' })).message).toMatch(/jobs\.documents\.encryption\.password: the vault password is empty/);
    const noPassword = CRYPTOMATOR.replace(', password: "${VAULT_PASSWORD}"', '');
    expect((await loadError(noPassword)).message).toMatch(/encryption\.password: needs the vault password/);
    const mixed = CRYPTOMATOR.replace('password: "${VAULT_PASSWORD}"', 'password: x, recipients: [/k.asc]');
    expect((await loadError(mixed)).message).toMatch(/encryption\.recipients: unknown key/);
  });

  it('refuses an unknown kind, saying which exist', async () => {
    const err = await loadError(CRYPTOMATOR.replace('kind: cryptomator', 'kind: veracrypt'), { VAULT_PASSWORD: 'x' });
    expect(err.message).toMatch(/encryption\.kind.*(openpgp or cryptomator|"openpgp"|cryptomator)/);
  });

  it('the examples in examples/ load', async () => {
    const env = {
      VAULT_PASSWORD: 'v', PCLOUD_USER: 'u', PCLOUD_PASSWORD: 'p', DAV_USER: 'u', DAV_PASSWORD: 'p', S3_KEY: 'k', S3_SECRET: 's', PCLOUD_PASS: 'p',
      CERBERUS_PUBLIC_KEY_FILE: '/run/secrets/cerberus.pub.asc', GITHUB_TOKEN: 't',
    };
    const dir = path.resolve(import.meta.dirname, '../../examples');
    for (const name of ['cryptomator.yaml', 'three-targets.yaml', 'quickstart.yaml', 'jenkins.yaml']) {
      const config = await loadConfig(path.join(dir, name), { HOME: home, ...env }).catch((err: unknown) => {
        throw new Error(`${name}: ${(err as Error).message}`);
      });
      expect(config.jobs.size).toBeGreaterThan(0);
    }
  });
});
