/**
 * `cerberus worker` end to end, through the built CLI, as a user runs it: the application's
 * tables in a real PostgreSQL cluster (read as the restricted role of sql/) and in SQLite,
 * objects in s3rver, signed URLs from a local server backed by it that can make them expire.
 * 500 uploads, kill -9 three times, a hash that does not match, expired URLs, deletes and
 * superseded versions driven by --now, health, restore, reports, encryption opened by gpg.
 * Never skipped: without PostgreSQL, s3rver or gpg the tests fail.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatBytes } from '../../src/report/format.js';
import { BIN, cerberus, PASSPHRASE, ROOT, tempDir, type RunResult } from '../helpers/cli.js';
import { expectError } from '../helpers/errors.js';
import { gpg, killAgents } from '../helpers/gpg.js';
import { startPostgres, type PostgresServer } from '../helpers/postgres.js';
import { reports } from '../helpers/reports.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { runTool } from '../helpers/servers.js';
import { startSignedUrls, type SignedUrlServer } from '../helpers/signed-urls.js';
import { copyKey, planUploads, postgresInserts, putObject, putUploads, sha256, writeSqliteApp, type DeleteEntry, type Upload } from '../helpers/uploads.js';

const BUCKET = 'car-erp';
const T0 = Date.parse('2026-03-02T10:00:00Z');
const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const iso = (ms: number) => new Date(ms).toISOString();
/** the passes killed with SIGKILL run at this time, the one that completes them at T2 */
const T1 = T0 + MIN;
const T2 = T1 + 10 * MIN;
const WORKER_PASSWORD = 'Wörker pa$$ #1/:@';

let pg: PostgresServer;
let s3: S3Server;
let urls: SignedUrlServer;
/** everything the CLI printed or wrote in reports: no secret may be in it */
const said: string[] = [];

beforeAll(async () => {
  [pg, s3] = await Promise.all([startPostgres(), startS3rver({ bucket: BUCKET })]);
  urls = await startSignedUrls(s3);
  // every URL of kind 'refused' (valid for 5 minutes by its own word) is expired for the server
  urls.skew(HOUR);
}, 60_000);

afterAll(async () => {
  await urls?.stop();
  await Promise.all([pg?.stop(), s3?.stop()]);
});

/** Every file below `root`, relative, sorted; LocalBackend's own temp files (a kill -9 may leave one) apart. */
function copiesIn(root: string): { copies: string[]; temp: string[] } {
  const copies: string[] = [];
  const temp: string[] = [];
  const walk = (dir: string, rel: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else (e.name.startsWith('.tmp-') ? temp : copies).push(r);
    }
  };
  if (fs.existsSync(root)) walk(root, '');
  return { copies: copies.sort(), temp };
}

async function run(args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<RunResult> {
  const r = await cerberus(args, { env, cwd, timeoutMs: 60_000 });
  said.push(r.stdout, r.stderr);
  return r;
}

describe('against PostgreSQL: 500 uploads, kill -9, deletes', () => {
  // The issue asks for 500 uploads "across 50 files with up to 5 versions each", which cannot
  // be (50 × 5 = 250). Here: 110 files, 90 with 5 versions and 5 each with 4, 3, 2 and 1: 500.
  const versions = [...Array<number>(90).fill(5), ...[4, 3, 2, 1].flatMap((n) => Array<number>(5).fill(n))];
  let uploads: Upload[];
  let deletes: DeleteEntry[];
  let mismatch: Upload;
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let appChecksum: string;
  const backup = () => path.join(dir, 'backup');
  const key = (u: Upload) => copyKey(BUCKET, u);
  const checksum = () =>
    pg.psql(
      `SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY "Id"), '')) FROM "ObjectStorageFiles" t;
       SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY "Id"), '')) FROM "ObjectStorageDeleteLog" t;`,
      'app',
    );

  beforeAll(async () => {
    expect(versions).toHaveLength(110);
    expect(versions.reduce((a, b) => a + b, 0)).toBe(500);
    uploads = planUploads(versions, { until: new Date(T0), seed: 'e2e' });
    // the newest versions come by every road: a URL, none, one expired by its own word, one the server calls expired
    const kinds = ['ok', 'none', 'stale', 'refused'] as const;
    let k = 0;
    await putUploads(s3, urls, uploads, (u) => (u.newest ? kinds[k++ % 4]! : 'ok'));
    // a file of one version without a URL whose object in the storage is not what the row says
    mismatch = uploads.find((u) => u.newest && u.version === 1 && u.urlKind === 'none')!;
    expect(mismatch).toBeDefined();
    await putObject(s3, mismatch.path, Buffer.from('a half-written upload'));
    // 20 files deleted an hour after T0, each named by the Id of one of its versions
    const byPath = new Map<string, Upload[]>();
    for (const u of uploads) byPath.set(u.path, [...(byPath.get(u.path) ?? []), u]);
    deletes = [...byPath.values()]
      .filter((vs) => vs[0] !== mismatch)
      .filter((_, i) => i % 5 === 2)
      .slice(0, 20)
      .map((vs, i) => ({ id: i + 1, fileId: vs[i % vs.length]!.id, deletedAt: new Date(T0 + HOUR) }));
    expect(deletes).toHaveLength(20);

    await pg.createDb('app');
    await pg.psql(fs.readFileSync(path.join(ROOT, 'sql/object-storage-contract.sql'), 'utf8'), 'app');
    await pg.psql(postgresInserts(uploads, deletes), 'app');
    await runTool(path.join(pg.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', `password=${WORKER_PASSWORD}`, '-f', path.join(ROOT, 'sql/object-storage-worker-role.sql')], { env: { ...process.env, ...pg.clientEnv('app') } });
    appChecksum = await checksum();

    dir = await tempDir('cerberus-worker-e2e-');
    env = {
      DB_URL: `postgres://cerberus_worker:${encodeURIComponent(WORKER_PASSWORD)}@127.0.0.1:${pg.port}/app`,
      S3_KEY: s3.accessKeyId,
      S3_SECRET: s3.secretAccessKey,
      CERBERUS_STATE_DIR: path.join(dir, 'state-root'),
    };
    await fsp.writeFile(
      path.join(dir, 'worker.yaml'),
      `worker:
  database: \${DB_URL}
  storages:
    s3: { type: s3, endpoint: "${s3.endpoint}", region: us-east-1, bucket: ${BUCKET}, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET} }
  target: { name: disk, type: local, path: backup }
  pollInterval: 1s
  deleteAfter: 7d
  concurrency: 4
`,
    );
  }, 60_000);

  it('health fails before the worker has caught up', async () => {
    const r = await run(['worker', 'health', '-c', 'worker.yaml', '--now', iso(T2), '--max-behind-rows', '100'], env, dir);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^disk\s+BEHIND\s+500\s+2026-03-02T09:00:0\d\.\d{3}Z\s+1h1\dm\s+0\s+never$/m);
    expect(r.stdout).toContain('500 rows are not stored yet (more than 100)');
    expect(r.stdout).toMatch(/the oldest upload not stored yet is 1h1\dm old \(more than 1h00m\)/);
  });

  it('loses nothing and duplicates nothing when killed with SIGKILL three times, and stores every version once, at its path', async () => {
    // each kill comes once a random number of further copies is on the disk
    const thresholds: number[] = [];
    for (let i = 0, at = 0; i < 3; i++) thresholds.push((at += 30 + Math.floor(Math.random() * 90)));
    for (const threshold of thresholds) {
      const child = spawn(process.execPath, [BIN, 'worker', '-c', 'worker.yaml', '--once', '--now', iso(T1)], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (out += d.toString()));
      const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
      let alive = true;
      void exited.then(() => (alive = false));
      while (alive && copiesIn(backup()).copies.length < threshold) await new Promise((r) => setTimeout(r, 5));
      child.kill('SIGKILL');
      expect(await exited, `the worker ended before copy ${threshold} (kills at ${thresholds.join(', ')}): ${out}`).toBe('SIGKILL');
      said.push(out);
    }
    expect(copiesIn(backup()).copies.length).toBeGreaterThanOrEqual(thresholds[2]!);

    // past the retry of the mismatched row, if a killed pass got to it
    const r = await run(['worker', '-c', 'worker.yaml', '--once', '--now', iso(T2), '--report', 'reports', '--json'], env, dir);
    // the mismatched row fails, and only that: a warning, as it is tried again later
    expect(r.code, r.stderr).toBe(3);
    const pass = JSON.parse(r.stdout) as { failed: Array<{ id: number; error: string }>; pending: number; stored: number; exitCode: number };
    expect(pass.failed.map((f) => f.id)).toEqual([mismatch.id]);
    expect(pass.failed[0]!.error).toMatch(/^sha-256 mismatch: the 21 bytes read hash to [0-9a-f]{64}, the row's Hash is [0-9a-f]{64}; nothing stored \(tried again later/);
    expect(pass).toMatchObject({ pending: 1, exitCode: 3 });
    expect(r.stderr).toMatch(new RegExp(`WARNING: row ${mismatch.id} \\(${mismatch.path} v1\\): sha-256 mismatch`));

    const { copies, temp } = copiesIn(backup());
    const want = uploads.filter((u) => u !== mismatch).map(key).sort();
    expect(copies, `kills at ${thresholds.join(', ')}; temp files left: ${temp.join(', ')}`).toEqual(want);
    for (const u of uploads.filter((x) => x !== mismatch)) expect(sha256(gunzipSync(fs.readFileSync(path.join(backup(), key(u))))), key(u)).toBe(u.hash);
    // newest versions without a working URL came from the storage
    for (const kind of ['none', 'stale', 'refused']) expect(uploads.filter((u) => u.urlKind === kind && u !== mismatch).every((u) => copies.includes(key(u))), kind).toBe(true);
    expect(urls.counts.expired).toBeGreaterThan(0);

    const rep = await reports(path.join(dir, 'reports'));
    expect(rep.json).toMatchObject({ command: 'worker --once', job: 'worker:disk', exitCode: 3 });
    expect(rep.json.targets[0]).toMatchObject({ target: 'disk', status: 'failed', error: expect.stringMatching(`^1 row\\(s\\) failed, e.g. row ${mismatch.id}: sha-256 mismatch`) });
    expect(rep.failures[`disk row ${mismatch.id} ${mismatch.path} v1 FAILED`]).toMatch(/^sha-256 mismatch/);
    expect(rep.failures['disk fetch+store FAILED']).toBe('1 row(s) failed; each is tried again after a backoff');
    expect(rep.summary).toMatch(/^### cerberus worker --once `worker:disk`: completed with warnings \(exit 3/);
    said.push(rep.summary, JSON.stringify(rep.json));
  });

  it('is healthy while the one failing row is young, and not once it waits too long', async () => {
    const ok = await run(['worker', 'health', '-c', 'worker.yaml', '--now', iso(T2), '--max-behind', '2h', '--json'], env, dir);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ healthy: true, behindRows: 1, failing: 1, lastPass: iso(T2), oldestPending: mismatch.createdAt.toISOString() });
    const late = await run(['worker', 'health', '-c', 'worker.yaml', '--now', iso(T2 + 3 * HOUR), '--max-behind', '2h', '--report', 'health-report'], env, dir);
    expect(late.code).toBe(1);
    expect(late.stdout).toMatch(new RegExp(`row ${mismatch.id} \\(${mismatch.path} v1\\) failed \\d time\\(s\\): sha-256 mismatch`));
    const rep = await reports(path.join(dir, 'health-report'));
    expect(rep.failures['disk health FAILED']).toMatch(/^the oldest upload not stored yet is 4h\d\dm old \(more than 2h00m\)/);
  });

  it('stores the row once the storage holds the right bytes and its retry is due', async () => {
    await putObject(s3, mismatch.path, mismatch.content);
    const r = await run(['worker', '-c', 'worker.yaml', '--once', '--now', iso(T2 + HOUR)], env, dir);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^read\s+stored\s+from storage\s+failed\s+removed\s+pending/m);
    expect(r.stdout).toMatch(/^0\s+1\s+1\s+0\s+0\s+0\s+-/m);
    expect(sha256(gunzipSync(fs.readFileSync(path.join(backup(), key(mismatch)))))).toBe(mismatch.hash);
  });

  it('restores a version of a file, and the newest by default, checked against its Hash', async () => {
    const file = uploads.filter((u) => u.path === uploads[0]!.path);
    const out = path.join(dir, 'restored');
    const v2 = await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', String(file[4]!.id), '--version', '2', '--to', path.join(out, 'v2.png')], env, dir);
    expect(v2.code, v2.stderr).toBe(0);
    expect(v2.stdout).toBe(`restored ${file[0]!.path} v2 (row ${file[4]!.id}) from ${key(file[1]!)}: ${formatBytes(file[1]!.content.length)} into ${path.join(out, 'v2.png')}\n`);
    expect(sha256(fs.readFileSync(path.join(out, 'v2.png')))).toBe(file[1]!.hash);
    const newest = await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', String(file[0]!.id), '--to', out], env, dir);
    expect(newest.code, newest.stderr).toBe(0);
    expect(sha256(fs.readFileSync(path.join(out, path.basename(file[0]!.path))))).toBe(file[4]!.hash);
    expectError(await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', '999999', '--to', out], env, dir), 1, [/ObjectStorageFiles has no row with Id 999999/]);
  });

  it('removes superseded versions and deleted files only once deleteAfter has passed, and never the newest of a live file', async () => {
    const all = copiesIn(backup()).copies;
    const deletedPaths = new Set(deletes.map((d) => uploads.find((u) => u.id === d.fileId)!.path));
    // superseded versions were stored at T1 or T2, each with or before its newer ones: due by T2 + 7d
    const early = await run(['worker', '-c', 'worker.yaml', '--once', '--now', iso(T1 + 7 * DAY - MIN), '--json'], env, dir);
    expect(early.code, early.stderr).toBe(0);
    expect(JSON.parse(early.stdout).removed).toEqual([]);
    expect(copiesIn(backup()).copies).toEqual(all);

    // the deletes came at T0 + 1h: due at T0 + 1h + 7d
    const superseded = await run(['worker', '-c', 'worker.yaml', '--once', '--now', iso(T0 + HOUR + 7 * DAY - MIN), '--json'], env, dir);
    expect((JSON.parse(superseded.stdout).removed as string[]).sort()).toEqual(uploads.filter((u) => !u.newest).map(key).sort());
    expect(copiesIn(backup()).copies).toEqual(uploads.filter((u) => u.newest).map(key).sort());

    const gone = await run(['worker', '-c', 'worker.yaml', '--once', '--now', iso(T0 + HOUR + 7 * DAY), '--json'], env, dir);
    expect((JSON.parse(gone.stdout).removed as string[]).sort()).toEqual(uploads.filter((u) => u.newest && deletedPaths.has(u.path)).map(key).sort());
    expect(JSON.parse(gone.stdout).deletesApplied).toBe(20);
    expect(copiesIn(backup()).copies).toEqual(uploads.filter((u) => u.newest && !deletedPaths.has(u.path)).map(key).sort());
  });

  it('never wrote to the application\'s database, whose worker role may not', async () => {
    expect(await checksum()).toBe(appChecksum);
    await expect(
      runTool(path.join(pg.binDir, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-c', `BEGIN READ WRITE; INSERT INTO "ObjectStorageDeleteLog" ("FileId") VALUES (1); COMMIT`], {
        env: { ...process.env, ...pg.clientEnv('app'), PGUSER: 'cerberus_worker', PGPASSWORD: WORKER_PASSWORD },
      }),
    ).rejects.toThrow(/permission denied for table ObjectStorageDeleteLog/);
  });

  it('says what is wrong with a config in one line, and never shows a secret', async () => {
    const unset = await run(['worker', '-c', 'worker.yaml', '--once'], { ...env, DB_URL: undefined }, dir);
    expectError(unset, 2, [/^cerberus: error: worker\.yaml:2: worker\.database uses \$\{DB_URL\}, which is not set \(export it or put it in \.env\)$/]);
    await fsp.writeFile(path.join(dir, 'typo.yaml'), fs.readFileSync(path.join(dir, 'worker.yaml'), 'utf8').replace('deleteAfter', 'deleteAftr'));
    expectError(await run(['worker', 'health', '-c', 'typo.yaml'], env, dir), 2, [/^cerberus: error: typo\.yaml:7: worker\.deleteAftr: unknown key \(did you mean "deleteAfter"\?\)$/]);
    const wrongPw = await run(['worker', '-c', 'worker.yaml', '--once'], { ...env, DB_URL: `postgres://cerberus_worker:${encodeURIComponent('not-the-password')}@127.0.0.1:${pg.port}/app` }, dir);
    expectError(wrongPw, 1, [/application database postgres:\/\/cerberus_worker@127\.0\.0\.1:\d+\/app: cannot read the tables: password authentication failed for user "cerberus_worker" \[28P01\] \(check the user and password in worker\.database\)$/]);
    expect(wrongPw.stderr).not.toContain('not-the-password');
    expectError(await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', 'x', '--to', 'o'], env, dir), 2, [/--file-id x is not a whole number of 1 or more/]);
    expectError(await run(['worker', '--once'], env, dir), 2, [/say which file holds the worker config: --config FILE/]);

    const text = said.join('\n');
    for (const secret of [WORKER_PASSWORD, encodeURIComponent(WORKER_PASSWORD), ...urls.signatures]) expect(text).not.toContain(secret);
  });
});

describe('against SQLite, encrypted, as a service', () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let uploads: Upload[];
  const backup = () => path.join(dir, 'backup');

  beforeAll(async () => {
    dir = await tempDir('cerberus-worker-sqlite-');
    uploads = planUploads([3, 1, 2, 1, 1], { until: new Date(T0), seed: 'sqlite', pathOf: (i) => `/docs/${i}/scan.pdf` });
    await putUploads(s3, urls, uploads, (u) => (u.newest && u.version > 1 ? 'none' : 'ok'));
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    env = { CERBERUS_STATE_DIR: path.join(dir, 'state'), S3_SECRET: s3.secretAccessKey, CERBERUS_KEY_PASSPHRASE: PASSPHRASE };
    const keygen = await cerberus(['keygen', '--out', 'keys', '--email', 'ops@example.org'], { cwd: dir, env });
    expect(keygen.code, keygen.stderr).toBe(0);
    await fsp.writeFile(
      path.join(dir, 'worker.yaml'),
      `worker:
  database: sqlite:app.db
  storages: { s3: { type: s3, endpoint: "${s3.endpoint}", bucket: ${BUCKET}, accessKeyId: S3RVER, secretAccessKey: \${S3_SECRET} } }
  target: { name: usb, type: local, path: backup }
  encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc] }
  pollInterval: 1s
`,
    );
  });

  it('stores .gzip.gpg copies that gpg decrypts to the gzip of the content, and restores with the key; app.db is untouched', async () => {
    const before = sha256(fs.readFileSync(path.join(dir, 'app.db')));
    const r = await run(['worker', '-c', 'worker.yaml', '--once'], env, dir);
    expect(r.code, r.stderr).toBe(0);
    expect(copiesIn(backup()).copies).toEqual(uploads.map((u) => copyKey(BUCKET, u, true)).sort());
    expect(sha256(fs.readFileSync(path.join(dir, 'app.db')))).toBe(before);

    const home = await tempDir('cerberus-gnupg-');
    await fsp.chmod(home, 0o700);
    try {
      const imported = await gpg(home, ['--passphrase', PASSPHRASE, '--import', path.join(dir, 'keys/cerberus.key.asc')]);
      expect(imported.code, imported.stderr).toBe(0);
      const u = uploads[0]!;
      const dec = await gpg(home, ['--passphrase', PASSPHRASE, '--decrypt', path.join(backup(), copyKey(BUCKET, u, true))]);
      expect(dec.code, dec.stderr).toBe(0);
      expect(sha256(gunzipSync(dec.stdout))).toBe(u.hash);
    } finally {
      await killAgents([home]);
    }

    const out = path.join(dir, 'out.pdf');
    const restored = await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', String(uploads[0]!.id), '--to', out, '--key', 'keys/cerberus.key.asc'], env, dir);
    expect(restored.code, restored.stderr).toBe(0);
    const newest = uploads.filter((u) => u.path === uploads[0]!.path).at(-1)!;
    expect(sha256(fs.readFileSync(out))).toBe(newest.hash);
    const noKey = await run(['worker', 'restore', '-c', 'worker.yaml', '--file-id', String(uploads[0]!.id), '--to', path.join(dir, 'x.pdf')], { ...env, CERBERUS_KEY_PASSPHRASE: undefined }, dir);
    expectError(noKey, 1, [/restoring needs the private key \(pass --key FILE or set CERBERUS_PRIVATE_KEY_FILE/]);
  });

  it('runs until SIGTERM, picking up new uploads each poll, and stops cleanly after the files in flight', async () => {
    const child = spawn(process.execPath, [BIN, 'worker', '-c', 'worker.yaml'], { cwd: dir, env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const until = async (what: () => boolean) => {
      for (let i = 0; i < 400 && !what(); i++) await new Promise((r) => setTimeout(r, 25));
      expect(what(), err).toBe(true);
    };
    await until(() => /read 0 new row/.test(err));
    const more = planUploads([1, 1], { until: new Date(T0 + HOUR), seed: 'service', pathOf: (i) => `/docs/new-${i}.pdf` }).map((u, i) => ({ ...u, id: uploads.length + i + 1 }));
    await putUploads(s3, urls, more, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), more);
    await until(() => /read 2 new row\(s\), stored 2/.test(err));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    said.push(err);
    expect(err).toMatch(/SIGTERM: stopping after the files in flight/);
    expect(err.trimEnd().split('\n').at(-1)).toBe('    worker: stopped');
    expect(copiesIn(backup()).copies).toEqual([...uploads, ...more].map((u) => copyKey(BUCKET, u, true)).sort());
  });
});
