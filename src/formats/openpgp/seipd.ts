import { createCipheriv, createDecipheriv, createHash, randomBytes, timingSafeEqual, type Cipher, type Decipher, type Hash } from 'node:crypto';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { once } from 'node:events';
import zlib from 'node:zlib';
import { ByteReader, PacketFormatError, PartialFramer, PartialPieces, readPacket, TAG } from './packet-stream.js';

/**
 * The bulk of an OpenPGP message, a Symmetrically Encrypted Integrity Protected Data packet
 * version 1 (RFC 4880 §5.13), streamed through node:crypto: AES in plain CFB mode with a zero
 * IV and SHA-1 over the plaintext for the MDC. openpgp.js does the same in JavaScript at about
 * a fifth of OpenSSL's speed, so it is kept for keys and session-key packets only. GnuPG and
 * openpgp.js read what this writes (test/formats/openpgp and test/e2e/gnupg-interop).
 */

const CFB: Record<string, string> = { aes128: 'aes-128-cfb', aes192: 'aes-192-cfb', aes256: 'aes-256-cfb' };
const CFB_KEY_BYTES: Record<string, number> = { 'aes-128-cfb': 16, 'aes-192-cfb': 24, 'aes-256-cfb': 32 };
const BLOCK = 16;
/** random block plus its last two bytes repeated */
const PREFIX = BLOCK + 2;
/** MDC packet: tag 19, length 20, the SHA-1 */
const MDC_HEAD = Buffer.from([0xd3, 0x14]);
const MDC_LENGTH = 22;
const COMPRESSION = { none: 0, zip: 1, zlib: 2, bzip2: 3 } as const;

export const SESSION_ALGORITHM = 'aes256';
export const newSessionKey = (): Buffer => randomBytes(32);

/** A literal packet's header: binary, no file name, the time of writing. */
function literalHead(): Buffer {
  const b = Buffer.alloc(6);
  b[0] = 0x62; // 'b'
  b.writeUInt32BE(Math.floor(Date.now() / 1000), 2);
  return b;
}

/** A framer of one literal data packet, its header already written. */
function literalFramer(emit: (b: Buffer) => void): PartialFramer {
  const framer = new PartialFramer(TAG.literal, emit);
  framer.write(literalHead());
  return framer;
}

/** One literal data packet holding `data` (the input of compression). */
export function literalPacket(data: Uint8Array): Buffer {
  const out: Buffer[] = [];
  const framer = literalFramer((b) => out.push(b));
  framer.write(data);
  framer.end();
  return Buffer.concat(out);
}

/**
 * Encrypts what it is given as the body of one inner packet (literal, or compressed holding a
 * literal), behind `preamble` (the session-key packets), synchronously: write() is done with
 * its argument when it returns, and `emit` gets new buffers of about 1 MiB.
 */
export class Sealer {
  private readonly cipher: Cipher;
  private readonly mdc: Hash = createHash('sha1');
  private readonly outer: PartialPieces;
  private readonly inner: PartialFramer;

  constructor(preamble: Uint8Array, sessionKey: Buffer, emit: (b: Buffer) => void, compression: 'none' | 'zlib' = 'none') {
    this.cipher = createCipheriv(CFB[SESSION_ALGORITHM]!, sessionKey, Buffer.alloc(BLOCK));
    emit(Buffer.from(preamble));
    // cipher output is new memory every time: it goes on without a copy
    this.outer = new PartialPieces(TAG.seipd, emit);
    this.outer.write(Buffer.from([1]));
    const prefix = randomBytes(PREFIX);
    prefix.copy(prefix, BLOCK, BLOCK - 2, BLOCK);
    this.seal(prefix);
    // the inner block is reused: seal() is done with it when it returns
    this.inner = new PartialFramer(compression === 'zlib' ? TAG.compressed : TAG.literal, (b) => this.seal(b), true);
    this.inner.write(compression === 'zlib' ? Buffer.from([COMPRESSION.zlib]) : literalHead());
  }

  private seal(b: Buffer): void {
    this.mdc.update(b);
    this.outer.write(this.cipher.update(b));
  }

  write(chunk: Uint8Array): void {
    this.inner.write(chunk);
  }

  end(): void {
    this.inner.end();
    this.mdc.update(MDC_HEAD);
    this.outer.write(this.cipher.update(Buffer.concat([MDC_HEAD, this.mdc.digest()])));
    this.outer.write(this.cipher.final());
    this.outer.end();
  }
}

/** The data of one message, fed in order; end() resolves once all of it is sealed. */
export interface SealedFeed {
  write(chunk: Uint8Array): void | Promise<void>;
  end(): Promise<void>;
}

/**
 * The whole message: `preamble` (session-key packets for `sessionKey`, made by openpgp.js),
 * then the data as a literal packet inside a SEIPD v1 packet, to `emit`. With zlib, the
 * literal packet goes through deflate first, and write() waits while deflate is behind.
 */
export function sealedFeed(preamble: Uint8Array, sessionKey: Buffer, compression: 'none' | 'zlib', emit: (b: Buffer) => void): SealedFeed {
  const sealer = new Sealer(preamble, sessionKey, emit, compression);
  if (compression === 'none') {
    return {
      write: (chunk) => sealer.write(chunk),
      end: async () => sealer.end(),
    };
  }
  const deflate = zlib.createDeflate();
  let failed: Error | undefined;
  deflate.on('error', (err) => (failed ??= err));
  deflate.on('data', (d: Buffer) => sealer.write(d));
  const framer = literalFramer((b) => deflate.write(b));
  const check = () => {
    if (failed) throw failed;
  };
  return {
    async write(chunk) {
      check();
      framer.write(chunk);
      if (deflate.writableNeedDrain) await once(deflate, 'drain');
    },
    async end() {
      check();
      framer.end();
      deflate.end();
      await once(deflate, 'end');
      sealer.end();
    },
  };
}

/** sealedFeed as a stream: `input` in, the message out. */
export function sealStream(input: Readable, preamble: Uint8Array, sessionKey: Buffer, compression: 'none' | 'zlib'): Readable {
  const out = new Transform({
    readableHighWaterMark: 2 << 20,
    writableHighWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      Promise.resolve()
        .then(() => feed.write(chunk))
        .then(() => cb(), cb);
    },
    flush(cb: TransformCallback) {
      feed.end().then(() => cb(), cb);
    },
  });
  const feed = sealedFeed(preamble, sessionKey, compression, (b) => out.push(b));
  input.on('error', (err) => out.destroy(err));
  return input.pipe(out);
}

export interface SessionKey {
  data: Uint8Array;
  algorithm: string | null;
}

export class IntegrityError extends Error {}

/** The quick check failed: the session key is wrong, or the first bytes are damaged. */
export class QuickCheckError extends IntegrityError {}

/** Decrypts the SEIPD body and checks its MDC; yields the plaintext (the inner packets). */
async function* decryptBody(body: AsyncGenerator<Buffer>, decipher: Decipher): AsyncGenerator<Buffer> {
  const sha1 = createHash('sha1');
  let prefix = Buffer.alloc(0);
  let held = Buffer.alloc(0);
  const take = function* (plain: Buffer): Generator<Buffer> {
    let p = plain;
    if (prefix.length < PREFIX) {
      const n = Math.min(PREFIX - prefix.length, p.length);
      prefix = Buffer.concat([prefix, p.subarray(0, n)]);
      p = p.subarray(n);
      if (prefix.length === PREFIX) {
        if (prefix[BLOCK - 2] !== prefix[BLOCK] || prefix[BLOCK - 1] !== prefix[BLOCK + 1]) {
          throw new QuickCheckError('the encrypted data does not start as it must (wrong session key or damaged data)');
        }
        sha1.update(prefix);
      }
    }
    if (p.length === 0) return;
    // the last 22 bytes are the MDC packet: hold them back until the end
    if (held.length + p.length <= MDC_LENGTH) {
      held = Buffer.concat([held, p]);
      return;
    }
    if (p.length >= MDC_LENGTH) {
      if (held.length > 0) {
        sha1.update(held);
        yield held;
      }
      const out = p.subarray(0, p.length - MDC_LENGTH);
      held = Buffer.from(p.subarray(p.length - MDC_LENGTH));
      sha1.update(out);
      yield out;
    } else {
      const all = Buffer.concat([held, p]);
      const out = all.subarray(0, all.length - MDC_LENGTH);
      held = all.subarray(all.length - MDC_LENGTH);
      sha1.update(out);
      yield out;
    }
  };
  let first = true;
  for await (const c of body) {
    let ct = c;
    if (first) {
      first = false;
      ct = c.subarray(1); // the version octet, checked by the caller
    }
    yield* take(decipher.update(ct));
  }
  yield* take(decipher.final());
  if (held.length !== MDC_LENGTH || held[0] !== MDC_HEAD[0] || held[1] !== MDC_HEAD[1]) {
    throw new IntegrityError('the modification detection code is missing (truncated or damaged data)');
  }
  sha1.update(held.subarray(0, 2));
  if (!timingSafeEqual(sha1.digest(), held.subarray(2))) {
    throw new IntegrityError('modification detected: the data does not match its MDC');
  }
}

/** The contents of the literal packet inside `plain`, through a compressed packet if there is one. */
async function* literalContents(plain: AsyncIterable<Buffer>, nested = false): AsyncGenerator<Buffer> {
  const r = new ByteReader(plain[Symbol.asyncIterator]());
  r.recording = false;
  const packet = await readPacket(r);
  if (!packet) throw new PacketFormatError('the encrypted data holds no packet');
  if (packet.header.tag === TAG.compressed && !nested) {
    const algo = await firstByte(packet.body());
    yield* literalContents(decompress(algo.byte, algo.rest), true);
  } else if (packet.header.tag === TAG.literal) {
    const body = packet.body();
    let head = Buffer.alloc(0);
    let need = 2;
    for await (const c of body) {
      if (head.length < need) {
        head = Buffer.concat([head, c]);
        if (head.length >= 2) need = 2 + head[1]! + 4;
        if (head.length < need) continue;
        const data = head.subarray(need);
        if (data.length > 0) yield data;
        continue;
      }
      yield c;
    }
    if (head.length < need) throw new PacketFormatError('the literal data packet is truncated');
  } else {
    throw new PacketFormatError(`unexpected packet (tag ${packet.header.tag}) inside the encrypted data`);
  }
  // whatever follows must still be read: the MDC is checked at the very end
  for (let p = await readPacket(r); p; p = await readPacket(r)) for await (const _ of p.body()) void _;
}

async function firstByte(body: AsyncGenerator<Buffer>): Promise<{ byte: number; rest: AsyncGenerator<Buffer> }> {
  for (;;) {
    const next = await body.next();
    if (next.done) throw new PacketFormatError('the compressed data packet is empty');
    if (next.value.length === 0) continue;
    const rest = next.value.subarray(1);
    return {
      byte: next.value[0]!,
      rest: (async function* () {
        if (rest.length > 0) yield rest;
        yield* body;
      })(),
    };
  }
}

/** Inflates all of `data`: input left after the end of the deflate stream is an error. */
async function* decompress(algo: number, data: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  if (algo === COMPRESSION.none) return yield* data;
  if (algo !== COMPRESSION.zip && algo !== COMPRESSION.zlib) throw new PacketFormatError(`unsupported compression algorithm ${algo}`);
  const z = algo === COMPRESSION.zip ? zlib.createInflateRaw() : zlib.createInflate();
  // failures reach the reader through the loop below or through `feed`; one that comes after
  // the loop (a write past the end of damaged deflate data) must not be an uncaught 'error'
  z.on('error', () => undefined);
  const stop = new AbortController();
  const feed = (async () => {
    for await (const c of data) if (!z.write(c)) await once(z, 'drain', { signal: stop.signal });
    z.end();
  })();
  feed.catch((err: unknown) => z.destroy(err as Error));
  for await (const out of z) yield out as Buffer;
  stop.abort(); // a feed still waiting for room has input past the end of the deflate stream
  await feed.catch((err: unknown) => {
    throw stop.signal.aborted ? new PacketFormatError('data follows the end of the compressed stream') : err;
  });
}

export interface OpenedMessage {
  /** the plaintext; it fails at the end when the MDC does not match */
  plaintext: AsyncGenerator<Buffer>;
}

/**
 * Reads a message's session-key packets, asks `unlock` for the session key, and streams the
 * decrypted contents. Returns `fallback`, the untouched bytes, when the message is not the
 * SEIPD v1 with AES that this reads (openpgp.js then handles it).
 */
export async function openStream(
  input: AsyncIterable<Uint8Array>,
  unlock: (sessionKeyPackets: Uint8Array) => Promise<SessionKey>,
): Promise<{ plaintext: Readable } | { fallback: AsyncIterable<Buffer>; unlocked: boolean }> {
  const r = new ByteReader(input[Symbol.asyncIterator]());
  const esk: Buffer[] = [];
  for (;;) {
    const packet = await readPacket(r);
    if (!packet) throw new PacketFormatError('the message holds no encrypted data');
    const { tag } = packet.header;
    if (tag === TAG.pkesk || tag === TAG.skesk || tag === TAG.marker) {
      const parts = [packet.header.raw];
      for await (const c of packet.body()) parts.push(Buffer.from(c));
      if (tag !== TAG.marker) esk.push(...parts);
      continue;
    }
    if (tag !== TAG.seipd) return { fallback: r.replay(), unlocked: false };
    const body = packet.body();
    const first = await body.next();
    if (first.done || first.value.length === 0 || first.value[0] !== 1) {
      return { fallback: r.replay(), unlocked: false }; // SEIPD v2 (AEAD) or damage: openpgp.js says which
    }
    const key = await unlock(Buffer.concat(esk));
    const cipher = key.algorithm ? CFB[key.algorithm] : undefined;
    if (!cipher) return { fallback: r.replay(), unlocked: true };
    if (key.data.length !== CFB_KEY_BYTES[cipher]) throw new QuickCheckError(`a ${key.algorithm} session key of ${key.data.length} bytes`);
    r.recording = false;
    r.taken.length = 0;
    const decipher = createDecipheriv(cipher, key.data, Buffer.alloc(BLOCK));
    const whole = (async function* () {
      yield first.value;
      yield* body;
      if (!(await r.atEnd())) throw new PacketFormatError('unexpected data after the encrypted packet');
    })();
    return { plaintext: Readable.from(literalContents(decryptBody(whole, decipher)), { objectMode: false }) };
  }
}
