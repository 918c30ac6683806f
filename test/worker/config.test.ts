import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadWorkerConfig } from '../../src/worker/config.js';
import { tempDir } from '../helpers/cli.js';
import { errorOf } from '../helpers/errors.js';

const ENV = { DB_URL: 'postgres://cerberus_worker:s%40cret-pw@db.example:5432/app', S3_KEY: 'AKIAEXAMPLE', S3_SECRET: 'wJalrXUtnFEMI-secret', CERBERUS_STATE_DIR: '/var/lib/cerberus' };

/** The example, as a user would write it. */
const EXAMPLE = `worker:
  database: \${DB_URL}            # postgres://… or sqlite:/path/app.db
  storages:                      # keyed by the value of the Storage column
    s3: { type: s3, endpoint: https://s3.example.com, region: eu-west-1, bucket: car-erp, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET} }
  target: { name: disk, type: local, path: /mnt/backup/objects }   # any target type
  encryption: { kind: openpgp, recipients: [keys/ops.pub.asc] }   # optional
  pollInterval: 60s
  deleteAfter: 7d
  concurrency: 4
`;

async function load(yaml: string, env: NodeJS.ProcessEnv = ENV) {
  const dir = await tempDir('cerberus-worker-config-');
  const file = path.join(dir, 'worker.yaml');
  await fsp.writeFile(file, yaml);
  return { dir, file, load: () => loadWorkerConfig(file, env) };
}

describe('the worker config', () => {
  it('reads the issue\'s example with every default filled in', async () => {
    const { dir, load: read } = await load(EXAMPLE);
    const cfg = await read();
    expect(cfg.database).toEqual({ kind: 'postgres', url: ENV.DB_URL });
    expect([...cfg.storages.keys()]).toEqual(['s3']);
    expect(cfg.storages.get('s3')).toMatchObject({ type: 's3', bucket: 'car-erp', region: 'eu-west-1', endpoint: 'https://s3.example.com', forcePathStyle: true, accessKeyId: 'AKIAEXAMPLE', secretAccessKey: ENV.S3_SECRET, prefix: '' });
    // the target's transfers follow the worker's concurrency
    expect(cfg.target).toMatchObject({ name: 'disk', type: 'local', path: '/mnt/backup/objects', concurrency: 4 });
    expect(cfg.encryption).toEqual({ kind: 'openpgp', recipients: [path.join(dir, 'keys/ops.pub.asc')], compression: 'none' });
    expect(cfg).toMatchObject({ pollIntervalMs: 60_000, deleteAfterMs: 7 * 86_400_000, concurrency: 4, keepVersions: 1, stateDir: '/var/lib/cerberus/worker/disk', health: { maxBehindRows: 1000, maxBehindMs: 3_600_000 } });
  });

  it('takes sqlite:, other targets, keepVersions, stateDir and health limits', async () => {
    const { dir, load: read } = await load(`worker:
  database: sqlite:data/app.db
  storages: { s3: { type: s3, bucket: car-erp } }
  target: { name: nas, type: webdav, url: https://nas.example/dav, path: objects, concurrency: 2 }
  concurrency: 8
  keepVersions: 3
  stateDir: state
  health: { maxBehindRows: 50, maxBehind: 30m }
`);
    const cfg = await read();
    expect(cfg.database).toEqual({ kind: 'sqlite', file: path.join(dir, 'data/app.db') });
    expect(cfg.target).toMatchObject({ type: 'webdav', concurrency: 2 });
    expect(cfg).toMatchObject({ concurrency: 8, keepVersions: 3, stateDir: path.join(dir, 'state'), health: { maxBehindRows: 50, maxBehindMs: 1_800_000 }, encryption: undefined });
    expect((await (await load('worker:\n  database: sqlite:///srv/app.db\n  storages: { s3: { type: s3, bucket: abc } }\n  target: { name: d, type: local, path: x }\n')).load()).database).toEqual({ kind: 'sqlite', file: '/srv/app.db' });
  });

  it('says what is wrong on one line per problem, with the file and line, and never a secret', async () => {
    const cases: Array<[string, RegExp]> = [
      [EXAMPLE.replace('pollInterval', 'pollIntervall'), /^worker\.yaml:7: worker\.pollIntervall: unknown key \(did you mean "pollInterval"\?\)$/],
      [EXAMPLE.replace('deleteAfter: 7d', 'deleteAfter: 7 days'), /^worker\.yaml:8: worker\.deleteAfter: invalid duration "7 days" \(use a number with a unit/],
      [EXAMPLE.replace('concurrency: 4', 'concurrency: 0'), /^worker\.yaml:9: worker\.concurrency: must be at least 1$/],
      [EXAMPLE.replace('kind: openpgp, recipients: [keys/ops.pub.asc]', 'kind: cryptomator, password: x'), /^worker\.yaml:6: worker\.encryption\.kind: the worker encrypts with kind openpgp only/],
      [EXAMPLE.replace('s3: { type: s3,', 's3: { type: local,'), /^worker\.yaml:4: worker\.storages\.s3\.type: must be s3$/],
      [EXAMPLE.replace('regoin', 'x').replace('region: eu-west-1', 'regoin: eu-west-1'), /^worker\.yaml:4: worker\.storages\.s3\.regoin: unknown key \(did you mean "region"\?\)$/],
      [EXAMPLE.replace('${DB_URL}', 'mysql://u:pw@h/db'), /^worker\.yaml:2: worker\.database: must start with postgres:\/\/ \(or postgresql:\/\/\) or sqlite:/],
      [EXAMPLE.replace('target: { name: disk, type: local, path: /mnt/backup/objects }', 'target: { name: disk, type: ftp }'), /^worker\.yaml:5: worker\.target\.type: must be one of: local, webdav, s3$/],
    ];
    for (const [yaml, want] of cases) {
      const { load: read } = await load(yaml);
      const err = await errorOf(read());
      const text = err.hint ? `${err.message} (${err.hint})` : err.message;
      expect(err.code).toBe('CONFIG');
      expect(text.split('\n')).toHaveLength(1);
      expect(text.replace(/^.*\/(worker\.yaml)/, '$1')).toMatch(want);
      for (const secret of [ENV.S3_SECRET, 's%40cret-pw', 's@cret-pw']) expect(text).not.toContain(secret);
    }
    const missing = await errorOf(loadWorkerConfig((await load(EXAMPLE)).file, { ...ENV, S3_SECRET: undefined }));
    expect(missing.message).toMatch(/worker\.yaml:4: worker\.storages\.s3\.secretAccessKey uses \$\{S3_SECRET\}, which is not set$/);
    expect(missing.hint).toBe('export it or put it in .env');
    // a URL that does not parse is not quoted: it holds the password
    const bad = await errorOf(loadWorkerConfig((await load(EXAMPLE)).file, { ...ENV, DB_URL: 'postgres://u:hunter2@host:port/db' }));
    expect(bad.message).toMatch(/worker\.database: is not a valid postgres:\/\/ URL/);
    expect(bad.message).not.toContain('hunter2');
  });
});
