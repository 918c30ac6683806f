import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SourceEntry } from '../../src/engine/walk.js';
import { readTar, TarPacker } from '../../src/formats/tar.js';
import { archiveLargeFile } from '../../src/jobs/archive-file.js';

let tmp: string;
beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerb-archive-file-'));
});
afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const entryOf = async (abs: string): Promise<SourceEntry> => {
  const st = await fsp.lstat(abs, { bigint: true });
  return {
    path: path.basename(abs), abs, type: 'file', size: Number(st.size), mtimeNs: st.mtimeNs.toString(), ctimeNs: st.ctimeNs.toString(),
    ino: `${st.dev}:${st.ino}`, mode: Number(st.mode & 0o7777n), uid: 0, gid: 0,
  };
};

/** Archives one file; `onChunk` runs where the backup waits for the encryption to take more. */
async function archive(abs: string, onChunk: (n: number) => Promise<void> = async () => undefined) {
  const out: Buffer[] = [];
  const tar = new TarPacker((b) => out.push(Buffer.from(b)));
  let chunks = 0;
  const message = { ready: () => onChunk(++chunks) };
  let stored = 0;
  const got = await archiveLargeFile(await entryOf(abs), tar, message, (n) => (stored += n));
  tar.finish();
  const entries: Array<{ path: string; size: number; data: Buffer }> = [];
  await readTar(Readable.from([Buffer.concat(out)]), async (e) => {
    const data: Buffer[] = [];
    for await (const c of e.body) data.push(c as Buffer);
    entries.push({ path: e.path, size: e.size, data: Buffer.concat(data) });
  });
  return { got, entries, stored, chunks };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('archiveLargeFile', () => {
  it('streams a file in 1 MiB reads into one tar entry, with its sha256', async () => {
    const data = randomBytes(3.5 * 2 ** 20);
    const f = path.join(tmp, 'big.bin');
    await fsp.writeFile(f, data);
    const r = await archive(f);
    expect(r.got).toMatchObject({ size: data.length, sha256: sha(data), stable: true });
    expect(r.stored).toBe(data.length);
    expect(r.chunks).toBe(4);
    expect(r.entries).toHaveLength(1);
    expect(r.entries[0]!.data.equals(data)).toBe(true);
  });

  it('pads a file that shrinks while read with zeros, keeps the archive aligned and says it was not stable', async () => {
    const data = randomBytes(3 * 2 ** 20);
    const f = path.join(tmp, 'shrinks.bin');
    await fsp.writeFile(f, data);
    const r = await archive(f, async (n) => {
      if (n === 1) await fsp.truncate(f, 1.5 * 2 ** 20);
    });
    expect(r.got!.stable).toBe(false);
    expect(r.got!.size).toBe(data.length);
    const back = r.entries[0]!.data;
    expect(back.length).toBe(data.length);
    // the second read may have been under way already when the file shrank
    expect(back.subarray(0, 2 ** 20).equals(data.subarray(0, 2 ** 20))).toBe(true);
    expect(back.subarray(2 * 2 ** 20).every((b) => b === 0)).toBe(true);
    expect(r.got!.sha256).toBe(sha(back));
  });

  it('cuts a file that grows while read at the size it had when opened', async () => {
    const data = randomBytes(2 * 2 ** 20 + 5);
    const f = path.join(tmp, 'grows.bin');
    await fsp.writeFile(f, data);
    const r = await archive(f, async (n) => {
      if (n === 1) await fsp.appendFile(f, randomBytes(100_000));
    });
    expect(r.got).toMatchObject({ size: data.length, stable: false, sha256: sha(data) });
    expect(r.entries[0]!.data.equals(data)).toBe(true);
  });

  it('is undefined for a file gone before it is opened, and writes nothing', async () => {
    const f = path.join(tmp, 'gone.bin');
    await fsp.writeFile(f, 'x');
    const e = await entryOf(f);
    await fsp.rm(f);
    const out: Buffer[] = [];
    const message = { ready: async () => undefined };
    expect(await archiveLargeFile(e, new TarPacker((b) => out.push(b)), message, () => undefined)).toBeUndefined();
    expect(out).toHaveLength(0);
  });
});
