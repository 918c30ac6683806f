import { once } from 'node:events';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import tar from 'tar-stream';

/**
 * pax tar via tar-stream. Every entry carries a pax header with its exact path and
 * nanosecond mtime, and `size` past the 8 GiB ustar limit, so GNU tar restores it exactly.
 */

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

const USTAR_MAX_SIZE = 0o77777777777;
/** the largest mtime tar-stream writes into a ustar header without overflowing (it uses `| 0`) */
const USTAR_MAX_MTIME_MS = 0x7fffffff * 1000;

// tar-stream replaces a zero mode with its default (0644/0755), so the type bits go along to
// keep it non-zero; it writes only the permission bits
const TYPE_BITS: Record<TarEntryHeader['type'], number> = { file: 0o100000, directory: 0o040000, symlink: 0o120000 };

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

export class TarWriter {
  readonly pack = tar.pack();
  /** the tar byte stream (tar-stream speaks streamx; the rest of cerberus speaks Node streams) */
  readonly stream: Readable = Readable.from(this.pack as AsyncIterable<Buffer>, { objectMode: false });

  private header(h: TarEntryHeader): Parameters<tar.Pack['entry']>[0] {
    const pax: Record<string, string> = { mtime: nsToPaxTime(h.mtimeNs) };
    if (h.size > USTAR_MAX_SIZE) pax.size = String(h.size);
    return {
      name: h.type === 'directory' ? `${h.path}/` : h.path,
      type: h.type,
      mode: (h.mode & 0o7777) | TYPE_BITS[h.type],
      // the exact time is in the pax header; the ustar field only needs to be valid octal
      mtime: new Date(Math.min(Math.max(nsToDate(h.mtimeNs).getTime(), 0), USTAR_MAX_MTIME_MS)),
      size: h.type === 'file' ? h.size : 0,
      uid: h.uid,
      gid: h.gid,
      ...(h.linkTarget !== undefined ? { linkname: h.linkTarget } : {}),
      pax,
    };
  }

  /** Writes a file whose bytes come from `body`; body must give exactly h.size bytes. */
  async addFile(h: TarEntryHeader, body: Readable): Promise<void> {
    let settle!: { resolve: () => void; reject: (e: Error) => void };
    const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
    const sink = this.pack.entry(this.header(h), (err) => (err ? settle.reject(err) : settle.resolve()));
    // failures come back through the entry callback; an 'error' event nobody listens to would
    // be an uncaught exception
    sink.on('error', () => undefined);
    try {
      for await (const chunk of body) {
        if (!sink.write(chunk as Buffer)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
      }
      sink.end(undefined);
    } catch (err) {
      finished.catch(() => undefined);
      sink.destroy(err as Error);
      throw err;
    }
    await finished;
  }

  async addBuffer(h: Omit<TarEntryHeader, 'size' | 'type'>, data: Buffer): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pack.entry(this.header({ ...h, type: 'file', size: data.length }), data, (err) => (err ? reject(err) : resolve()));
    });
  }

  async addEntry(h: TarEntryHeader): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.pack.entry(this.header({ ...h, size: 0 }), (err) => (err ? reject(err) : resolve()));
    });
  }

  finish(): void {
    this.pack.finalize();
  }

  destroy(err?: Error): void {
    this.pack.destroy(err);
  }
}

/** Passes exactly `size` bytes: cuts what is longer, pads with zeros what is shorter. */
export class ExactLength extends Transform {
  private seen = 0;
  constructor(private readonly size: number) {
    super();
  }
  /** bytes the source really gave, before cutting or padding */
  get sourceBytes(): number {
    return this.seen;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const room = this.size - Math.min(this.seen, this.size);
    this.seen += chunk.length;
    if (room > 0) this.push(chunk.length <= room ? chunk : chunk.subarray(0, room));
    cb();
  }
  private readWanted: (() => void) | undefined;
  override _read(size: number): void {
    const wake = this.readWanted;
    this.readWanted = undefined;
    wake?.();
    super._read(size);
  }
  // padding follows backpressure: a file that shrank by gigabytes must not be padded in memory
  override _flush(cb: TransformCallback): void {
    const pad = async () => {
      let missing = this.size - Math.min(this.seen, this.size);
      while (missing > 0 && !this.destroyed) {
        const n = Math.min(missing, 65536);
        missing -= n;
        if (!this.push(Buffer.alloc(n))) await new Promise<void>((resolve) => (this.readWanted = resolve));
      }
    };
    pad().then(() => cb(), cb);
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
