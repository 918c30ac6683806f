import { once } from 'node:events';
import { Readable } from 'node:stream';
import tar from 'tar-stream';

/** pax tar: written by TarPacker, read through tar-stream. */

export interface TarEntryHeader {
  path: string;
  type: 'file' | 'directory' | 'symlink';
  mode: number;
  /** nanoseconds since the epoch, as a decimal string */
  mtimeNs: string;
  size: number;
  uid: number;
  gid: number;
  linkTarget?: string;
}

// pax times are signed decimals: the sign applies to the whole value (-1.5 is 1.5 s before 1970)
export function nsToPaxTime(ns: string): string {
  const n = BigInt(ns);
  const abs = n < 0n ? -n : n;
  const frac = (abs % 1_000_000_000n).toString().padStart(9, '0');
  return `${n < 0n ? '-' : ''}${abs / 1_000_000_000n}.${frac}`;
}

export function paxTimeToNs(t: string): string {
  const negative = t.startsWith('-');
  const [sec = '0', frac = ''] = (negative ? t.slice(1) : t).split('.');
  const abs = BigInt(sec || '0') * 1_000_000_000n + BigInt((frac + '000000000').slice(0, 9));
  return (negative ? -abs : abs).toString();
}

export function nsToDate(ns: string): Date {
  return new Date(Number(BigInt(ns) / 1_000_000n));
}

const BLOCK = 512;
const ZEROS = Buffer.alloc(2 * BLOCK);
const TYPEFLAG: Record<TarEntryHeader['type'], string> = { file: '0', directory: '5', symlink: '2' };
const OCTAL_MAX = { 8: 0o7777777, 12: 0o77777777777 } as const;

function octal(buf: Buffer, offset: number, width: 8 | 12, value: number): void {
  buf.write(value.toString(8).padStart(width - 1, '0') + '\0', offset, width, 'latin1');
}

/** "len key=value\n", len counting itself */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bytes = Buffer.byteLength(body);
  let len = bytes + 1;
  while (String(len).length + bytes !== len) len = String(len).length + bytes;
  return `${len}${body}`;
}

/** A name for a fixed-width ustar field; the real one is in the pax header. */
function ustarName(name: string, width: number): string {
  return Buffer.byteLength(name) <= width ? name : name.replace(/[^\x20-\x7e]/g, '_').slice(-width);
}

interface UstarFields {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeS: number;
  linkname?: string;
}

function ustarHeader(name: string, typeflag: string, h: UstarFields): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(ustarName(name, 100), 0, 100, 'utf8');
  octal(b, 100, 8, h.mode & 0o7777);
  octal(b, 108, 8, h.uid <= OCTAL_MAX[8] ? h.uid : 0);
  octal(b, 116, 8, h.gid <= OCTAL_MAX[8] ? h.gid : 0);
  octal(b, 124, 12, h.size <= OCTAL_MAX[12] ? h.size : 0);
  octal(b, 136, 12, Math.min(Math.max(h.mtimeS, 0), OCTAL_MAX[12]));
  b.write(typeflag, 156, 1, 'latin1');
  if (h.linkname !== undefined) b.write(ustarName(h.linkname, 100), 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of b) sum += byte;
  b.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return b;
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

/**
 * Writes a pax tar archive synchronously to `emit`, which must be done with each buffer when
 * it returns (file bytes pass through as given, and callers reuse their read buffers). Every
 * entry carries a pax header with its exact path, link target and nanosecond mtime, and size,
 * uid and gid where ustar's octal fields are too small, so GNU tar restores it exactly.
 *
 * Written here, not with tar-stream (its header encoder is not exported, and its entry streams
 * cost more per file than reading a small file does) or node-tar (its pax times stop at
 * milliseconds).
 */
export class TarPacker {
  private pending = 0;
  constructor(private readonly emit: (b: Buffer) => void) {}

  /** The entry's headers; a file's `size` bytes follow through body(), then endBody(). */
  header(h: TarEntryHeader): void {
    const name = h.type === 'directory' ? `${h.path}/` : h.path;
    const size = h.type === 'file' ? h.size : 0;
    let records = paxRecord('path', name) + paxRecord('mtime', nsToPaxTime(h.mtimeNs));
    if (h.linkTarget !== undefined) records += paxRecord('linkpath', h.linkTarget);
    if (size > OCTAL_MAX[12]) records += paxRecord('size', String(size));
    if (h.uid > OCTAL_MAX[8]) records += paxRecord('uid', String(h.uid));
    if (h.gid > OCTAL_MAX[8]) records += paxRecord('gid', String(h.gid));
    const pax = Buffer.from(records, 'utf8');
    const mtimeS = Number(BigInt(h.mtimeNs) / 1_000_000_000n);
    const out = Buffer.alloc(2 * BLOCK + pax.length + padding(pax.length));
    ustarHeader(`PaxHeader/${name}`, 'x', { mode: 0o644, uid: 0, gid: 0, size: pax.length, mtimeS }).copy(out, 0);
    pax.copy(out, BLOCK);
    const fields: UstarFields = { mode: h.mode, uid: h.uid, gid: h.gid, size, mtimeS, ...(h.linkTarget !== undefined ? { linkname: h.linkTarget } : {}) };
    ustarHeader(name, TYPEFLAG[h.type], fields).copy(out, out.length - BLOCK);
    this.emit(out);
    this.pending = size;
  }

  body(chunk: Buffer): void {
    if (chunk.length > this.pending) throw new Error(`internal: ${chunk.length - this.pending} bytes more than the tar header announced`);
    this.pending -= chunk.length;
    if (chunk.length > 0) this.emit(chunk);
  }

  /** Closes a file's body, which must have had all its bytes. */
  endBody(size: number): void {
    if (this.pending !== 0) throw new Error(`internal: ${this.pending} bytes of a tar entry missing`);
    const pad = padding(size);
    if (pad > 0) this.emit(ZEROS.subarray(0, pad));
  }

  file(h: Omit<TarEntryHeader, 'size' | 'type'>, data: Buffer): void {
    this.header({ ...h, type: 'file', size: data.length });
    this.body(data);
    this.endBody(data.length);
  }

  /** The end of the archive: two zero blocks. */
  finish(): void {
    this.emit(ZEROS);
  }
}

export interface TarReadEntry {
  /** the name as stored, directories without the trailing slash */
  path: string;
  type: string;
  mode: number;
  size: number;
  mtimeNs: string;
  linkTarget: string | undefined;
  body: Readable;
}

/**
 * Reads a tar stream entry by entry; whatever `onEntry` leaves of a body is drained.
 */
export async function readTar(input: Readable, onEntry: (e: TarReadEntry) => Promise<void>): Promise<void> {
  const extract = tar.extract();
  const feed = (async () => {
    for await (const chunk of input) {
      if (!extract.write(chunk as Buffer)) await once(extract as unknown as NodeJS.EventEmitter, 'drain');
    }
    extract.end(undefined);
  })();
  feed.catch((err: unknown) => extract.destroy(err as Error));
  try {
    for await (const raw of extract) {
      const header = raw.header;
      const pax = header.pax as Record<string, string> | null | undefined;
      const mtimeNs = pax?.mtime
        ? paxTimeToNs(pax.mtime)
        : (BigInt(Math.floor((header.mtime?.getTime() ?? 0) / 1000)) * 1_000_000_000n).toString();
      let ended = false;
      const body = Readable.from(raw as AsyncIterable<Buffer>, { objectMode: false });
      body.once('end', () => (ended = true));
      await onEntry({
        path: header.name.replace(/\/+$/, ''),
        type: header.type ?? 'file',
        mode: header.mode ?? 0,
        size: header.size ?? 0,
        mtimeNs,
        linkTarget: header.linkname ?? undefined,
        body,
      });
      if (!ended) for await (const _ of raw) void _;
    }
    await feed;
  } catch (err) {
    input.destroy();
    extract.destroy();
    throw err;
  }
}
