/**
 * Injected faults between cerberus and real servers: a fault proxy (test/helpers/fault-proxy.ts)
 * sits in front of Apache mod_dav and s3rver. For every fault a backup either completes after
 * retries or ends 1 naming the target and the cause; either way no partial generation is
 * visible, the next run succeeds, and every restore point restores bit-exactly.
 */
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, diffTrees, snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { mutate, rng } from '../helpers/history.js';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { startFaultProxy, type Fault, type FaultProxy } from '../helpers/fault-proxy.js';
import { START, useTargets } from '../helpers/remote.js';

const DAY = 86_400_000;
const VOLUME = /data\.tar\.gpg\.\d{4}/;

interface BackupJson {
  targets: Array<{ target: string; id?: string; status: string; error?: string }>;
}
interface ListJson {
  points: Array<{ target: string; id: string; level: string }>;
}

/** The state of a workspace's history: what each committed generation must restore to. */
class History {
  readonly expected = new Map<string, Map<string, TreeEntry>>();
  private day = 0;
  private readonly r = rng(11);

  constructor(
    readonly ws: Workspace,
    readonly env: NodeJS.ProcessEnv,
  ) {}

  async seed(): Promise<void> {
    for (let i = 0; i < 12; i++) await fsp.writeFile(path.join(this.ws.src, `doc ${i}.txt`), this.r.bytes(this.r.int(5_000, 30_000)));
  }

  /** A changed source and one backup; returns its exit code, log and JSON. */
  async backup(extraEnv: NodeJS.ProcessEnv = {}) {
    const when = new Date(START + this.day * DAY);
    if (this.day > 0) await mutate(this.ws.src, this.r, this.day, when);
    this.day++;
    const b = await this.ws.run(['backup', '-c', this.ws.config, '--now', when.toISOString(), '--json'], { ...this.env, ...extraEnv }, { timeoutMs: 180_000 });
    const json = JSON.parse(b.stdout || '{"targets":[]}') as BackupJson;
    for (const t of json.targets) if (t.status === 'committed' && t.id) this.expected.set(t.id, await snapshotTree(this.ws.src));
    return { ...b, json };
  }

  async points(target: string): Promise<string[]> {
    const l = await this.ws.run(['list', '-c', this.ws.config, '--json'], this.env);
    expect(l.code, l.stderr).toBe(0);
    return (JSON.parse(l.stdout) as ListJson).points.filter((p) => p.target === target).map((p) => p.id);
  }

  /** Only generations whose backup said "committed" are listed. */
  async expectNoPartial(target: string): Promise<void> {
    for (const id of await this.points(target)) expect(this.expected.has(id), `${id} listed but never committed`).toBe(true);
  }

  async restoreAll(target: string): Promise<void> {
    const ids = await this.points(target);
    expect(ids.length).toBeGreaterThan(0);
    for (const id of ids) {
      const to = path.join(this.ws.dir, `r-${target}-${id}`);
      const r = await this.ws.run(['restore', '-c', this.ws.config, '--target', target, '--at', id, '--to', to], this.env, { timeoutMs: 120_000 });
      expect(r.code, `${id}: ${r.stderr}`).toBe(0);
      expect(diffTrees(this.expected.get(id)!, await snapshotTree(to)), id).toEqual([]);
      await fsp.rm(to, { recursive: true, force: true });
    }
  }
}

/** Starts a backup in the background, to be killed. */
function backgroundBackup(ws: Workspace, env: NodeJS.ProcessEnv, now: string) {
  const child = spawn(process.execPath, [BIN, 'backup', '-c', ws.config, '--now', now], {
    cwd: ws.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...ws.env, ...env },
    stdio: 'ignore',
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, exited };
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const met = (proxy: FaultProxy, kind: string) => proxy.requests.filter((r) => r.fault === kind).length;

describe('faults between cerberus and WebDAV (Apache mod_dav behind a fault proxy)', () => {
  let dav: ApacheServer;
  let proxy: FaultProxy;
  let ws: Workspace;
  let h: History;

  beforeAll(async () => {
    dav = await startApache();
    proxy = await startFaultProxy(dav.url);
    ws = await workspace({ volumeSize: '16KiB' });
    await useTargets(ws, [
      `      - { name: dav, type: webdav, url: "${proxy.url}", username: \${DAV_USER}, password: \${DAV_PASSWORD}, path: backups, verify: readback, retries: 2, timeout: 2s }`,
    ]);
    h = new History(ws, { DAV_USER: dav.username, DAV_PASSWORD: dav.password, CERBERUS_RETRY_BASE_MS: '20' });
    await h.seed();
    expect((await ws.run(['init', '-c', ws.config], h.env)).code).toBe(0);
  });
  afterAll(async () => {
    await proxy?.stop();
    await dav?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  const recovered: Array<[string, Fault, RegExp]> = [
    ['a connection reset in the middle of a PUT', { kind: 'reset-mid-body', afterBytes: 4000, method: 'PUT', path: VOLUME }, /retry 1 of 2/],
    ['a 500', { kind: 'status', status: 500, method: 'PUT', path: VOLUME }, /HTTP 500\); retry 1 of 2/],
    ['a 503', { kind: 'status', status: 503, method: 'PUT', path: /manifest\.json\.gpg/ }, /HTTP 503\); retry 1 of 2/],
    ['a 429 with Retry-After: 1', { kind: 'status', status: 429, headers: { 'Retry-After': '1' }, method: 'PUT', path: VOLUME }, /HTTP 429\); retry 1 of 2 in 1\.\ds/],
    ['a response that stalls past the timeout', { kind: 'stall', method: 'PUT', path: VOLUME }, /no response for 2s\); retry 1 of 2/],
    ['a read-back whose body is altered', { kind: 'alter-response', method: 'GET', path: VOLUME }, /stored different bytes|does not match|retry 1 of 2/],
    ['a read-back whose body is truncated', { kind: 'truncate-response', afterBytes: 1000, method: 'GET', path: VOLUME }, /retry 1 of 2|resuming/],
  ];
  for (const [name, fault, logged] of recovered) {
    it(`${name}: completes after a retry`, async () => {
      const before = proxy.requests.length;
      proxy.faults.push({ ...fault });
      const b = await h.backup();
      expect(b.code, b.stderr).toBe(0);
      expect(proxy.requests.slice(before).some((r) => r.fault === fault.kind), 'the fault was met').toBe(true);
      expect(b.stderr).toMatch(logged);
      await h.expectNoPartial('dav');
    });
  }

  it('a 401: ends 1 at once, naming the target and the cause; the next run succeeds', async () => {
    const before = proxy.requests.length;
    proxy.faults.push({ kind: 'status', status: 401, times: Infinity });
    const b = await h.backup();
    proxy.faults.length = 0;
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/target dav: .*401 Unauthorized \(check the credentials and permissions of target dav\)/);
    expect(b.stderr).not.toContain(dav.password);
    // no retries on 401: the first refusal ends it
    expect(proxy.requests.length - before).toBeLessThanOrEqual(2);
    await h.expectNoPartial('dav');
    expect((await h.backup()).code).toBe(0);
  });

  it('a server that keeps failing: ends 1 after the retries, no partial generation; the next run succeeds', async () => {
    const points = await h.points('dav');
    proxy.faults.push({ kind: 'status', status: 503, method: 'PUT', path: VOLUME, times: Infinity });
    const b = await h.backup();
    proxy.faults.length = 0;
    expect(b.code).toBe(1);
    expect(b.json.targets[0]).toMatchObject({ target: 'dav', status: 'failed' });
    expect(b.stderr).toMatch(/target dav: .*HTTP 503 \(gave up after 3 attempts\)/);
    expect(await h.points('dav')).toEqual(points);
    expect(fs.readdirSync(dav.dataDir, { recursive: true }).map(String).filter((p) => /\.incomplete-|\.tmp-/.test(p))).toEqual([]);
    expect((await h.backup()).code).toBe(0);
  });

  it('kill -9 in the middle of an upload: nothing visible, the lock is taken over, the next run succeeds', async () => {
    const points = await h.points('dav');
    proxy.faults.push({ kind: 'stall', method: 'PUT', path: VOLUME });
    const { child, exited } = backgroundBackup(ws, { ...h.env, CERBERUS_RETRY_BASE_MS: '20' }, new Date(START + 40 * DAY).toISOString());
    await until('the stalled upload', () => met(proxy, 'stall') > 0 && proxy.requests.at(-1)?.fault === 'stall');
    child.kill('SIGKILL');
    await exited;
    proxy.faults.length = 0;
    expect(await h.points('dav')).toEqual(points);
    const next = await h.backup();
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toMatch(/lock/i);
  });

  it('kill -9 in the middle of a commit: nothing visible; the next run succeeds and clears the leftover', async () => {
    const points = await h.points('dav');
    proxy.faults.push({ kind: 'stall', method: 'MOVE', path: /\.incomplete-/ });
    const { child, exited } = backgroundBackup(ws, h.env, new Date(START + 41 * DAY).toISOString());
    await until('the stalled commit', () => proxy.requests.some((r) => r.method === 'MOVE' && r.fault === 'stall'));
    child.kill('SIGKILL');
    await exited;
    proxy.faults.length = 0;
    expect(await h.points('dav')).toEqual(points);
    expect(fs.readdirSync(dav.dataDir, { recursive: true }).map(String).some((p) => p.includes('.incomplete-'))).toBe(true);
    const next = await h.backup();
    expect(next.code, next.stderr).toBe(0);
    // the next run's prune clears the dead run's folder
    expect(fs.readdirSync(dav.dataDir, { recursive: true }).map(String).filter((p) => p.includes('.incomplete-'))).toEqual([]);
  });

  it('every restore point restores bit-exactly, also when a download breaks mid-way', async () => {
    proxy.faults.push({ kind: 'truncate-response', afterBytes: 3000, method: 'GET', path: VOLUME, times: 2 });
    await h.restoreAll('dav');
    expect(met(proxy, 'truncate-response')).toBeGreaterThan(0);
    const v = await ws.run(['verify', '-c', ws.config, '--full'], h.env, { timeoutMs: 180_000 });
    expect(v.code, v.stderr).toBe(0);
  }, 300_000);

  it('a download altered on every read: restore ends 1 naming the damage, writes nothing', async () => {
    proxy.faults.push({ kind: 'alter-response', method: 'GET', path: VOLUME, times: Infinity });
    const to = path.join(ws.dir, 'altered');
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to], h.env, { timeoutMs: 120_000 });
    proxy.faults.length = 0;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/data\.tar\.gpg\.\d{4}.*(does not match|SHA256SUMS)/);
    expect(fs.existsSync(to) ? fs.readdirSync(to).filter((n) => !n.startsWith('.cerberus-restore-')) : []).toEqual([]);
  });
});

describe('faults between cerberus and S3 (s3rver behind a fault proxy)', () => {
  let s3: S3Server;
  let proxy: FaultProxy;
  let ws: Workspace;
  let h: History;

  beforeAll(async () => {
    s3 = await startS3rver({ bucket: 'backups' });
    proxy = await startFaultProxy(s3.endpoint);
    ws = await workspace({ volumeSize: '16KiB' });
    await useTargets(ws, [
      `      - { name: s3, type: s3, endpoint: "${proxy.url}", bucket: backups, prefix: docs, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET}, retries: 2, timeout: 2s }`,
    ]);
    h = new History(ws, { S3_KEY: s3.accessKeyId, S3_SECRET: s3.secretAccessKey, CERBERUS_RETRY_BASE_MS: '20' });
    await h.seed();
    expect((await ws.run(['init', '-c', ws.config], h.env)).code).toBe(0);
  });
  afterAll(async () => {
    await proxy?.stop();
    await s3?.stop();
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('resets, 503s, a stall and a 429 on uploads: completes after retries', async () => {
    proxy.faults.push(
      { kind: 'reset-mid-body', afterBytes: 4000, method: 'PUT', path: VOLUME },
      { kind: 'status', status: 503, method: 'PUT', path: /info\.json/ },
      { kind: 'status', status: 429, headers: { 'Retry-After': '1' }, method: 'PUT', path: /manifest/ },
      { kind: 'stall', method: 'PUT', path: /SHA256SUMS/ },
    );
    const b = await h.backup();
    expect(b.code, b.stderr).toBe(0);
    expect(proxy.faults).toEqual([]);
    await h.expectNoPartial('s3');
  });

  it('403 from the server: ends 1 at once naming the target; the next run succeeds', async () => {
    proxy.faults.push({ kind: 'status', status: 403, times: Infinity, body: '<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>', headers: { 'Content-Type': 'application/xml' } });
    const b = await h.backup();
    proxy.faults.length = 0;
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/target s3: .*(403|Access ?Denied)/i);
    expect((await h.backup()).code).toBe(0);
  });

  it('kill -9 before SHA256SUMS is written (S3 has no move): the generation is never visible', async () => {
    const points = await h.points('s3');
    proxy.faults.push({ kind: 'stall', method: 'PUT', path: /SHA256SUMS/ });
    const { child, exited } = backgroundBackup(ws, h.env, new Date(START + 40 * DAY).toISOString());
    await until('the stalled commit marker', () => proxy.requests.some((r) => r.fault === 'stall'));
    child.kill('SIGKILL');
    await exited;
    proxy.faults.length = 0;
    expect(await h.points('s3')).toEqual(points);
    const next = await h.backup();
    expect(next.code, next.stderr).toBe(0);
  });

  it('every restore point restores bit-exactly, also when downloads break', async () => {
    proxy.faults.push({ kind: 'truncate-response', afterBytes: 2000, method: 'GET', path: VOLUME, times: 2 });
    await h.restoreAll('s3');
    expect(met(proxy, 'truncate-response')).toBe(2);
  }, 300_000);
});

describe('a local target whose disk fills up', () => {
  let ws: Workspace;
  let mounted = false;
  beforeAll(async () => {
    ws = await workspace({ volumeSize: '64KiB' });
    await fsp.mkdir(ws.repo, { recursive: true });
    try {
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', ws.repo], { stdio: 'pipe' });
      mounted = true;
    } catch (err) {
      throw new Error(`cannot mount a small tmpfs for the disk-full test (run the tests as root, as CI does): ${String(err)}`);
    }
  });
  afterAll(async () => {
    if (mounted) execFileSync('umount', [ws.repo]);
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('ends 1 naming the target and the full disk, leaves no partial generation, and succeeds once there is room', async () => {
    const h = new History(ws, {});
    await h.seed();
    for (let i = 0; i < 6; i++) await fsp.writeFile(path.join(ws.src, `big ${i}.bin`), rng(i).bytes(60_000));
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    const b = await h.backup();
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/target usb: .*ENOSPC.*\(free some space on that disk\)/);
    await h.expectNoPartial('usb');
    expect(fs.readdirSync(ws.repo, { recursive: true }).map(String).filter((p) => /\.incomplete-|\.tmp-/.test(p))).toEqual([]);
    execFileSync('mount', ['-o', 'remount,size=16m', ws.repo]);
    const next = await h.backup();
    expect(next.code, next.stderr).toBe(0);
    await h.restoreAll('usb');
  });
});
