import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { CerberusError } from '../errors.js';
import type { Backend } from '../storage/backend.js';

/** Reads a small object whole; refuses anything larger than `limit`. */
const SMALL_LIMIT = 256 * 1024 * 1024;

export async function readSmall(backend: Backend, path: string, limit = SMALL_LIMIT): Promise<Buffer> {
  const { pieces, size } = await readPieces(backend, path, limit);
  return pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces, size);
}

/** An object as the pieces it was read in, and their sha256: for one too big to copy whole once more. */
export async function readPieces(backend: Backend, path: string, limit = SMALL_LIMIT): Promise<{ pieces: Buffer[]; size: number; sha256: string }> {
  const stream = await backend.get(path);
  const hash = createHash('sha256');
  const pieces: Buffer[] = [];
  let size = 0;
  for await (const c of stream) {
    const b = Buffer.isBuffer(c) ? c : Buffer.from(c as Uint8Array);
    size += b.length;
    if (size > limit) {
      stream.destroy();
      throw new CerberusError('INTEGRITY', `${backend.description}: ${path} is larger than ${limit} bytes`);
    }
    hash.update(b);
    pieces.push(b);
  }
  return { pieces, size, sha256: hash.digest('hex') };
}

export async function putBuffer(backend: Backend, path: string, data: Buffer | Uint8Array): Promise<void> {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  await backend.put(path, () => Readable.from([buf]), buf.length);
}

export const sha256Hex = (data: Buffer | Uint8Array | string): string => createHash('sha256').update(data).digest('hex');

/** Streams an object through sha256: what a checksum check needs, in bounded memory. */
export async function hashObject(backend: Backend, path: string): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of await backend.get(path)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), size };
}
