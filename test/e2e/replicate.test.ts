import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApache, type ApacheServer } from '../helpers/apache.js';
import { diffTrees, snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { webdavTarget } from '../helpers/remote.js';

/**
 * 3-2-1 with a local stage: the backup writes a plain hard-linked stage on the local disk, and
 * the off-site copy (WebDAV on a real Apache) is made from it, encrypted, by `replicate`, also
 * hours later and after an interruption.
 */

const DAY = 86_400_000;
const START = Date.parse('2026-03-02T03:00:00Z');
const idOf = (ms: number) => new Date(ms).toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');

interface Point {
  target: string;
  id: string;
  level: string;
  state: string;
}

async function stagedWorkspace(dav: ApacheServer, extra: string[] = []): Promise<Workspace> {
  const ws = await workspace();
  await fsp.writeFile(
    ws.config,
    [
      'jobs:',
      '  docs:',
      '    source: { paths: [src] }',
      '    encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc] }',
      '    targets:',
      '      - { name: usb, type: local, path: stage, snapshots: hardlink }',
      webdavTarget('dav', dav, ', retries: 0, bwlimit: 1MiB/s').replace('timeout: 20s', 'timeout: 5s').replace('verify: readback', 'verify: size').replace('path: /backups/docs', `path: /replica-${path.basename(ws.dir)}`),
      '    stages: [usb, dav]',
      '    timezone: UTC',
      '    volumeSize: 256KiB',
      ...extra,
    ].join('\n') + '\n',
  );
  Object.assign(ws.env, { DAV_USER: dav.username, DAV_PASSWORD: dav.password });
  const r = await ws.run(['init', '-c', ws.config]);
  expect(r.code, r.stderr).toBe(0);
  return ws;
}

async function points(ws: Workspace, target: string): Promise<Point[]> {
  const r = await ws.run(['list', '-c', ws.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { points: Point[] }).points.filter((p) => p.target === target);
}

describe('replication from a local stage', () => {
  let dav: ApacheServer;
  beforeAll(async () => {
    dav = await startApache();
  });
  afterAll(async () => {
    await dav?.stop();
  });

  it('backup writes the stage, ends maintenance, then copies it off-site encrypted', async () => {
    const ws = await stagedWorkspace(dav, [
      '    hooks:',
      `      afterSnapshot: { run: 'date +%s%N > snapshot-at', shell: true }`,
    ]);
    await fsp.writeFile(path.join(ws.src, 'a.bin'), randomBytes(1536 * 1024));
    const expected = await snapshotTree(ws.src);
    const r = await ws.run(['backup', '-c', ws.config, '--now', new Date(START).toISOString(), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { targets: Array<{ target: string; status: string; id: string }> };
    expect(result.targets.map((t) => `${t.target} ${t.status} ${t.id}`)).toEqual([`usb committed ${idOf(START)}`, `dav committed ${idOf(START)}`]);
    // the off-site copy is OpenPGP; the stage is a plain tree
    const davRepo = fs.readdirSync(dav.dataDir).find((d) => d.startsWith('replica-'))!;
    expect(JSON.parse(fs.readFileSync(path.join(dav.dataDir, davRepo, 'cerberus.json'), 'utf8')).kind).toBe('openpgp');
    expect(fs.existsSync(path.join(ws.dir, 'stage/quarterly', idOf(START), 'files/a.bin'))).toBe(true);
    // maintenance ended with the stage's read, before the slow off-site copy was committed
    const snapshotNs = BigInt(fs.readFileSync(path.join(ws.dir, 'snapshot-at'), 'utf8').trim());
    const committedNs = fs.statSync(path.join(dav.dataDir, davRepo, 'quarterly', idOf(START), 'SHA256SUMS'), { bigint: true }).mtimeNs;
    expect(committedNs - snapshotNs).toBeGreaterThan(500_000_000n);
    // the limit throttles downloads too: the restore needs none
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace(', bwlimit: 1MiB/s', ''));
    const to = path.join(ws.dir, 'out');
    const rr = await ws.run(['restore', '-c', ws.config, '--target', 'dav', '--at', 'latest', '--to', to]);
    expect(rr.code, rr.stderr).toBe(0);
    expect(diffTrees(expected, await snapshotTree(to))).toEqual([]);
  });

  it('resumes after the server went away mid-copy; every point then restores bit-exactly', async () => {
    const ws = await stagedWorkspace(dav);
    const states = new Map<string, Map<string, TreeEntry>>();
    const day = async (n: number, expectCode: number) => {
      await fsp.writeFile(path.join(ws.src, `day-${n}.bin`), randomBytes(1024 * 1024));
      if (n > 1) await fsp.rm(path.join(ws.src, `day-${n - 2}.bin`));
      const now = START + n * DAY;
      const r = await ws.run(['backup', '-c', ws.config, '--now', new Date(now).toISOString()]);
      expect(r.code, r.stderr).toBe(expectCode);
      states.set(idOf(now), await snapshotTree(ws.src));
      return r;
    };
    await day(0, 0);
    // the server is down for four days: the stage goes on, the off-site copy falls behind
    await dav.stop({ keepData: true });
    for (let n = 1; n <= 4; n++) {
      const r = await day(n, 1);
      expect(r.stdout).toMatch(/dav: /);
    }
    await dav.start();
    expect((await points(ws, 'usb')).length).toBe(5);
    expect((await points(ws, 'dav')).length).toBe(1);

    // a later build copies what is missing; the server goes away after the first copy
    const dry = await ws.run(['replicate', '-c', ws.config, '--from', 'usb', '--to', 'dav', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would copy daily\/2026-03-03T030000Z, daily\/2026-03-04T030000Z, daily\/2026-03-05T030000Z, daily\/2026-03-06T030000Z to dav/);
    const { spawn } = await import('node:child_process');
    const { BIN } = await import('../helpers/cli.js');
    const child = spawn(process.execPath, [BIN, 'replicate', '-c', ws.config, '--from', 'usb', '--to', 'dav'], {
      cwd: ws.dir,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...ws.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await expect.poll(() => stderr, { timeout: 60_000, interval: 50 }).toMatch(/copying daily\/2026-03-04T030000Z/);
    await dav.stop({ keepData: true });
    expect(await exited).toBe(1);
    expect(stderr).toMatch(/dav/);
    await dav.start();
    const copiedBefore = (await points(ws, 'dav')).length;
    expect(copiedBefore).toBeGreaterThanOrEqual(2);
    expect(copiedBefore).toBeLessThan(5);
    // the bandwidth limit only made that copy slow enough to cut; it also throttles downloads,
    // and the rest (the catch-up, the restores, verify --full) needs no cut
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace(', bwlimit: 1MiB/s', ''));

    // what a replication killed with SIGKILL would leave: cleared by the next one
    const stale = path.join(ws.dir, 'stage', '.replicating', `2026-03-03T030000Z-${os.hostname()}-4194303`);
    await fsp.mkdir(path.join(stale, 'x'), { recursive: true });
    const again = await ws.run(['replicate', '-c', ws.config, '--from', 'usb', '--to', 'dav']);
    expect(again.code, again.stderr).toBe(0);
    const onDav = await points(ws, 'dav');
    expect(onDav.map((p) => `${p.id} ${p.state}`)).toEqual([...states.keys()].map((id) => `${id} committed`));
    const up = await ws.run(['replicate', '-c', ws.config, '--from', 'usb', '--to', 'dav']);
    expect(up.stdout).toMatch(/dav has every generation of usb/);

    for (const [id, state] of states) {
      const to = path.join(ws.dir, `out-${id}`);
      const rr = await ws.run(['restore', '-c', ws.config, '--target', 'dav', '--at', id, '--to', to]);
      expect(rr.code, rr.stderr).toBe(0);
      expect(diffTrees(state, await snapshotTree(to)), id).toEqual([]);
    }
    const v = await ws.run(['verify', '-c', ws.config, '--full']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
    // nothing of the replication is left in the stage
    expect(fs.readdirSync(path.join(ws.dir, 'stage', '.replicating'))).toEqual([]);
  }, 240_000);

  it('stages are checked in the config', async () => {
    const ws = await workspace({ keygen: false });
    const bad = async (stages: string, target = '      - { name: usb, type: local, path: stage, snapshots: hardlink }') => {
      await fsp.writeFile(
        ws.config,
        ['jobs:', '  docs:', '    source: { paths: [src] }', '    encryption: { kind: openpgp, passphrase: x }', '    targets:', target, '      - { name: disk, type: local, path: repo }', `    stages: ${stages}`].join('\n') + '\n',
      );
      const r = await ws.run(['backup', '-c', ws.config]);
      expect(r.code).toBe(2);
      return r.stderr;
    };
    expect(await bad('[usb, nas]')).toMatch(/stages\[1\]: no target is named "nas" \(targets: usb, disk\)/);
    expect(await bad('[disk, usb]')).toMatch(/stages\[0\]: the first stage must be a local target with snapshots: hardlink/);
    expect(await bad('[usb]')).toMatch(/list at least two targets/);
  });
});

describe('replication into a Cryptomator repository', () => {
  it('a vault job with a plain stage: the vault target is made from the stage, and restores', async () => {
    const ws = await workspace({ keygen: false });
    await fsp.writeFile(
      ws.config,
      [
        'jobs:',
        '  docs:',
        '    source: { paths: [src] }',
        '    encryption: { kind: cryptomator, password: ${VAULT_PASSWORD} }',
        '    targets:',
        '      - { name: usb, type: local, path: stage, snapshots: hardlink }',
        '      - { name: vault, type: local, path: vault }',
        '    stages: [usb, vault]',
        '    timezone: UTC',
      ].join('\n') + '\n',
    );
    ws.env.VAULT_PASSWORD = 'vault pw';
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    await fsp.mkdir(path.join(ws.src, 'sub'));
    await fsp.writeFile(path.join(ws.src, 'sub/a.txt'), 'first');
    await fsp.writeFile(path.join(ws.src, 'b.bin'), randomBytes(100_000));
    const states = new Map<string, Map<string, TreeEntry>>();
    for (const [n, change] of [[0, ''], [1, 'second']] as const) {
      if (change) await fsp.writeFile(path.join(ws.src, 'sub/a.txt'), change);
      const now = START + n * DAY;
      const r = await ws.run(['backup', '-c', ws.config, '--now', new Date(now).toISOString(), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const result = JSON.parse(r.stdout) as { targets: Array<{ target: string; status: string; stats: { storedFiles: number } }> };
      // the second vault generation takes only the changed file
      expect(result.targets.map((t) => `${t.target} ${t.status} ${t.stats.storedFiles}`)).toEqual([`usb committed ${n === 0 ? 2 : 1}`, `vault committed ${n === 0 ? 2 : 1}`]);
      states.set(idOf(now), await snapshotTree(ws.src));
    }
    for (const [id, state] of states) {
      const to = path.join(ws.dir, `out-${id}`);
      const rr = await ws.run(['restore', '-c', ws.config, '--target', 'vault', '--at', id, '--to', to]);
      expect(rr.code, rr.stderr).toBe(0);
      expect(diffTrees(state, await snapshotTree(to)), id).toEqual([]);
    }
  });
});
