import fsp from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { diffTrees, snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';

/**
 * A run that looks like an unmounted disk, a mass deletion or ransomware is committed but
 * marked suspicious, ends with exit 3, and prunes nothing, though retention would.
 */

interface Point {
  id: string;
  level: string;
  state: string;
  suspicious: string[];
}

const FILES = 20;
// tight retention, so that a normal run prunes: only the newest daily stays
const RETENTION = '    retention: { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0s }';

async function setUp(): Promise<{ ws: Workspace; before: Map<string, TreeEntry>; lastGood: string }> {
  const ws = await workspace({ yamlExtra: RETENTION });
  expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
  for (let i = 0; i < FILES; i++) await fsp.writeFile(path.join(ws.src, `doc-${i}.txt`), `document ${i}\n`.repeat(50));
  for (const day of ['2026-01-01', '2026-01-02', '2026-01-03']) {
    const r = await ws.run(['backup', '-c', ws.config, '--now', `${day}T02:00:00Z`]);
    expect(r.code, r.stderr).toBe(0);
  }
  const points = await list(ws);
  // the normal run on day 3 pruned day 2's daily
  expect(points.map((p) => `${p.level} ${p.id}`)).toEqual(['quarterly 2026-01-01T020000Z', 'daily 2026-01-03T020000Z']);
  return { ws, before: await snapshotTree(ws.src), lastGood: '2026-01-03T020000Z' };
}

async function list(ws: Workspace): Promise<Point[]> {
  const r = await ws.run(['list', '-c', ws.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { points: Point[] }).points;
}

async function expectSuspiciousRun(ws: Workspace, lastGood: string, before: Map<string, TreeEntry>, reason: RegExp) {
  const r = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-04T02:00:00Z', '--json']);
  expect(r.code, r.stderr).toBe(3);
  const result = JSON.parse(r.stdout) as { targets: Array<{ status: string; suspicious: string[]; pruned: string[] }> };
  expect(result.targets[0]!.status).toBe('committed');
  expect(result.targets[0]!.suspicious.join('; ')).toMatch(reason);
  expect(result.targets[0]!.pruned).toEqual([]);
  expect(r.stderr).toMatch(/suspicious; nothing was pruned/);

  const points = await list(ws);
  expect(points.map((p) => `${p.level} ${p.id} ${p.state}`)).toEqual([
    'quarterly 2026-01-01T020000Z committed',
    `daily ${lastGood} committed`, // retention would have removed it
    'daily 2026-01-04T020000Z suspicious',
  ]);

  // prune on its own refuses too, until told otherwise
  const p = await ws.run(['prune', '-c', ws.config, '--now', '2026-01-04T03:00:00Z']);
  expect(p.code).toBe(2);
  expect(p.stderr).toMatch(/suspicious/);
  expect((await list(ws)).length).toBe(3);

  // "latest" skips the suspicious point and brings back the last good state
  const to = path.join(ws.dir, 'restored');
  const rr = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]);
  expect(rr.code, rr.stderr).toBe(0);
  expect(rr.stderr).toMatch(/skipping the suspicious restore point/);
  expect(diffTrees(before, await snapshotTree(to))).toEqual([]);
}

describe('guards', () => {
  let ws: Workspace | undefined;
  afterEach(async () => {
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('an emptied source commits a suspicious generation and prunes nothing', async () => {
    const s = await setUp();
    ws = s.ws;
    for (const f of await fsp.readdir(ws.src)) await fsp.rm(path.join(ws.src, f));
    await expectSuspiciousRun(ws, s.lastGood, s.before, /fewer than guards\.minFiles|file count fell by 100/);
  }, 120_000);

  it('a missing source root commits a suspicious generation and prunes nothing', async () => {
    const s = await setUp();
    ws = s.ws;
    await fsp.rename(ws.src, path.join(ws.dir, 'unmounted'));
    await expectSuspiciousRun(ws, s.lastGood, s.before, /source root .* is missing/);
  }, 120_000);

  it('a halved source commits a suspicious generation and prunes nothing', async () => {
    const s = await setUp();
    ws = s.ws;
    for (let i = 0; i < FILES / 2; i++) await fsp.rm(path.join(ws.src, `doc-${i}.txt`));
    await expectSuspiciousRun(ws, s.lastGood, s.before, /file count fell by 50 %/);
  }, 120_000);

  it('60 % of files rewritten commits a suspicious generation and prunes nothing', async () => {
    const s = await setUp();
    ws = s.ws;
    for (let i = 0; i < (FILES * 6) / 10; i++) {
      await fsp.writeFile(path.join(ws.src, `doc-${i}.txt`), Buffer.alloc(2000, 0xa5)); // "encrypted"
    }
    await expectSuspiciousRun(ws, s.lastGood, s.before, /60 % of the files changed/);
  }, 120_000);

  it('a normal day after a suspicious one is clean again and prunes', async () => {
    const s = await setUp();
    ws = s.ws;
    for (let i = 0; i < FILES / 2; i++) await fsp.rm(path.join(ws.src, `doc-${i}.txt`));
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-01-04T02:00:00Z'])).code).toBe(3);
    await fsp.writeFile(path.join(ws.src, 'new.txt'), 'one more\n');
    // later the same day: a daily again (a new ISO week would make a weekly)
    const r = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-04T05:00:00Z']);
    expect(r.code, r.stderr).toBe(0);
    // the suspicious daily took none of the daily places, and is gone now that it is old
    expect((await list(ws)).map((p) => `${p.level} ${p.state}`)).toEqual(['quarterly committed', 'daily committed']);
  }, 120_000);
});
