import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MAX_VOLUMES, VOLUME_PATTERN, VolumeCutter, volumeName, type SpooledVolume } from '../../src/formats/volumes.js';

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

/** Runs data through a VolumeCutter; each volume is read (and removed, as an upload would) when it closes. */
function cut(data: Buffer, volumeSize: number, chunkSizes: number[], perCall = 1) {
  const handed: Array<SpooledVolume & { content: Buffer }> = [];
  const opened: number[] = [];
  const cutter = new VolumeCutter(spool, volumeSize, (i) => opened.push(i), (v) => {
    const content = fs.readFileSync(v.file);
    handed.push({ ...v, content });
    fs.rmSync(v.file);
  });
  const chunks = chunked(data, chunkSizes);
  for (let i = 0; i < chunks.length; i += perCall) cutter.write(chunks.slice(i, i + perCall));
  cutter.end();
  return { handed, opened };
}

describe('VolumeCutter', () => {
  const V = 1000;
  const cases: Array<[number, number[]]> = [];
  for (const total of [1, V - 1, V, V + 1, 2 * V - 1, 2 * V, 2 * V + 1]) {
    for (const chunks of [[7, 300], [V], [3 * V]]) cases.push([total, chunks]);
  }
  // byte by byte around the first boundary
  for (const total of [V - 1, V, V + 1]) cases.push([total, [1]]);
  for (const [total, chunks] of cases) {
    it(`cuts ${total} bytes into volumes of ${V} (written in chunks of ${chunks.join(',')})`, () => {
      const data = bytes(total);
      const { handed, opened } = cut(data, V, chunks);
      const expected = Math.ceil(total / V);
      expect(handed).toHaveLength(expected);
      expect(opened).toEqual(handed.map((v) => v.index));
      for (const [i, v] of handed.entries()) {
        expect(v.index).toBe(i + 1);
        expect(v.name).toBe(volumeName(i + 1));
        expect(v.file).toBe(path.join(spool, v.name));
        expect(v.size).toBe(i < expected - 1 ? V : total - V * (expected - 1));
        expect(v.content.length).toBe(v.size);
        expect(v.sha256).toBe(sha(v.content));
      }
      expect(Buffer.concat(handed.map((v) => v.content)).equals(data)).toBe(true);
      expect(fs.readdirSync(spool)).toEqual([]);
    });
  }

  it('makes no volume from no bytes', () => {
    const { handed, opened } = cut(Buffer.alloc(0), 10, [1]);
    expect(handed).toEqual([]);
    expect(opened).toEqual([]);
  });

  it('cuts many chunks given at once (one writev per volume) at volume boundaries, byte for byte', () => {
    const data = bytes(5 * V + 123);
    const { handed } = cut(data, V, [1, 7, 300, 1, 999, 2048], 50);
    expect(handed.map((v) => v.size)).toEqual([V, V, V, V, V, 123]);
    expect(Buffer.concat(handed.map((v) => v.content)).equals(data)).toBe(true);
  });

  it('asks before each new volume, and a refusal stops it with nothing more written', () => {
    const closed: number[] = [];
    const cutter = new VolumeCutter(spool, 100, (i) => {
      if (i === 3) throw new Error('no room');
    }, (v) => closed.push(v.index));
    expect(() => cutter.write([bytes(250)])).toThrow('no room');
    expect(closed).toEqual([1, 2]);
    expect(fs.readdirSync(spool).sort()).toEqual([volumeName(1), volumeName(2)]);
    cutter.abort();
  });

  it('refuses a volume past the last name, saying what to change', () => {
    const cutter = new VolumeCutter(spool, 1, () => undefined, (v) => fs.rmSync(v.file));
    const err = errorOfSync(() => cutter.write([bytes(MAX_VOLUMES + 1)]));
    expect(err.message).toMatch(`more than ${MAX_VOLUMES} volumes`);
    expect((err as { hint?: string }).hint).toMatch(/volumeSize/);
    cutter.abort();
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

function errorOfSync(f: () => void): Error {
  try {
    f();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}
