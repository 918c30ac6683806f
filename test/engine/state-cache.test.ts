import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StateCache, type HashRecord } from '../../src/engine/state-cache.js';
import type { Manifest, ManifestEntry } from '../../src/engine/manifest.js';
import { changeCounter } from '../../src/jobs/backup-finish.js';

/** The changes of `manifest` since `previous`, its entries seen from a list. */
function changedSince(manifest: Manifest, previous: Manifest): number {
  const counter = changeCounter(manifest);
  for (const e of previous.entries) counter.see(e);
  return counter.count;
}

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerb-state-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const record = (n: number): HashRecord => ({ size: n, mtimeNs: `${n}000`, ctimeNs: `${n}001`, ino: `1:${n}`, sha256: String(n).padStart(64, '0') });

describe('StateCache hashes', () => {
  it('round-trips the hash records, names in any script included', async () => {
    const cache = new StateCache(tmp, 'job', 'repo');
    const hashes = new Map([['/src/a.txt', record(1)], ['/src/Übersicht-März.pdf', record(2)], ['/src/日本語/報告書.txt', record(3)]]);
    await cache.saveHashes(hashes);
    expect(await cache.loadHashes()).toEqual(hashes);
  });

  it('reads the object form older versions wrote, and treats a damaged file as empty', async () => {
    const cache = new StateCache(tmp, 'old', 'repo');
    await fsp.mkdir(cache.jobDir, { recursive: true });
    await fsp.writeFile(path.join(cache.jobDir, 'hashes.json'), JSON.stringify({ '/src/a.txt': record(1) }));
    expect(await cache.loadHashes()).toEqual(new Map([['/src/a.txt', record(1)]]));
    await fsp.writeFile(path.join(cache.jobDir, 'hashes.json'), '[["/src/a.txt", {"size"');
    expect((await cache.loadHashes()).size).toBe(0);
  });
});

describe('StateCache manifests', () => {
  const ID = '2026-11-22T030012Z';
  const file = (p: string, sha: string): ManifestEntry => ({ path: p, type: 'file', size: 1, mtimeNs: '1', mode: 0o644, uid: 0, gid: 0, sha256: sha.repeat(64), holder: ID });
  const dirAt = (p: string): ManifestEntry => ({ path: p, type: 'dir', mtimeNs: '1', mode: 0o755, uid: 0, gid: 0 });
  const manifest = (entries: ManifestEntry[]): Manifest => ({
    format: 1, job: 'job', id: ID, level: 'quarterly', parent: null, chain: [ID], createdAt: '2026-11-22T03:00:12.000Z', roots: ['/src'], entries,
    stats: { files: entries.length, dirs: 0, symlinks: 0, bytes: entries.length, storedFiles: 0, storedBytes: 0, deleted: 0 },
  });

  it('round-trips a manifest, and streams its entries without keeping them for a count of changes', async () => {
    const cache = new StateCache(tmp, 'm', 'repo');
    const before = manifest([file('a', 'a'), file('b', 'b'), file('Ü/c', 'c'), file('gone', 'd')]);
    await cache.saveManifest(before);
    expect(await cache.loadManifest(ID)).toEqual(before);
    // the new state: b and Ü/c changed, a kept, gone removed, new added
    const counter = changeCounter(manifest([file('a', 'a'), file('b', 'e'), file('Ü/c', 'f'), file('new', '0')]));
    const seen: string[] = [];
    const head = await cache.loadManifest(ID, (e) => {
      seen.push(e.path);
      counter.see(e);
    });
    expect(head?.entries).toEqual([]);
    expect(head?.stats).toEqual(before.stats);
    expect(seen).toEqual(['a', 'b', 'Ü/c', 'gone']);
    expect(counter.count).toBe(2);
    expect(counter.count).toBe(changedSince(manifest([file('a', 'a'), file('b', 'e'), file('Ü/c', 'f'), file('new', '0')]), before));
    expect(await cache.loadManifest('2026-11-23T030012Z', () => undefined)).toBeUndefined();
  });

  it('counts changes by merging sorted manifests, and the same when either comes out of order', () => {
    const names = Array.from({ length: 400 }, (_, i) => `${['a', 'B', 'ä', 'a/b', '日本', 'z z'][i % 6]}/${(i * 7919) % 1000}`);
    const prev = names.filter((_, i) => i % 5 !== 0).map((p, i) => (i % 13 === 0 ? dirAt(p) : file(p, String(i % 3))));
    const next = names.filter((_, i) => i % 7 !== 0).map((p, i) => file(p, String(i % 4)));
    const naive = () => {
      const now = new Map(next.map((e) => [e.path, e]));
      return prev.filter((e) => e.type === 'file' && now.get(e.path)?.type === 'file' && (now.get(e.path) as { sha256: string }).sha256 !== e.sha256).length;
    };
    const count = (mine: ManifestEntry[], theirs: ManifestEntry[]) => {
      const counter = changeCounter(manifest(mine));
      for (const e of theirs) counter.see(e);
      return counter.count;
    };
    const sorted = (l: ManifestEntry[]) => [...l].sort((x, y) => (x.path < y.path ? -1 : 1));
    expect(naive()).toBeGreaterThan(50);
    expect(count(sorted(next), sorted(prev))).toBe(naive());
    expect(count(next, sorted(prev))).toBe(naive());
    expect(count(sorted(next), prev)).toBe(naive());
    expect(count(sorted(next), [...sorted(prev)].reverse())).toBe(naive());
  });
});
