import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_VOLUMES, VOLUME_PATTERN, VolumeSink, volumeName, type SpooledVolume } from '../../src/formats/volumes.js';

let spool: string;
beforeEach(async () => {
  spool = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-volumes-'));
});
afterEach(async () => {
  await fsp.rm(spool, { recursive: true, force: true });
});

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Deterministic, non-repeating bytes, so a misplaced cut shows. */
function bytes(n: number): Buffer {
  const b = Buffer.alloc(n);
  let x = 0x12345678;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

function chunked(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  let i = 0;
  while (off < data.length) {
    const n = sizes[i++ % sizes.length]!;
    out.push(data.subarray(off, off + n));
    off += n;
  }
  return out;
}

/** Runs data through a VolumeSink; each volume is read (and removed, as an upload would) in onVolume. */
async function cut(data: Buffer, volumeSize: number, chunkSizes: number[]) {
  const handed: Array<SpooledVolume & { content: Buffer }> = [];
  const sink = new VolumeSink(spool, volumeSize, async (v) => {
    const content = await fsp.readFile(v.file);
    handed.push({ ...v, content });
    await fsp.rm(v.file);
  });
  await pipeline(Readable.from(chunked(data, chunkSizes)), sink);
  return { handed, sink };
}

describe('VolumeSink', () => {
  const V = 1000;
  const cases: Array<[number, number[]]> = [];
  for (const total of [1, V - 1, V, V + 1, 2 * V - 1, 2 * V, 2 * V + 1]) {
    for (const chunks of [[7, 300], [V], [3 * V]]) cases.push([total, chunks]);
  }
  // byte by byte around the first boundary
  for (const total of [V - 1, V, V + 1]) cases.push([total, [1]]);
  for (const [total, chunks] of cases) {
    it(`cuts ${total} bytes into volumes of ${V} (written in chunks of ${chunks.join(',')})`, async () => {
      const data = bytes(total);
      const { handed, sink } = await cut(data, V, chunks);
      const expected = Math.ceil(total / V);
      expect(handed).toHaveLength(expected);
      expect(sink.volumes).toEqual(handed.map(({ content: _, ...v }) => v));
      for (const [i, v] of handed.entries()) {
        expect(v.index).toBe(i + 1);
        expect(v.name).toBe(volumeName(i + 1));
        expect(v.file).toBe(path.join(spool, v.name));
        expect(v.size).toBe(i < expected - 1 ? V : total - V * (expected - 1));
        expect(v.content.length).toBe(v.size);
        expect(v.sha256).toBe(sha(v.content));
      }
      expect(Buffer.concat(handed.map((v) => v.content)).equals(data)).toBe(true);
      // each volume was gone before the sink finished: nothing left in the spool
      expect(await fsp.readdir(spool)).toEqual([]);
    });
  }

  it('makes no volume from no bytes', async () => {
    const { handed } = await cut(Buffer.alloc(0), 10, [1]);
    expect(handed).toEqual([]);
  });

  it('writes the next volume while one uploads, but starts no second upload until the first has finished', async () => {
    const V = 100;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls: number[] = [];
    const sink = new VolumeSink(spool, V, async (v) => {
      calls.push(v.index);
      if (v.index === 1) await gate;
    });
    const done = [false, false, false];
    sink.write(bytes(V), () => (done[0] = true));
    sink.write(bytes(V), () => (done[1] = true));
    sink.write(bytes(10), () => (done[2] = true));
    await waitFor(() => done[0]!);
    await new Promise((resolve) => setTimeout(resolve, 50));
    // volume 2 is written while volume 1 uploads, and waits for that upload before its own
    expect(calls).toEqual([1]);
    expect(done).toEqual([true, false, false]);
    expect((await fsp.readdir(spool)).sort()).toEqual([volumeName(1), volumeName(2)]);
    release();
    await waitFor(() => done[2]!);
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    expect(calls).toEqual([1, 2, 3]);
    expect(sink.volumes.map((v) => v.size)).toEqual([V, V, 10]);
  });

  it('cuts batched writes (writev) at volume boundaries, byte for byte', async () => {
    const V = 1000;
    const data = bytes(5 * V + 123);
    const sink = new VolumeSink(spool, V, async () => undefined);
    // written at once, most of these wait in the sink's buffer and arrive together in _writev
    for (const c of chunked(data, [1, 7, 300, 1, 999, 2048])) sink.write(c);
    await new Promise<void>((resolve, reject) => sink.end((err?: Error | null) => (err ? reject(err) : resolve())));
    expect(sink.volumes.map((v) => v.size)).toEqual([V, V, V, V, V, 123]);
    const back = Buffer.concat(await Promise.all(sink.volumes.map((v) => fsp.readFile(v.file))));
    expect(back.equals(data)).toBe(true);
    for (const v of sink.volumes) expect(v.sha256).toBe(createHash('sha256').update(await fsp.readFile(v.file)).digest('hex'));
  });

  it('holds back a fast source while a volume uploads: bounded read-ahead', async () => {
    const V = 256 * 1024;
    const data = bytes(16 * V); // 4 MiB, well past the sink's 1 MiB buffer
    let read = 0;
    const readWhileUploading: number[] = [];
    const sink = new VolumeSink(spool, V, async (v) => {
      const before = read;
      await new Promise((resolve) => setTimeout(resolve, 20));
      readWhileUploading.push(read - before);
      await fsp.rm(v.file);
    });
    const source = Readable.from(
      (function* () {
        for (const c of chunked(data, [16 * 1024])) {
          read += c.length;
          yield c;
        }
      })(),
    );
    await pipeline(source, sink);
    expect(sink.volumes).toHaveLength(16);
    // the source ran ahead by at most the sink buffer plus a little, never by the whole input
    const readAhead = Math.max(...readWhileUploading);
    expect(readAhead).toBeLessThan(2 * 1024 * 1024);
  });

  it('fails the stream when onVolume fails', async () => {
    const sink = new VolumeSink(spool, 100, async (v) => {
      if (v.index === 2) throw new Error('upload failed');
    });
    await expect(pipeline(Readable.from([bytes(350)]), sink)).rejects.toThrow('upload failed');
    expect(sink.volumes.map((v) => v.index)).toEqual([1, 2]);
  });

  it('names volumes so that they sort in order', () => {
    expect(volumeName(1)).toBe('data.tar.gpg.0001');
    expect(volumeName(MAX_VOLUMES)).toBe('data.tar.gpg.9999');
    expect(VOLUME_PATTERN.test(volumeName(42))).toBe(true);
    expect(VOLUME_PATTERN.test('data.tar.gpg.1')).toBe(false);
    const names = [10, 2, 1, 100, 9999].map(volumeName);
    expect([...names].sort()).toEqual([1, 2, 10, 100, 9999].map(volumeName));
  });
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}
