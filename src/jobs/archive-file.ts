import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { SourceEntry } from '../engine/walk.js';
import { isMissingError } from '../sources/index.js';
import { CerberusError } from '../errors.js';
import type { TarEntryHeader, TarPacker } from '../formats/tar.js';

/** What the archive holds of one file. */
export interface ArchivedFile {
  path: string;
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  mode: number;
  sha256: string;
  /** size and mtime held still while it was read, and it gave exactly `size` bytes */
  stable: boolean;
}

/** The tar header fields of a file, from the fstat of the open file (not the walk's lstat). */
export function headerFields(e: SourceEntry, st: fs.BigIntStats): Omit<TarEntryHeader, 'size' | 'type'> {
  return { path: e.path, mode: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs.toString(), uid: e.uid, gid: e.gid };
}

const PIECE = 1 << 20;

/** The two read buffers archiveLargeFile takes turns with; one pair serves a whole run. */
export const readBuffers = (): [Buffer, Buffer] => [Buffer.allocUnsafe(PIECE), Buffer.allocUnsafe(PIECE)];

/**
 * Streams a large file into the archive in 1 MiB reads, two buffers in turn: the next read
 * runs on the thread pool while this one is hashed and encrypted. Exactly the size of the
 * fstat before the read goes in, cut or padded with zeros (a tar header cannot change its
 * mind). Undefined when the file is gone before it is opened. A read that fails once the
 * header is out stops the run: the archive must not hold a broken copy under the file's name.
 */
export async function archiveLargeFile(
  e: SourceEntry,
  tar: TarPacker,
  message: { ready(): Promise<void> },
  stored: (bytes: number) => void,
  buffers: [Buffer, Buffer] = readBuffers(),
): Promise<ArchivedFile | undefined> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(e.abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const before = await fh.stat({ bigint: true });
    if (!before.isFile()) return undefined; // replaced since the walk by something else: gone as a file
    const size = Number(before.size);
    const fields = headerFields(e, before);
    tar.header({ ...fields, type: 'file', size });
    const hash = createHash('sha256');
    let pos = 0;
    let short = false;
    let turn = 0;
    const readAt = (buf: Buffer, at: number) => fh.read(buf, 0, Math.min(buf.length, size - at), at);
    let next = size > 0 ? readAt(buffers[0], 0) : undefined;
    const bytesRead = async (): Promise<number> => {
      try {
        return next ? (await next).bytesRead : 0;
      } catch (err) {
        throw new CerberusError('IO', `cannot read ${e.abs} after its first bytes were archived: ${(err as NodeJS.ErrnoException).code ?? err}; the run stops rather than store a broken copy`, {
          hint: 'check the disk (dmesg), or add the file to source.exclude',
        });
      }
    };
    try {
      while (pos < size) {
        const buf = buffers[turn]!;
        let n = await bytesRead();
        if (n === 0) {
          // shrank while read: zeros stand for what is missing
          short = true;
          n = Math.min(buf.length, size - pos);
          buf.fill(0, 0, n);
        }
        const at = pos + n;
        turn ^= 1;
        next = at < size && !short ? readAt(buffers[turn]!, at) : undefined;
        const chunk = buf.subarray(0, n);
        hash.update(chunk);
        tar.body(chunk);
        stored(n);
        pos = at;
        await message.ready();
      }
    } finally {
      await next?.catch(() => undefined); // no read may outlive the handle
    }
    tar.endBody(size);
    const after = await fh.stat({ bigint: true });
    return {
      ...fields,
      size,
      ctimeNs: before.ctimeNs.toString(),
      sha256: hash.digest('hex'),
      stable: !short && after.size === before.size && after.mtimeNs === before.mtimeNs,
    };
  } finally {
    await fh.close();
  }
}

/**
 * Streams a file of a remote source into the archive at the size its listing gave, cut or
 * padded with zeros when the server sends more or less (a tar header cannot change its mind).
 * Undefined when the file is gone before its first byte. A stream that breaks once the header
 * is out stops the run, as a local read does: the remote source already retried and resumed.
 */
export async function archiveStreamedFile(
  e: SourceEntry,
  open: () => Promise<Readable>,
  tar: TarPacker,
  message: { ready(): Promise<void> },
  stored: (bytes: number) => void,
): Promise<ArchivedFile | undefined> {
  let body: Readable;
  try {
    body = await open();
  } catch (err) {
    if (isMissingError(err)) return undefined;
    throw err;
  }
  const size = e.size;
  const fields = { path: e.path, mode: e.mode, mtimeNs: e.mtimeNs, uid: e.uid, gid: e.gid };
  tar.header({ ...fields, type: 'file', size });
  const hash = createHash('sha256');
  let pos = 0;
  let exact = true;
  try {
    for await (const c of body) {
      const chunk = (c as Buffer).subarray(0, size - pos);
      if (chunk.length < (c as Buffer).length) exact = false; // grew since it was listed
      if (chunk.length > 0) {
        hash.update(chunk);
        tar.body(chunk);
        stored(chunk.length);
        pos += chunk.length;
        await message.ready();
      }
      if (pos >= size && !exact) break;
    }
  } catch (err) {
    if (err instanceof CerberusError) throw err;
    throw new CerberusError('SOURCE', `cannot read ${e.abs} after its first bytes were archived: ${(err as Error).message}; the run stops rather than store a broken copy`, {
      hint: 'check the server and the connection, then run the backup again',
    });
  } finally {
    body.destroy();
  }
  if (pos < size) {
    exact = false; // shrank since it was listed: zeros stand for what is missing
    const zeros = Buffer.alloc(Math.min(size - pos, 1 << 20));
    while (pos < size) {
      const chunk = zeros.subarray(0, Math.min(zeros.length, size - pos));
      hash.update(chunk);
      tar.body(chunk);
      stored(chunk.length);
      pos += chunk.length;
      await message.ready();
    }
  }
  tar.endBody(size);
  return { ...fields, size, ctimeNs: e.ctimeNs, sha256: hash.digest('hex'), stable: exact };
}
