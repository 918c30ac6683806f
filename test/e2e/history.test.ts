import fsp from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cerberus, diffTrees, snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';
import { listFiles, mutate, rng } from '../helpers/history.js';

/**
 * 400 simulated days of a changing document folder, one backup a day with --now, pruning
 * after each. The daily loop calls the built CLI's main() in-process (the same argv parsing
 * and code as the binary, without 400 process starts); the final checks spawn the binary.
 */

const DAYS = 400;
const START = Date.UTC(2025, 9, 1, 2, 0, 0); // 2025-10-01 02:00 UTC: the first run of a quarter
const POLICY = { daily: 7, weekly: 5, monthly: 12, quarterly: 8 };
/** every remaining restore point is restored in full on these days, and at the end */
const FULL_CHECK_EVERY = 40;
/** a new daily point is restored at once on these days (every new weekly, monthly, quarterly one always) */
const NEW_DAILY_CHECK_EVERY = 5;

type Main = (argv: string[], ctx: { env: NodeJS.ProcessEnv; stdout: Writable; stderr: Writable; cwd: string }) => Promise<number>;

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer, _e: BufferEncoding, cb: () => void) {
    this.text += chunk.toString();
    cb();
  }
}

interface ListedPoint {
  id: string;
  level: string;
  parent: string | null;
  state: string;
}

describe('a 400-day history', () => {
  let ws: Workspace;
  let main: Main;
  const expected = new Map<string, Map<string, TreeEntry>>();
  const created: Record<string, number> = { daily: 0, weekly: 0, monthly: 0, quarterly: 0 };
  let restores = 0;

  const call = async (argv: string[]) => {
    const stdout = new Sink();
    const stderr = new Sink();
    const code = await main(argv, { env: { ...ws.env, TZ: 'UTC' }, stdout, stderr, cwd: ws.dir });
    return { code, stdout: stdout.text, stderr: stderr.text };
  };

  let checks = 0;
  const restoreAndCompare = async (id: string) => {
    const want = expected.get(id)!;
    // a folder of its own: the same point may be restored by a day's check and a full check at once
    const to = path.join(ws.dir, `restore-check-${id}-${checks++}`);
    const r = await call(['restore', '-c', ws.config, '--at', id, '--to', to]);
    expect(r.code, `restore ${id}: ${r.stderr}`).toBe(0);
    expect(diffTrees(want, await snapshotTree(to)), `restore point ${id}`).toEqual([]);
    await fsp.rm(to, { recursive: true, force: true });
    restores++;
  };

  beforeAll(async () => {
    // an unprotected key: the passphrase's key stretching would dominate a thousand restores
    ws = await workspace({ volumeSize: '16KiB', keygen: false });
    expect((await ws.run(['keygen', '--out', 'keys', '--no-passphrase'])).code).toBe(0);
    main = ((await import(path.join(path.dirname(BIN), '../cli/main.js'))) as { main: Main }).main;
    expect((await call(['init', '-c', ws.config])).code).toBe(0);
    const r = rng(20261122);
    for (let i = 0; i < 30; i++) {
      const dir = path.join(ws.src, r.pick(['', 'letters', 'invoices/2025', 'scans']));
      await fsp.mkdir(dir, { recursive: true });
      await fsp.writeFile(path.join(dir, `seed-${i}.txt`), r.bytes(r.int(0, 4000)));
    }
    await fsp.mkdir(path.join(ws.src, 'empty'), { recursive: true });
  });

  afterAll(async () => {
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
  });

  it('backs up every day, prunes, and every remaining point restores bit-exactly', async () => {
    const r = rng(42);
    // a new point is restored while the next day is backed up (a restore takes no lock, and the
    // newest point of its level outlives the next day's prune); one such restore at a time
    let checking: Promise<{ err: unknown } | undefined> = Promise.resolve(undefined);
    const settle = async () => {
      const done = await checking;
      checking = Promise.resolve(undefined);
      if (done) throw done.err;
    };
    for (let day = 0; day < DAYS; day++) {
      const when = new Date(START + day * 86_400_000 + r.int(0, 3600) * 1000);
      if (day > 0) await mutate(ws.src, r, day, when);
      const snapshot = await snapshotTree(ws.src);

      const b = await call(['backup', '-c', ws.config, '--now', when.toISOString(), '--json']);
      expect(b.code, `day ${day}: ${b.stderr}`).toBe(0);
      const result = JSON.parse(b.stdout) as { targets: Array<{ id: string; level: string; status: string }> };
      const t = result.targets[0]!;
      expect(t.status).toBe('committed');
      expected.set(t.id, snapshot);
      created[t.level] = (created[t.level] ?? 0) + 1;

      const l = await call(['list', '-c', ws.config, '--json']);
      const points = (JSON.parse(l.stdout) as { points: ListedPoint[] }).points;
      const ids = new Set(points.map((p) => p.id));
      for (const id of [...expected.keys()]) if (!ids.has(id)) expected.delete(id);
      // after every prune: every remaining point's chain is whole
      for (const p of points) {
        expect(p.state).toBe('committed');
        if (p.parent) expect(ids.has(p.parent), `${p.id} lost its parent ${p.parent}`).toBe(true);
      }
      // the full checks below restore every point that is still kept; this catches one that is
      // broken from the start even if it is pruned before then (sampled: the suite's time is bounded)
      if (t.level !== 'daily' || day % NEW_DAILY_CHECK_EVERY === 0) {
        await settle();
        checking = restoreAndCompare(t.id).then(() => undefined, (err: unknown) => ({ err }));
      }
      if (day % 50 === 0) {
        const n = (await listFiles(ws.src)).length;
        console.log(`day ${day}: ${n} files, ${points.length} points, ${restores} restores, ${Math.round(performance.now() / 1000)} s`);
      }
      if (day % FULL_CHECK_EVERY === FULL_CHECK_EVERY - 1 || day === DAYS - 1) {
        // restores are mostly waiting on the file system: four at a time
        for (let i = 0; i < points.length; i += 4) await Promise.all(points.slice(i, i + 4).map((p) => restoreAndCompare(p.id)));
      }
    }
    await settle();

    const final = (JSON.parse((await call(['list', '-c', ws.config, '--json'])).stdout) as { points: ListedPoint[] }).points;
    const counts: Record<string, number> = {};
    for (const p of final) counts[p.level] = (counts[p.level] ?? 0) + 1;
    for (const [level, n] of Object.entries(POLICY)) {
      expect(counts[level] ?? 0, `${level}: created ${created[level]}`).toBe(Math.min(n, created[level] ?? 0));
    }
    // the simulation must have exercised every level and pruning
    expect(created.quarterly).toBeGreaterThanOrEqual(5);
    expect(created.monthly).toBeGreaterThanOrEqual(8);
    expect(created.weekly).toBeGreaterThan(POLICY.weekly);
    expect(created.daily).toBeGreaterThan(POLICY.daily);
    expect(restores).toBeGreaterThan(DAYS / NEW_DAILY_CHECK_EVERY + 30 * (DAYS / FULL_CHECK_EVERY) * 0.5);
  }, 1_500_000);

  it('restores a point chosen by date with the built binary, bit-exactly', async () => {
    const points = (JSON.parse((await call(['list', '-c', ws.config, '--json'])).stdout) as { points: ListedPoint[] }).points;
    const monthly = points.find((p) => p.level === 'monthly');
    expect(monthly).toBeDefined();
    const day = monthly!.id.slice(0, 10);
    const to = path.join(ws.dir, 'by-date');
    const r = await cerberus(['restore', '-c', ws.config, '--at', day, '--to', to], { cwd: ws.dir, env: ws.env });
    expect(r.code, r.stderr).toBe(0);
    // the newest point on or before that day
    const want = points.filter((p) => p.id.slice(0, 10) <= day).at(-1)!;
    expect(r.stdout).toContain(want.id);
    expect(diffTrees(expected.get(want.id)!, await snapshotTree(to))).toEqual([]);
  }, 120_000);

  it('passes verify and verify --full', async () => {
    const quick = await cerberus(['verify', '-c', ws.config], { cwd: ws.dir, env: ws.env });
    expect(quick.code, quick.stderr).toBe(0);
    const full = await cerberus(['verify', '-c', ws.config, '--full'], { cwd: ws.dir, env: ws.env });
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/no problems/);
  }, 300_000);
});
