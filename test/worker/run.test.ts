/**
 * The worker's passes in process, against real parts: the application's tables in SQLite,
 * objects in s3rver, signed URLs from a local server backed by it, copies on a local target.
 * The CLI, PostgreSQL, kill -9 and the 500-upload run are in test/e2e/worker.test.ts.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair } from '../../src/formats/openpgp/keys.js';
import { MemoryReporter } from '../../src/report/log.js';
import { openBackend } from '../../src/storage/index.js';
import { loadWorkerConfig, type WorkerConfig } from '../../src/worker/config.js';
import { workerHealth } from '../../src/worker/health.js';
import { restoreCopy } from '../../src/worker/restore.js';
import { ObjectWorker, runLoop, type PassResult } from '../../src/worker/run.js';
import { openSqlite } from '../../src/worker/sqlite.js';
import { tempDir } from '../helpers/cli.js';
import { errorOf } from '../helpers/errors.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { startSignedUrls, type SignedUrlServer } from '../helpers/signed-urls.js';
import { copyKey, planUploads, putObject, putUploads, sha256, writeSqliteApp, type Upload } from '../helpers/uploads.js';

const BUCKET = 'car-erp';
const T0 = Date.parse('2026-03-02T10:00:00Z');
const HOUR = 3600_000;
const DAY = 24 * HOUR;

let s3: S3Server;
let urls: SignedUrlServer;

beforeAll(async () => {
  s3 = await startS3rver({ bucket: BUCKET });
  urls = await startSignedUrls(s3);
});
afterAll(async () => {
  await urls?.stop();
  await s3?.stop();
});

async function config(dir: string, extra = '', concurrency = 4): Promise<WorkerConfig> {
  const file = path.join(dir, 'worker.yaml');
  await fsp.writeFile(
    file,
    [
      'worker:',
      '  database: sqlite:app.db',
      '  storages:',
      `    s3: { type: s3, endpoint: "${s3.endpoint}", bucket: ${BUCKET}, accessKeyId: S3RVER, secretAccessKey: \${S3_SECRET} }`,
      '  target: { name: disk, type: local, path: backup }',
      '  stateDir: state',
      '  deleteAfter: 7d',
      `  concurrency: ${concurrency}`,
      extra,
    ].join('\n') + '\n',
  );
  return loadWorkerConfig(file, { S3_SECRET: s3.secretAccessKey });
}

/** One pass at `now`, the worker closed after it. */
async function pass(cfg: WorkerConfig, now: number, opts: { stop?: AbortSignal; reporter?: MemoryReporter } = {}): Promise<PassResult> {
  const reporter = opts.reporter ?? new MemoryReporter();
  const w = await ObjectWorker.start(cfg, { reporter, open: (t) => openBackend(t), clock: () => now });
  try {
    return await w.pass(opts.stop ?? new AbortController().signal, new AbortController().signal);
  } finally {
    await w.close();
  }
}

/** Every file under the target, relative, sorted. */
async function copies(cfg: WorkerConfig): Promise<string[]> {
  const root = cfg.target.type === 'local' ? cfg.target.path : '';
  const out: string[] = [];
  const walk = async (dir: string, rel: string) => {
    for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(dir, e.name), r);
      else out.push(r);
    }
  };
  await walk(root, '');
  return out.sort();
}

const readCopy = (cfg: WorkerConfig, key: string) => gunzipSync(fs.readFileSync(path.join(cfg.target.type === 'local' ? cfg.target.path : '', key)));

describe('a pass', () => {
  it('stores every version once, at its path, gzipped to the right bytes, from the URL or else the storage; the next pass has nothing to do', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads([3, 1, 2, 1, 2], { until: new Date(T0), seed: 'pass', pathOf: (i) => `/pass/f${i}/${['a.png', 'b.pdf', 'c.tar.gz', '.hidden', 'e'][i]}` });
    // a newest version may come from the storage itself: its URL is absent, expired by its own words, or refused
    const kinds = ['none', 'stale', 'refused'] as const;
    let k = 0;
    await putUploads(s3, urls, uploads, (u) => (u.newest ? kinds[k++ % 3]! : 'ok'));
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const cfg = await config(dir);
    urls.skew(HOUR);
    const before = { ...urls.counts };
    const r = await pass(cfg, T0).finally(() => urls.skew(0));

    expect(r.failed).toEqual([]);
    expect(r).toMatchObject({ read: uploads.length, stored: uploads.length, viaStorage: uploads.filter((u) => u.urlKind !== 'ok').length, pending: 0, interrupted: false });
    // the stale URLs were never asked for: their expiry is in the URL
    expect(urls.counts.expired - before.expired).toBe(uploads.filter((u) => u.urlKind === 'refused').length);
    expect(urls.counts.served - before.served).toBe(uploads.filter((u) => u.urlKind === 'ok').length);
    expect(await copies(cfg)).toEqual(uploads.map((u) => copyKey(BUCKET, u)).sort());
    expect(await copies(cfg)).toContain('car-erp/pass/f2/c.tar/v1.gzip');
    expect(await copies(cfg)).toContain('car-erp/pass/f3/.hidden/v1.gzip');
    for (const u of uploads) expect(sha256(readCopy(cfg, copyKey(BUCKET, u))), u.path).toBe(u.hash);

    const again = await pass(cfg, T0 + HOUR);
    expect(again).toMatchObject({ read: 0, stored: 0, failed: [], pending: 0 });
    expect(await copies(cfg)).toHaveLength(uploads.length);
  });

  it('finds a copy that a crash left unrecorded and keeps it, without fetching it again; one that is missing is fetched', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads([1, 1], { until: new Date(T0), seed: 'crash', pathOf: (i) => `/crash/${i}.bin` });
    await putUploads(s3, urls, uploads, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const cfg = await config(dir);
    await pass(cfg, T0);
    // as if the worker died after putting both copies, before recording them; the second copy was lost too
    const state = openSqlite(path.join(cfg.stateDir, 'worker.sqlite'));
    state.exec("UPDATE rows SET status = 'storing'; DELETE FROM versions;");
    state.close();
    await fsp.rm(path.join(cfg.target.type === 'local' ? cfg.target.path : '', copyKey(BUCKET, uploads[1]!)));
    const served = urls.counts.served;

    const r = await pass(cfg, T0 + HOUR);
    expect(r).toMatchObject({ stored: 2, resumed: 1, failed: [] });
    expect(urls.counts.served - served).toBe(1);
    expect(await copies(cfg)).toEqual(uploads.map((u) => copyKey(BUCKET, u)).sort());
    for (const u of uploads) expect(sha256(readCopy(cfg, copyKey(BUCKET, u)))).toBe(u.hash);
  });

  it('never stores content whose sha-256 differs from Hash: the row fails, waits, and is stored once the object is right', async () => {
    const dir = await tempDir('cerberus-worker-');
    const [good, bad] = planUploads([1, 1], { until: new Date(T0), seed: 'mismatch', pathOf: (i) => `/mismatch/${i}.txt` }) as [Upload, Upload];
    await putUploads(s3, urls, [good, bad], (u) => (u === bad ? 'none' : 'ok'));
    await putObject(s3, bad.path, Buffer.from('not what the row says'));
    writeSqliteApp(path.join(dir, 'app.db'), [good, bad]);
    const cfg = await config(dir);
    const reporter = new MemoryReporter();

    const first = await pass(cfg, T0, { reporter });
    expect(first.stored).toBe(1);
    expect(first.failed).toHaveLength(1);
    expect(first.failed[0]).toMatchObject({ id: bad.id, path: bad.path, version: 1, retryAt: T0 + 60_000 });
    expect(first.failed[0]!.error).toMatch(/sha-256 mismatch: the 21 bytes read hash to [0-9a-f]{64}, the row's Hash is [0-9a-f]{64}; nothing stored/);
    expect(reporter.warnings.join('\n')).toMatch(new RegExp(`row ${bad.id} \\(/mismatch/1.txt v1\\): sha-256 mismatch.*next attempt after 2026-03-02T10:01:00.000Z`));
    expect(await copies(cfg)).toEqual([copyKey(BUCKET, good)]);
    expect(fs.readdirSync(path.join(cfg.stateDir, 'spool'))).toEqual([]);

    const second = await pass(cfg, T0 + 90_000);
    expect(second.failed).toHaveLength(1);
    // twice as long after the second failure
    expect(second.failed[0]!.retryAt).toBe(T0 + 90_000 + 120_000);
    expect(await pass(cfg, T0 + 100_000)).toMatchObject({ stored: 0, failed: [], pending: 1, waiting: 1 });

    await putObject(s3, bad.path, bad.content);
    expect(await pass(cfg, T0 + 90_000 + 120_000)).toMatchObject({ stored: 1, failed: [], pending: 0 });
    expect(sha256(readCopy(cfg, copyKey(BUCKET, bad)))).toBe(bad.hash);
  });

  it('gives up a failing version once a newer one was stored deleteAfter ago (its copy would go at once), and says so', async () => {
    const dir = await tempDir('cerberus-worker-');
    // v1's URL has expired and the storage holds v2's content: v1 can never be fetched
    const [v1, v2] = planUploads([2], { until: new Date(T0), seed: 'superseded', pathOf: () => '/superseded/f.txt' }) as [Upload, Upload];
    await putUploads(s3, urls, [v1, v2], (u) => (u === v1 ? 'stale' : 'ok'));
    writeSqliteApp(path.join(dir, 'app.db'), [v1, v2]);
    const cfg = await config(dir);

    const first = await pass(cfg, T0);
    expect(first).toMatchObject({ stored: 1, skipped: 0 });
    expect(first.failed.map((f) => f.id)).toEqual([v1.id]);
    // still tried while the newer version is younger than deleteAfter
    expect((await pass(cfg, T0 + 7 * DAY - HOUR)).failed.map((f) => f.id)).toEqual([v1.id]);
    const reporter = new MemoryReporter();
    const late = await pass(cfg, T0 + 7 * DAY + HOUR, { reporter });
    expect(late).toMatchObject({ stored: 0, failed: [], skipped: 1, pending: 0 });
    expect(reporter.lines.join('\n')).toMatch(new RegExp(`row ${v1.id} \\(/superseded/f.txt v1\\): superseded: v2 was stored`));
    expect(await copies(cfg)).toEqual([copyKey(BUCKET, v2)]);
    expect(await pass(cfg, T0 + 30 * DAY)).toMatchObject({ stored: 0, failed: [], skipped: 0, pending: 0 });
  });

  it('refuses a second file whose copies would share a folder with the first (a/b.png and a/b.jpg), and a Storage it does not know', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads([1, 1, 1], { until: new Date(T0), seed: 'stem', pathOf: (i) => ['/stem/b.png', '/stem/b.jpg', '/stem/c.png'][i]! });
    await putUploads(s3, urls, uploads, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const db = openSqlite(path.join(dir, 'app.db'));
    db.exec(`UPDATE "ObjectStorageFiles" SET "Storage" = 'azure' WHERE "Id" = 3`);
    db.close();
    const cfg = await config(dir);
    const r = await pass(cfg, T0);
    expect(r.stored).toBe(1);
    expect(r.failed.map((f) => [f.id, f.error])).toEqual([
      [2, expect.stringMatching(/^its copies would go to car-erp\/stem\/b\/, which holds the copies of \/stem\/b.png \(storage s3\); refused rather than mixed \(two paths/)],
      [3, 'Storage "azure" is not in worker.storages (s3)'],
    ]);
    expect(await copies(cfg)).toEqual(['car-erp/stem/b/v1.gzip']);
    expect(sha256(readCopy(cfg, 'car-erp/stem/b/v1.gzip'))).toBe(uploads[0]!.hash);
  });

  it('stops taking files on the stop signal and records the ones it stored', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads(Array.from({ length: 40 }, () => 1), { until: new Date(T0), seed: 'stop', pathOf: (i) => `/stop/${i}.bin` });
    await putUploads(s3, urls, uploads, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const cfg = await config(dir, '', 2);
    const stop = new AbortController();
    const reporter = new MemoryReporter();
    const w = await ObjectWorker.start(cfg, { reporter, open: (t) => openBackend(t), clock: () => T0 });
    let result: PassResult | undefined;
    const served = urls.counts.served;
    // stop once a few copies are on the disk
    const watch = setInterval(() => {
      if (urls.counts.served - served >= 5) stop.abort();
    }, 1);
    try {
      await runLoop(w, { once: false, stop: stop.signal, abort: new AbortController().signal, onPass: (r) => void (result = r), onError: (e) => { throw e; } });
    } finally {
      clearInterval(watch);
      await w.close();
    }
    expect(result?.interrupted).toBe(true);
    const onDisk = await copies(cfg);
    expect(onDisk.length).toBeGreaterThanOrEqual(5);
    expect(onDisk.length).toBeLessThan(uploads.length);
    expect(result?.stored).toBe(onDisk.length);
    expect(result?.pending).toBe(uploads.length - onDisk.length);
    // the next pass does the rest
    expect(await pass(cfg, T0)).toMatchObject({ stored: uploads.length - onDisk.length, pending: 0 });
  });
});

describe('deletes and superseded versions', () => {
  it('removes a deleted file\'s copies only after deleteAfter, older versions deleteAfter after a newer one was stored, and never the newest of a live file', async () => {
    const dir = await tempDir('cerberus-worker-');
    // file 0: 3 versions; file 1: 1 version, deleted; file 2: 2 versions, keepVersions 2 in the second config
    const uploads = planUploads([3, 1, 2], { until: new Date(T0), seed: 'retention', pathOf: (i) => `/ret/${i}.txt` });
    await putUploads(s3, urls, uploads, () => 'ok');
    const deleted = uploads.find((u) => u.path === '/ret/1.txt')!;
    writeSqliteApp(path.join(dir, 'app.db'), uploads, [{ id: 1, fileId: deleted.id, deletedAt: new Date(T0 + HOUR) }]);
    const cfg = await config(dir);
    const keys = (pick: (u: Upload) => boolean) => uploads.filter(pick).map((u) => copyKey(BUCKET, u)).sort();

    await pass(cfg, T0);
    expect(await copies(cfg)).toEqual(keys(() => true));
    const early = await pass(cfg, T0 + 7 * DAY - 60_000);
    expect(early.removed).toEqual([]);
    // superseded versions were stored at T0 with their newer ones: due at T0 + 7d
    const week = await pass(cfg, T0 + 7 * DAY);
    expect(week.removed.sort()).toEqual(keys((u) => !u.newest));
    expect(await copies(cfg)).toEqual(keys((u) => u.newest));
    // the delete came at T0 + 1h
    expect((await pass(cfg, T0 + 7 * DAY + HOUR - 60_000)).removed).toEqual([]);
    const gone = await pass(cfg, T0 + 7 * DAY + HOUR);
    expect(gone).toMatchObject({ removed: [copyKey(BUCKET, deleted)], deletesApplied: 1 });
    expect(await copies(cfg)).toEqual(keys((u) => u.newest && u !== deleted));
    // its folder went with it
    expect(fs.existsSync(path.join(cfg.target.type === 'local' ? cfg.target.path : '', 'car-erp/ret/1'))).toBe(false);
  });

  it('keeps the newest keepVersions versions however old, and a file uploaded again after its delete', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads([3, 1], { until: new Date(T0), seed: 'keep', pathOf: (i) => `/keep/${i}.txt` });
    await putUploads(s3, urls, uploads, () => 'ok');
    const once = uploads.find((u) => u.path === '/keep/1.txt')!;
    writeSqliteApp(path.join(dir, 'app.db'), uploads, [{ id: 1, fileId: once.id, deletedAt: new Date(T0 + HOUR) }]);
    const cfg = await config(dir, '  keepVersions: 2');
    await pass(cfg, T0);
    // uploaded again after the delete, as version 2
    const again: Upload = { ...once, id: uploads.length + 1, version: 2, content: Buffer.from('back again'), hash: sha256(Buffer.from('back again')), createdAt: new Date(T0 + 2 * HOUR) };
    await putUploads(s3, urls, [again], () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), [again]);
    await pass(cfg, T0 + 3 * HOUR);
    const r = await pass(cfg, T0 + 30 * DAY);
    expect(r.removed.sort()).toEqual([copyKey(BUCKET, { path: '/keep/0.txt', version: 1 }), copyKey(BUCKET, once)].sort());
    expect(await copies(cfg)).toEqual([copyKey(BUCKET, { path: '/keep/0.txt', version: 2 }), copyKey(BUCKET, { path: '/keep/0.txt', version: 3 }), copyKey(BUCKET, again)].sort());
  });
});

describe('health and restore', () => {
  it('is unhealthy while uploads wait longer or in greater number than allowed, healthy once they are stored', async () => {
    const dir = await tempDir('cerberus-worker-');
    const uploads = planUploads([2, 1, 1], { until: new Date(T0), seed: 'health', pathOf: (i) => `/health/${i}.txt` });
    await putUploads(s3, urls, uploads, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const cfg = await config(dir);
    const oldest = uploads[0]!.createdAt.getTime();
    const limits = { maxBehindRows: 10, maxBehindMs: 2 * HOUR };

    const never = await workerHealth(cfg, oldest + HOUR, limits);
    expect(never).toMatchObject({ healthy: true, behindRows: 4, oldestPending: uploads[0]!.createdAt.toISOString() });
    const late = await workerHealth(cfg, oldest + 3 * HOUR, limits);
    expect(late.healthy).toBe(false);
    expect(late.problems).toEqual(['the oldest upload not stored yet is 3h00m old (more than 2h00m)', `the worker has never run with the state dir ${cfg.stateDir}`]);
    expect((await workerHealth(cfg, oldest, { ...limits, maxBehindRows: 3 })).problems[0]).toBe('4 rows are not stored yet (more than 3)');

    await pass(cfg, T0);
    expect(await workerHealth(cfg, oldest + 30 * DAY, limits)).toMatchObject({ healthy: true, behindRows: 0, failing: 0, lastPass: new Date(T0).toISOString(), problems: [] });
  });

  it('restores a version (the newest by default) with its hash checked, decrypting an encrypted copy', async () => {
    const dir = await tempDir('cerberus-worker-');
    const pair = await generateKeyPair({ name: 'ops', rsa: false, passphrase: 'pw' });
    await fsp.writeFile(path.join(dir, 'ops.pub.asc'), pair.publicArmored);
    await fsp.writeFile(path.join(dir, 'ops.key.asc'), pair.privateArmored);
    const uploads = planUploads([3], { until: new Date(T0), seed: 'restore', pathOf: () => '/restore/photo.jpeg' });
    await putUploads(s3, urls, uploads, () => 'ok');
    writeSqliteApp(path.join(dir, 'app.db'), uploads);
    const cfg = await config(dir, '  encryption: { kind: openpgp, recipients: [ops.pub.asc] }');
    await pass(cfg, T0);
    expect(await copies(cfg)).toEqual([1, 2, 3].map((v) => `car-erp/restore/photo/v${v}.gzip.gpg`));
    const { readPrivateKey } = await import('../../src/formats/openpgp/keys.js');
    const opening = async () => ({ key: await readPrivateKey(path.join(dir, 'ops.key.asc'), 'pw') });
    const open = (t: WorkerConfig['target']) => openBackend(t);

    const out = path.join(dir, 'out');
    await fsp.mkdir(out);
    const newest = await restoreCopy(cfg, { fileId: uploads[0]!.id, to: out, overwrite: false, opening, open });
    expect(newest).toMatchObject({ version: 3, key: 'car-erp/restore/photo/v3.gzip.gpg', to: path.join(out, 'photo.jpeg'), bytes: uploads[2]!.content.length });
    expect(sha256(fs.readFileSync(path.join(out, 'photo.jpeg')))).toBe(uploads[2]!.hash);
    await restoreCopy(cfg, { fileId: uploads[2]!.id, version: 1, to: path.join(out, 'v1.jpeg'), overwrite: false, opening, open });
    expect(sha256(fs.readFileSync(path.join(out, 'v1.jpeg')))).toBe(uploads[0]!.hash);

    const exists = await errorOf(restoreCopy(cfg, { fileId: uploads[0]!.id, to: out, overwrite: false, opening, open }));
    expect(exists.message).toBe(`${path.join(out, 'photo.jpeg')} exists`);
    const missing = await errorOf(restoreCopy(cfg, { fileId: uploads[0]!.id, version: 7, to: out, overwrite: true, opening, open }));
    expect(missing.message).toBe('target disk holds no copy of version 7 of /restore/photo.jpeg (in car-erp/restore/photo/); stored versions: 1, 2, 3');
    expect((await errorOf(restoreCopy(cfg, { fileId: 999, to: out, overwrite: true, opening, open }))).code).toBe('NOT_FOUND');
    // no leftovers of the failed attempts
    expect(fs.readdirSync(out).sort()).toEqual(['photo.jpeg', 'v1.jpeg']);
  });
});
