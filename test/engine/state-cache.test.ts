import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StateCache, type HashRecord } from '../../src/engine/state-cache.js';

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
