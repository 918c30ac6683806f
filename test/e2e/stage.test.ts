import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { diffTrees, snapshotTree, workspace, type TreeEntry, type Workspace } from '../helpers/cli.js';

/**
 * A local stage with `snapshots: hardlink`: every generation is a plain, complete folder tree,
 * unchanged files are hard links to the generation before, and retention may delete any
 * generation without touching another.
 */

const DAY = 86_400_000;
const START = Date.parse('2025-12-03T03:00:00Z'); // day 30 is 2026-01-01: two quarters

interface Kept {
  level: string;
  id: string;
}

async function stageWorkspace(retention = '{ daily: 7, weekly: 5, monthly: 12, quarterly: 8, keepWithin: 0s }'): Promise<Workspace> {
  const ws = await workspace({ keygen: false });
  await fsp.writeFile(
    ws.config,
    [
      'jobs:',
      '  docs:',
      '    source: { paths: [src] }',
      '    encryption: { kind: openpgp, passphrase: ${PASS} }',
      '    targets:',
      '      - { name: usb, type: local, path: stage, snapshots: hardlink }',
      `    retention: ${retention}`,
      '    guards: { maxChanged: 100%, maxShrink: 100% }',
      '    timezone: UTC',
    ].join('\n') + '\n',
  );
  ws.env.PASS = 'unused: a plain stage needs no key';
  const r = await ws.run(['init', '-c', ws.config]);
  expect(r.code, r.stderr).toBe(0);
  return ws;
}

const idOf = (ms: number) => new Date(ms).toISOString().replace(/:/g, '').replace(/\.\d+Z$/, 'Z');

async function list(ws: Workspace): Promise<Kept[]> {
  const r = await ws.run(['list', '-c', ws.config, '--json']);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { points: Kept[] }).points;
}

/** Inode of every file of a generation's tree, by path. */
async function inodes(dir: string): Promise<Map<string, { ino: bigint; size: bigint }>> {
  const out = new Map<string, { ino: bigint; size: bigint }>();
  const walk = async (d: string, rel: string) => {
    for (const e of await fsp.readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(path.join(d, e.name), r);
      else if (e.isFile()) {
        const st = await fsp.stat(path.join(d, e.name), { bigint: true });
        out.set(r, { ino: st.ino, size: st.size });
      }
    }
  };
  await walk(dir, '');
  return out;
}

/** Bytes of distinct inodes under the stage's generations: what the disk really holds for them. */
async function distinctBytes(stage: string, kept: Kept[]): Promise<bigint> {
  const seen = new Map<bigint, bigint>();
  for (const k of kept) for (const { ino, size } of (await inodes(path.join(stage, k.level, k.id, 'files'))).values()) seen.set(ino, size);
  return [...seen.values()].reduce((a, b) => a + b, 0n);
}

describe('plain stage (snapshots: hardlink)', () => {
  it('30 days: complete trees, unchanged files shared, growth by the changes only, pruning the oldest harms none', async () => {
    const ws = await stageWorkspace();
    const stage = path.join(ws.dir, 'stage');
    await fsp.mkdir(path.join(ws.src, 'deep/er'), { recursive: true });
    for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(ws.src, i % 2 ? 'deep/er' : '', `doc-${i}.bin`), randomBytes(16 * 1024 + i));
    await fsp.writeFile(path.join(ws.src, 'big.bin'), randomBytes(1 << 20));
    await fsp.symlink('big.bin', path.join(ws.src, 'link'));
    await fsp.chmod(path.join(ws.src, 'doc-0.bin'), 0o640);

    const states = new Map<string, Map<string, TreeEntry>>();
    let previous: { id: string; level: string } | undefined;
    for (let day = 0; day < 30; day++) {
      const now = START + day * DAY;
      if (day > 0) {
        // each day: one file changed, one added; every fifth day one deleted
        const i = day % 20;
        await fsp.writeFile(path.join(ws.src, i % 2 ? 'deep/er' : '', `doc-${i}.bin`), randomBytes(8 * 1024 + day));
        await fsp.writeFile(path.join(ws.src, 'deep', `new-${day}.bin`), randomBytes(4 * 1024 + day));
        if (day % 5 === 0) await fsp.rm(path.join(ws.src, 'deep', `new-${day - 3}.bin`));
      }
      const r = await ws.run(['backup', '-c', ws.config, '--now', new Date(now).toISOString(), '--json']);
      expect(r.code, r.stderr).toBe(0);
      const id = idOf(now);
      states.set(id, await snapshotTree(ws.src, { dirTimes: false }));
      const result = JSON.parse(r.stdout) as { targets: Array<{ level: string; stats: { storedFiles: number; storedBytes: number } }> };
      const level = result.targets[0]!.level;
      const genFiles = path.join(stage, level, id, 'files');

      // a complete tree, equal to the source of that day
      expect(diffTrees(states.get(id)!, await snapshotTree(genFiles, { dirTimes: false })), `day ${day}`).toEqual([]);
      if (previous && fs.existsSync(path.join(stage, previous.level, previous.id))) {
        const before = await inodes(path.join(stage, previous.level, previous.id, 'files'));
        const now_ = await inodes(genFiles);
        // unchanged files share the previous generation's inode; new bytes are what changed
        let fresh = 0n;
        for (const [p, { ino, size }] of now_) {
          const prevState = states.get(previous.id)!.get(p);
          const unchanged = prevState !== undefined && prevState.sha === states.get(id)!.get(p)!.sha && prevState.mtimeUs === states.get(id)!.get(p)!.mtimeUs;
          if (unchanged) expect(ino, `${p} on day ${day}`).toBe(before.get(p)!.ino);
          else {
            expect(ino).not.toBe(before.get(p)?.ino);
            fresh += size;
          }
        }
        expect(Number(fresh)).toBe(result.targets[0]!.stats.storedBytes);
        expect(result.targets[0]!.stats.storedFiles).toBe(2);
      }
      previous = { id, level };
    }

    // the disk holds each distinct file version once: the first full tree plus the changes
    const kept = await list(ws);
    expect(kept.length).toBeGreaterThan(8);
    const bytesBefore = await distinctBytes(stage, kept);
    const fullTree = [...states.get(idOf(START))!.values()].reduce((s, e) => s + (e.size ?? 0), 0);
    expect(Number(bytesBefore)).toBeLessThan(fullTree + 30 * 40 * 1024);

    // every kept point restores bit-exactly
    for (const k of kept) {
      const to = path.join(ws.dir, `restore-${k.id}`);
      const r = await ws.run(['restore', '-c', ws.config, '--at', k.id, '--to', to]);
      expect(r.code, r.stderr).toBe(0);
      expect(diffTrees(states.get(k.id)!, await snapshotTree(to, { dirTimes: false })), k.id).toEqual([]);
      await fsp.rm(to, { recursive: true });
    }

    // prune the oldest (the first quarterly, which every later tree once linked to)
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace('quarterly: 8', 'quarterly: 1'));
    const p = await ws.run(['prune', '-c', ws.config, '--now', new Date(START + 30 * DAY).toISOString()]);
    expect(p.code, p.stderr).toBe(0);
    const after = await list(ws);
    expect(after.map((k) => k.id)).not.toContain(idOf(START));
    expect(after.length).toBeGreaterThan(5);
    for (const k of after) expect(diffTrees(states.get(k.id)!, await snapshotTree(path.join(stage, k.level, k.id, 'files'), { dirTimes: false })), k.id).toEqual([]);
    const v = await ws.run(['verify', '-c', ws.config, '--full']);
    expect(v.code, v.stdout + v.stderr).toBe(0);
  }, 240_000);

  it('a file edited in place in the stage is caught by verify --full and by restore', async () => {
    const ws = await stageWorkspace();
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'original');
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-01-01T03:00:00Z'])).code).toBe(0);
    const file = path.join(ws.dir, 'stage/quarterly/2026-01-01T030000Z/files/a.txt');
    await fsp.writeFile(file, 'tampered');
    const v = await ws.run(['verify', '-c', ws.config, '--full']);
    expect(v.code).toBe(1);
    expect(v.stderr).toMatch(/1 entries of files\/ do not match the manifest, e\.g\. a\.txt: its sha256 differs/);
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', path.join(ws.dir, 'out')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a\.txt in quarterly\/2026-01-01T030000Z does not match the manifest/);
    expect(fs.existsSync(path.join(ws.dir, 'out'))).toBe(false);
  });

  it('beside an encrypted target: the stage is plain, the other is OpenPGP, both restore', async () => {
    const ws = await workspace();
    await fsp.writeFile(
      ws.config,
      (await fsp.readFile(ws.config, 'utf8')).replace('      - { name: usb, type: local, path: repo }', '      - { name: stage, type: local, path: stage, snapshots: hardlink }\n      - { name: usb, type: local, path: repo }'),
    );
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    await fsp.mkdir(path.join(ws.src, 'sub'));
    await fsp.writeFile(path.join(ws.src, 'sub/a.txt'), 'a');
    await fsp.chmod(path.join(ws.src, 'sub'), 0o555);
    const expected = await snapshotTree(ws.src);
    const r = await ws.run(['backup', '-c', ws.config, '--now', '2026-01-01T03:00:00Z']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(await fsp.readFile(path.join(ws.dir, 'stage/cerberus.json'), 'utf8')).kind).toBe('plain');
    expect(JSON.parse(await fsp.readFile(path.join(ws.repo, 'cerberus.json'), 'utf8')).kind).toBe('openpgp');
    for (const target of ['stage', 'usb']) {
      const to = path.join(ws.dir, `out-${target}`);
      const rr = await ws.run(['restore', '-c', ws.config, '--target', target, '--at', 'latest', '--to', to]);
      expect(rr.code, rr.stderr).toBe(0);
      expect(diffTrees(expected, await snapshotTree(to))).toEqual([]);
    }
    // a read-only folder in the stage does not stop its generation from being pruned
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')) + '    retention: { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0s }\n');
    await fsp.chmod(path.join(ws.src, 'sub'), 0o755);
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-04-01T03:00:00Z'])).code).toBe(0);
    expect(fs.existsSync(path.join(ws.dir, 'stage/quarterly/2026-01-01T030000Z'))).toBe(false);
  });

  it('the yearly export from a stage needs no private key', async () => {
    const ws = await workspace();
    await fsp.writeFile(
      ws.config,
      (await fsp.readFile(ws.config, 'utf8')).replace('      - { name: usb, type: local, path: repo }', '      - { name: stage, type: local, path: stage, snapshots: hardlink }') +
        '    export: { password: "${EXPORT_PASSWORD}" }\n',
    );
    expect((await ws.run(['init', '-c', ws.config])).code).toBe(0);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    expect((await ws.run(['backup', '-c', ws.config, '--now', '2026-06-01T03:00:00Z'])).code).toBe(0);
    const r = await ws.run(['export', '-c', ws.config, '--from', 'latest', '--to', 'cold', '--year', '2026', '--now', '2026-12-31T12:00:00Z'], {
      EXPORT_PASSWORD: 'cold pw',
      CERBERUS_PRIVATE_KEY_FILE: path.join(ws.dir, 'no-such-key.asc'),
    });
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readdirSync(path.join(ws.dir, 'cold')).some((f) => f.endsWith('.7z') || f.includes('.7z.'))).toBe(true);
  });

  it('a plain target of an encrypted job is refused by the other kind, with the fix', async () => {
    const ws = await stageWorkspace();
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace(', snapshots: hardlink', ''));
    const r = await ws.run(['backup', '-c', ws.config]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/holds a plain repository, but the job's encryption is openpgp \(add snapshots: hardlink to the target/);
  });
});
