import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createHash, type Hash } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';

/**
 * mkdir -p without Node's `recursive`, which spins forever where mkdir answers ENOENT under a
 * parent that exists (anywhere in /proc). A second ENOENT here is final.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await fsp.stat(dir)).isDirectory()) return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  await makeDirs(path.dirname(dir));
  await fsp.mkdir(dir).catch(async (err: unknown) => {
    // another writer made it meanwhile
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !(await fsp.stat(dir)).isDirectory()) throw err;
  });
}

/** sha256 of a stream, in bounded memory. */
export async function sha256OfStream(stream: AsyncIterable<unknown>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

/** sha256 of a file, read in 1 MiB pieces. */
export function sha256OfFile(file: string): Promise<string> {
  return sha256OfStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }));
}

/** Files up to this size are read whole by readWhole; larger ones stream. */
export const SMALL_FILE = 256 * 1024;

/** Seconds for utimes from a nanosecond time string; microseconds survive, as utimes keeps them. */
export const nsSeconds = (ns: string): number => Number(BigInt(ns) / 1000n) / 1e6;

/**
 * A small regular file's bytes, read into `buffer` (one byte more than the largest file it
 * takes), with its fstat before and after the read, by synchronous calls: for a few KiB those
 * cost less than the thread-pool round trips of five async calls. O_NONBLOCK so that a FIFO put
 * in a file's place cannot hang the open; 'stream' for anything but a regular file that fits.
 * `stable`: size and mtime did not move during the read and it gave exactly that many bytes (a
 * file that shrank is padded with zeros, as a streamed one is).
 */
export function readWhole(abs: string, buffer: Buffer): { data: Buffer; before: fs.BigIntStats; stable: boolean } | 'gone' | 'stream' {
  const limit = buffer.length - 1;
  let fd: number;
  try {
    fd = fs.openSync(abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const before = fs.fstatSync(fd, { bigint: true });
    if (!before.isFile() || before.size > BigInt(limit)) return 'stream';
    const size = Number(before.size);
    // one byte more than expected, to see a file that grew
    const buf = buffer.subarray(0, size + 1);
    let n = 0;
    while (n < buf.length) {
      const r = fs.readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
    }
    if (n < size) buf.fill(0, n, size);
    const after = fs.fstatSync(fd, { bigint: true });
    const stable = n === size && after.size === before.size && after.mtimeNs === before.mtimeNs;
    return { data: buf.subarray(0, size), before, stable };
  } finally {
    fs.closeSync(fd);
  }
}

/** Writes `parts` to `file` one after another: a big text never whole in memory. */
export async function writeParts(file: string, parts: Iterable<Uint8Array>): Promise<void> {
  const fh = await fsp.open(file, 'w');
  try {
    for (const part of parts) {
      // write(2) may take less than it was given
      for (let off = 0; off < part.length; ) off += (await fh.write(part, off, part.length - off)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
}

/** A pass-through that feeds every chunk to `hash` and tells its size: hashing on the way to a file. */
export function hashTap(hash: Hash, onBytes: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      onBytes(chunk.length);
      cb(null, chunk);
    },
  });
}
