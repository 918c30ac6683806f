/**
 * OpenPGP packet framing for streams (RFC 4880 §4.2): writing one packet of unknown length
 * with partial body lengths, and reading packets of any header form from a byte stream.
 * openpgp.js does both through web streams, at a cost of several objects and promises per
 * chunk; cerberus's hot path needs neither, so the framing is written here.
 */

/** Partial body chunks of 2^20 bytes: one length octet per MiB. */
const PARTIAL_BITS = 20;
export const PARTIAL = 1 << PARTIAL_BITS;
const PARTIAL_OCTET = 0xe0 + PARTIAL_BITS;
const PARTIAL_HEADER = Buffer.from([PARTIAL_OCTET]);

export const TAG = { pkesk: 1, skesk: 3, compressed: 8, marker: 10, literal: 11, seipd: 18, mdc: 19 } as const;

/** A new-format length header for a body of exactly n bytes. */
export function lengthOctets(n: number): Buffer {
  if (n < 192) return Buffer.from([n]);
  if (n < 8384) return Buffer.from([((n - 192) >> 8) + 192, (n - 192) & 0xff]);
  const b = Buffer.alloc(5);
  b[0] = 0xff;
  b.writeUInt32BE(n, 1);
  return b;
}

/**
 * Writes one packet whose length is unknown up front, in parts of PARTIAL bytes, each behind
 * its partial length octet; a part goes out only once more follows, since the last one must
 * carry a final length. Gathers its input into one block buffer, reused when `reuse` is set
 * (then `emit` must be done with each block when it returns).
 */
export class PartialFramer {
  private block: Buffer;
  private filled = 1;

  constructor(
    tag: number,
    private readonly emit: (b: Buffer) => void,
    private readonly reuse = false,
  ) {
    this.emit(Buffer.from([0xc0 | tag]));
    this.block = Buffer.allocUnsafe(1 + PARTIAL);
  }

  write(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) {
      if (this.filled === this.block.length) this.flushPartial();
      const n = Math.min(this.block.length - this.filled, data.length - off);
      this.block.set(data.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
    }
  }

  private flushPartial(): void {
    this.block[0] = PARTIAL_OCTET;
    this.emit(this.block);
    if (!this.reuse) this.block = Buffer.allocUnsafe(1 + PARTIAL);
    this.filled = 1;
  }

  end(): void {
    const n = this.filled - 1;
    const len = lengthOctets(n);
    // the final length replaces the partial octet; 5-octet lengths do not fit in front
    if (len.length === 1) {
      this.block[0] = len[0]!;
      this.emit(this.block.subarray(0, this.filled));
    } else {
      this.emit(len);
      this.emit(this.block.subarray(1, this.filled));
    }
  }
}

/**
 * The same framing without copying: the buffers given to write() are passed on as they are,
 * cut at part boundaries, so they must not change afterwards (freshly made ones, such as a
 * cipher's output). `emit` gets the length octets as buffers of their own.
 */
export class PartialPieces {
  private held: Buffer[] = [];
  private filled = 0;

  constructor(
    tag: number,
    private readonly emit: (b: Buffer) => void,
  ) {
    this.emit(Buffer.from([0xc0 | tag]));
  }

  write(data: Buffer): void {
    let rest = data;
    while (rest.length > 0) {
      if (this.filled === PARTIAL) {
        this.emit(PARTIAL_HEADER);
        for (const h of this.held) this.emit(h);
        this.held = [];
        this.filled = 0;
      }
      const n = Math.min(PARTIAL - this.filled, rest.length);
      this.held.push(n === rest.length ? rest : rest.subarray(0, n));
      this.filled += n;
      rest = rest.subarray(n);
    }
  }

  end(): void {
    this.emit(lengthOctets(this.filled));
    for (const h of this.held) this.emit(h);
    this.held = [];
  }
}

/** Pulls exact byte counts out of an async stream of chunks. */
export class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private done = false;
  /** bytes taken from the source so far (what a fallback must replay) */
  readonly taken: Buffer[] = [];
  recording = true;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.source.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value.buffer, next.value.byteOffset, next.value.byteLength);
    if (this.recording) this.taken.push(chunk);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async exact(n: number): Promise<Buffer> {
    while (this.buf.length < n) if (!(await this.fill())) break;
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  /** Up to n bytes (at least one unless the stream ended), without waiting for more. */
  async some(n: number): Promise<Buffer> {
    if (this.buf.length === 0) await this.fill();
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    return out;
  }

  async atEnd(): Promise<boolean> {
    return this.buf.length === 0 && !(await this.fill());
  }

  /** The whole stream again, from its first byte: for a reader that gives up. */
  async *replay(): AsyncGenerator<Buffer> {
    yield* this.taken;
    this.taken.length = 0;
    for (let next = await this.source.next(); !next.done; next = await this.source.next()) yield Buffer.from(next.value);
  }

  /** What is left of the source, starting with what was read ahead. */
  async *rest(): AsyncGenerator<Buffer> {
    if (this.buf.length > 0) yield this.buf;
    this.buf = Buffer.alloc(0);
    for (let next = await this.source.next(); !next.done; next = await this.source.next()) yield Buffer.from(next.value);
  }
}

export class PacketFormatError extends Error {}

export interface PacketHeader {
  tag: number;
  /** the header's own bytes */
  raw: Buffer;
}

type BodyLength = { kind: 'fixed' | 'partial'; n: number } | { kind: 'indeterminate' };

async function newFormatLength(r: ByteReader, raw: Buffer[]): Promise<BodyLength> {
  const first = await r.exact(1);
  if (first.length < 1) throw new PacketFormatError('the data ends inside a packet header');
  raw.push(first);
  const o = first[0]!;
  if (o < 192) return { kind: 'fixed', n: o };
  if (o < 224) {
    const b = await r.exact(1);
    if (b.length < 1) throw new PacketFormatError('the data ends inside a packet header');
    raw.push(b);
    return { kind: 'fixed', n: ((o - 192) << 8) + b[0]! + 192 };
  }
  if (o < 255) return { kind: 'partial', n: 1 << (o & 0x1f) };
  const b = await r.exact(4);
  if (b.length < 4) throw new PacketFormatError('the data ends inside a packet header');
  raw.push(b);
  return { kind: 'fixed', n: b.readUInt32BE(0) };
}

/**
 * A packet: its tag, its header bytes and a reader of its body, which must be read to the
 * end before the next packet. Undefined at a clean end of the stream.
 */
export async function readPacket(r: ByteReader): Promise<{ header: PacketHeader; body: () => AsyncGenerator<Buffer> } | undefined> {
  const first = await r.exact(1);
  if (first.length === 0) return undefined;
  const ctb = first[0]!;
  if ((ctb & 0x80) === 0) throw new PacketFormatError('not an OpenPGP packet (bad packet tag)');
  const raw: Buffer[] = [first];
  let tag: number;
  let length: BodyLength;
  if (ctb & 0x40) {
    tag = ctb & 0x3f;
    length = await newFormatLength(r, raw);
  } else {
    tag = (ctb >> 2) & 0x0f;
    const type = ctb & 3;
    if (type === 3) length = { kind: 'indeterminate' };
    else {
      const size = 1 << type;
      const b = await r.exact(size);
      if (b.length < size) throw new PacketFormatError('the data ends inside a packet header');
      raw.push(b);
      length = { kind: 'fixed', n: size === 1 ? b[0]! : size === 2 ? b.readUInt16BE(0) : b.readUInt32BE(0) };
    }
  }
  const header = { tag, raw: Buffer.concat(raw) };
  return { header, body: () => packetBody(r, length) };
}

async function* packetBody(r: ByteReader, first: BodyLength): AsyncGenerator<Buffer> {
  if (first.kind === 'indeterminate') {
    yield* r.rest();
    return;
  }
  let part = first;
  for (;;) {
    let left = part.n;
    while (left > 0) {
      const chunk = await r.some(left);
      if (chunk.length === 0) throw new PacketFormatError('the data ends inside a packet (truncated)');
      left -= chunk.length;
      yield chunk;
    }
    if (part.kind === 'fixed') return;
    const next = await newFormatLength(r, []);
    if (next.kind === 'indeterminate') throw new PacketFormatError('bad partial length');
    part = next;
  }
}
