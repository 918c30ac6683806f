/**
 * File content encryption (vault format 8): a header carrying a random per-file content key,
 * then 32 KiB cleartext chunks, each sealed on its own so a reader can stream in bounded memory.
 *
 * SIV_GCM    header: nonce(12) ‖ AES-GCM_encKey(8×0xFF ‖ contentKey) ‖ tag(16)            = 68 bytes
 *            chunk:  nonce(12) ‖ AES-GCM_contentKey(cleartext, AAD = index BE64 ‖ header nonce) ‖ tag(16)
 * SIV_CTRMAC header: nonce(16) ‖ AES-CTR_encKey(8×0xFF ‖ contentKey) ‖ HMAC_macKey(nonce ‖ ct) = 88 bytes
 *            chunk:  nonce(16) ‖ AES-CTR_contentKey(cleartext) ‖ HMAC_macKey(header nonce ‖ index BE64 ‖ nonce ‖ ct)
 *
 * Binding the chunk index and header nonce into every chunk stops reordering and splicing
 * between files. Nothing marks the last chunk, so the format cannot detect a file truncated
 * exactly at a chunk boundary; that is a property of Cryptomator's format, not of this code.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { CerberusError } from '../../errors.js';
import type { CryptomatorKeys } from './masterkey.js';
import type { CipherCombo } from './vault-config.js';

export const CLEARTEXT_CHUNK_SIZE = 32 * 1024;

interface Layout {
  headerSize: number;
  nonceSize: number;
  tagSize: number;
}

const LAYOUT: Record<CipherCombo, Layout> = {
  SIV_GCM: { headerSize: 12 + 40 + 16, nonceSize: 12, tagSize: 16 },
  SIV_CTRMAC: { headerSize: 16 + 40 + 32, nonceSize: 16, tagSize: 32 },
};

export const headerSize = (combo: CipherCombo) => LAYOUT[combo].headerSize;
export const chunkOverhead = (combo: CipherCombo) => LAYOUT[combo].nonceSize + LAYOUT[combo].tagSize;
const ciphertextChunkSize = (combo: CipherCombo) => CLEARTEXT_CHUNK_SIZE + chunkOverhead(combo);

/** Cleartext size from ciphertext size, or undefined if no valid file can have that size. */
export function cleartextSize(combo: CipherCombo, ciphertextSize: number): number | undefined {
  const body = ciphertextSize - headerSize(combo);
  if (body < 0) return undefined;
  const full = Math.floor(body / ciphertextChunkSize(combo));
  const rest = body % ciphertextChunkSize(combo);
  if (rest > 0 && rest < chunkOverhead(combo)) return undefined;
  return full * CLEARTEXT_CHUNK_SIZE + (rest > 0 ? rest - chunkOverhead(combo) : 0);
}

export function ciphertextSize(combo: CipherCombo, cleartextSize: number): number {
  const chunks = Math.ceil(cleartextSize / CLEARTEXT_CHUNK_SIZE);
  return headerSize(combo) + cleartextSize + chunks * chunkOverhead(combo);
}

const RESERVED = Buffer.alloc(8, 0xff);

interface Header {
  nonce: Buffer;
  contentKey: Buffer;
}

function indexBytes(index: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(index));
  return b;
}

function macEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

function encryptHeader(combo: CipherCombo, keys: CryptomatorKeys, header: Header): Buffer {
  const payload = Buffer.concat([RESERVED, header.contentKey]);
  if (combo === 'SIV_GCM') {
    const c = createCipheriv('aes-256-gcm', keys.encKey, header.nonce);
    const ct = Buffer.concat([c.update(payload), c.final()]);
    return Buffer.concat([header.nonce, ct, c.getAuthTag()]);
  }
  const c = createCipheriv('aes-256-ctr', keys.encKey, header.nonce);
  const ct = Buffer.concat([c.update(payload), c.final()]);
  const mac = createHmac('sha256', keys.macKey).update(header.nonce).update(ct).digest();
  return Buffer.concat([header.nonce, ct, mac]);
}

/** Returns undefined when the header does not authenticate. */
function decryptHeader(combo: CipherCombo, keys: CryptomatorKeys, raw: Buffer): Header | undefined {
  const { nonceSize, tagSize } = LAYOUT[combo];
  const nonce = Buffer.from(raw.subarray(0, nonceSize));
  const ct = raw.subarray(nonceSize, raw.length - tagSize);
  const tag = raw.subarray(raw.length - tagSize);
  let payload: Buffer;
  if (combo === 'SIV_GCM') {
    const d = createDecipheriv('aes-256-gcm', keys.encKey, nonce);
    d.setAuthTag(tag);
    try {
      payload = Buffer.concat([d.update(ct), d.final()]);
    } catch {
      return undefined;
    }
  } else {
    const mac = createHmac('sha256', keys.macKey).update(nonce).update(ct).digest();
    if (!macEqual(mac, tag)) return undefined;
    const d = createDecipheriv('aes-256-ctr', keys.encKey, nonce);
    payload = Buffer.concat([d.update(ct), d.final()]);
  }
  // the 8 reserved bytes are not checked: cryptolib ignores them too, they carry no meaning
  return { nonce, contentKey: Buffer.from(payload.subarray(8, 40)) };
}

function decryptChunk(
  combo: CipherCombo,
  keys: CryptomatorKeys,
  header: Header,
  index: number,
  raw: Buffer,
): Buffer | undefined {
  const { nonceSize, tagSize } = LAYOUT[combo];
  const nonce = raw.subarray(0, nonceSize);
  const ct = raw.subarray(nonceSize, raw.length - tagSize);
  const tag = raw.subarray(raw.length - tagSize);
  if (combo === 'SIV_GCM') {
    const d = createDecipheriv('aes-256-gcm', header.contentKey, nonce);
    d.setAAD(Buffer.concat([indexBytes(index), header.nonce]));
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(ct), d.final()]);
    } catch {
      return undefined;
    }
  }
  const mac = createHmac('sha256', keys.macKey).update(header.nonce).update(indexBytes(index)).update(nonce).update(ct).digest();
  if (!macEqual(mac, tag)) return undefined;
  const d = createDecipheriv('aes-256-ctr', header.contentKey, nonce);
  return Buffer.concat([d.update(ct), d.final()]);
}

/**
 * One chunk sealed straight into `out` at `off` (nonce ‖ ciphertext ‖ tag), the nonce already
 * there. The streams batch every chunk of one input write into one output buffer: per 32 KiB
 * chunk the older code made five to seven Buffers, and their garbage cost more than the AES.
 * `aad` is the stream's reusable index ‖ header-nonce buffer (GCM only).
 */
function sealInto(combo: CipherCombo, keys: CryptomatorKeys, header: Header, index: number, clear: Buffer, out: Buffer, off: number, aad: Buffer): void {
  const { nonceSize } = LAYOUT[combo];
  const nonce = out.subarray(off, off + nonceSize);
  const at = off + nonceSize;
  if (combo === 'SIV_GCM') {
    writeIndex(aad, index);
    const c = createCipheriv('aes-256-gcm', header.contentKey, nonce);
    c.setAAD(aad);
    copyExact(c.update(clear), out, at, clear.length);
    c.final(); // GCM gives no bytes here, only the tag
    c.getAuthTag().copy(out, at + clear.length);
    return;
  }
  const c = createCipheriv('aes-256-ctr', header.contentKey, nonce);
  copyExact(c.update(clear), out, at, clear.length);
  const ct = out.subarray(at, at + clear.length);
  createHmac('sha256', keys.macKey).update(header.nonce).update(indexBytes(index)).update(nonce).update(ct).digest().copy(out, at + clear.length);
}

/** Opens one sealed chunk into `out` at `off`; false when it does not authenticate (nothing usable written). */
function openInto(combo: CipherCombo, keys: CryptomatorKeys, header: Header, index: number, raw: Buffer, out: Buffer, off: number, aad: Buffer): boolean {
  const { nonceSize, tagSize } = LAYOUT[combo];
  const nonce = raw.subarray(0, nonceSize);
  const ct = raw.subarray(nonceSize, raw.length - tagSize);
  const tag = raw.subarray(raw.length - tagSize);
  if (combo === 'SIV_GCM') {
    writeIndex(aad, index);
    const d = createDecipheriv('aes-256-gcm', header.contentKey, nonce);
    d.setAAD(aad);
    d.setAuthTag(tag);
    const clear = d.update(ct);
    try {
      d.final();
    } catch {
      return false;
    }
    copyExact(clear, out, off, ct.length);
    return true;
  }
  const mac = createHmac('sha256', keys.macKey).update(header.nonce).update(indexBytes(index)).update(nonce).update(ct).digest();
  if (!macEqual(mac, tag)) return false;
  copyExact(createDecipheriv('aes-256-ctr', header.contentKey, nonce).update(ct), out, off, ct.length);
  return true;
}

/** AAD = chunk index (big-endian 64 bit) ‖ header nonce; the nonce part is written once per stream. */
function writeIndex(aad: Buffer, index: number): void {
  aad.writeUInt32BE(Math.floor(index / 0x1_0000_0000), 0);
  aad.writeUInt32BE(index >>> 0, 4);
}

function aadFor(header: Header): Buffer {
  const aad = Buffer.alloc(8 + header.nonce.length);
  header.nonce.copy(aad, 8);
  return aad;
}

/** CTR and GCM are stream modes: update() returns exactly as many bytes as it was given. */
function copyExact(from: Buffer, out: Buffer, off: number, n: number): void {
  if (from.length !== n) throw new CerberusError('INTERNAL', `cipher returned ${from.length} bytes for ${n}`);
  from.copy(out, off);
}

/**
 * Bytes from the CSPRNG, drawn from a refilled pool: a small file takes three draws (header
 * nonce, content key, chunk nonces), and one randomFillSync each showed in profiles of vaults
 * of many small files. Each byte is handed out once; the pool is never reused after a refill.
 */
function random(n: number): Buffer {
  if (n > RANDOM_POOL / 4) return randomBytes(n);
  if (poolOffset + n > pool.length) {
    pool = randomBytes(RANDOM_POOL);
    poolOffset = 0;
  }
  const out = pool.subarray(poolOffset, poolOffset + n);
  poolOffset += n;
  return out;
}
const RANDOM_POOL = 16 * 1024;
let pool = Buffer.alloc(0);
let poolOffset = 0;

const newHeader = (combo: CipherCombo): Header => ({ nonce: random(LAYOUT[combo].nonceSize), contentKey: random(32) });

/**
 * One output buffer: `head` (the file header, if it goes out now), then each cleartext piece
 * sealed as the next chunk, numbered from `first`.
 */
function sealChunks(combo: CipherCombo, keys: CryptomatorKeys, header: Header, aad: Buffer, first: number, pieces: Buffer[], head?: Buffer, into?: Buffer): Buffer {
  const over = chunkOverhead(combo);
  const { nonceSize } = LAYOUT[combo];
  let size = head?.length ?? 0;
  for (const p of pieces) size += p.length + over;
  const out = into && into.length >= size ? into.subarray(0, size) : Buffer.allocUnsafe(size);
  let off = head ? head.copy(out, 0) : 0;
  const nonces = random(nonceSize * pieces.length);
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i]!;
    nonces.copy(out, off, i * nonceSize, (i + 1) * nonceSize);
    sealInto(combo, keys, header, first + i, p, out, off, aad);
    off += p.length + over;
  }
  return out;
}

/**
 * The incremental encrypter under EncryptStream and SealEngine: cleartext in pieces of any
 * size, ciphertext out. Each update gives at most one buffer (the header rides with the first),
 * so a small file is one chunk downstream, and a piece read one piece written.
 */
export class ContentSealer {
  private readonly header: Header;
  private readonly aad: Buffer;
  private headerBytes: Buffer | undefined;
  /** the cleartext of an unfinished chunk, when a write ended inside one */
  private pending: Buffer | undefined;
  private fill = 0;
  private index = 0;

  constructor(
    private readonly combo: CipherCombo,
    private readonly keys: CryptomatorKeys,
  ) {
    this.header = newHeader(combo);
    this.headerBytes = encryptHeader(combo, keys, this.header);
    this.aad = aadFor(this.header);
  }

  private seal(pieces: Buffer[], into?: Buffer): Buffer {
    const out = sealChunks(this.combo, this.keys, this.header, this.aad, this.index, pieces, this.headerBytes, into);
    this.index += pieces.length;
    this.headerBytes = undefined;
    return out;
  }

  /**
   * The ciphertext of every chunk `chunk` completes; undefined when it completes none. With
   * `into` (big enough), written there and a view of it returned, valid until the next call.
   */
  update(chunk: Buffer, into?: Buffer): Buffer | undefined {
    const pieces: Buffer[] = [];
    let pos = 0;
    if (this.fill > 0) {
      const n = Math.min(CLEARTEXT_CHUNK_SIZE - this.fill, chunk.length);
      chunk.copy(this.pending!, this.fill, 0, n);
      this.fill += n;
      pos = n;
      if (this.fill === CLEARTEXT_CHUNK_SIZE) {
        pieces.push(this.pending!);
        this.fill = 0;
      }
    }
    // whole chunks straight from the input, without copying them first
    for (; chunk.length - pos >= CLEARTEXT_CHUNK_SIZE; pos += CLEARTEXT_CHUNK_SIZE) pieces.push(chunk.subarray(pos, pos + CLEARTEXT_CHUNK_SIZE));
    const out = pieces.length > 0 ? this.seal(pieces, into) : undefined;
    // sealed above, so the pending buffer is free again for the tail
    if (pos < chunk.length) {
      this.pending ??= Buffer.allocUnsafe(CLEARTEXT_CHUNK_SIZE);
      chunk.copy(this.pending, 0, pos);
      this.fill = chunk.length - pos;
    }
    return out;
  }

  /** The last, short chunk; or the header alone for an empty file, as Cryptomator writes it. */
  final(into?: Buffer): Buffer | undefined {
    let out: Buffer | undefined;
    if (this.fill > 0) out = this.seal([this.pending!.subarray(0, this.fill)], into);
    else if (this.headerBytes) out = this.headerBytes;
    this.fill = 0;
    this.headerBytes = undefined;
    return out;
  }
}

/** Cleartext in, Cryptomator ciphertext out (see ContentSealer). */
export class EncryptStream extends Transform {
  private readonly sealer: ContentSealer;

  constructor(combo: CipherCombo, keys: CryptomatorKeys) {
    super();
    this.sealer = new ContentSealer(combo, keys);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    const out = this.sealer.update(chunk);
    if (out) this.push(out);
    done();
  }

  override _flush(done: TransformCallback): void {
    const out = this.sealer.final();
    if (out) this.push(out);
    done();
  }
}

/** Cryptomator ciphertext in, cleartext out; authentication failures are INTEGRITY errors naming `label`. */
export class DecryptStream extends Transform {
  private header: Header | undefined;
  private aad: Buffer | undefined;
  private readonly headerBuf: Buffer;
  private headerFill = 0;
  /**
   * An unfinished ciphertext chunk, or the last full one (see _transform): a view of the piece
   * it came in (`tail`) until more arrives, then copied into `pending`. A file that comes in
   * one piece, as most do, so allocates nothing beyond its cleartext.
   */
  private tail: Buffer | undefined;
  private pending: Buffer | undefined;
  private fill = 0;
  private index = 0;
  private readonly ctChunk: number;

  constructor(
    private readonly combo: CipherCombo,
    private readonly keys: CryptomatorKeys,
    /** the file as the user knows it, for error messages */
    private readonly label: string,
  ) {
    super();
    this.headerBuf = Buffer.allocUnsafe(headerSize(combo));
    this.ctChunk = ciphertextChunkSize(combo);
  }

  private fail(what: string): CerberusError {
    return new CerberusError('INTEGRITY', `${this.label}: ${what}`, {
      hint: 'the vault file is damaged or was modified outside Cryptomator',
    });
  }

  private open(raw: Buffer, out: Buffer, off: number): void {
    if (!openInto(this.combo, this.keys, this.header!, this.index, raw, out, off, this.aad!)) {
      throw this.fail(`chunk ${this.index} failed authentication`);
    }
    this.index++;
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      if (this.tail !== undefined) {
        this.pending ??= Buffer.allocUnsafe(this.ctChunk);
        this.fill = this.tail.copy(this.pending);
        this.tail = undefined;
      }
      let pos = 0;
      if (this.header === undefined) {
        const n = Math.min(this.headerBuf.length - this.headerFill, data.length);
        data.copy(this.headerBuf, this.headerFill, 0, n);
        this.headerFill += n;
        pos = n;
        if (this.headerFill < this.headerBuf.length) return done();
        this.header = decryptHeader(this.combo, this.keys, this.headerBuf);
        if (this.header === undefined) throw this.fail('file header failed authentication');
        this.aad = aadFor(this.header);
      }
      // a full chunk is decrypted only once a byte beyond it arrives, so _flush always has the last one
      const available = this.fill + data.length - pos;
      let chunks = available > 0 ? Math.floor((available - 1) / this.ctChunk) : 0;
      if (chunks > 0) {
        const out = Buffer.allocUnsafe(chunks * CLEARTEXT_CHUNK_SIZE);
        let off = 0;
        if (this.fill > 0) {
          const n = this.ctChunk - this.fill;
          const pending = this.pending!;
          data.copy(pending, this.fill, pos, pos + n);
          pos += n;
          this.fill = 0;
          this.open(pending, out, off);
          off += CLEARTEXT_CHUNK_SIZE;
          chunks--;
        }
        for (; chunks > 0; chunks--, pos += this.ctChunk, off += CLEARTEXT_CHUNK_SIZE) {
          this.open(data.subarray(pos, pos + this.ctChunk), out, off);
        }
        this.push(out);
      }
      if (this.fill > 0) this.fill += data.copy(this.pending!, this.fill, pos);
      else if (pos < data.length) this.tail = data.subarray(pos);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.header === undefined) throw this.fail('file is shorter than its header');
      const last = this.tail ?? this.pending?.subarray(0, this.fill);
      this.tail = undefined;
      this.fill = 0;
      if (last !== undefined && last.length > 0) {
        if (last.length < chunkOverhead(this.combo)) throw this.fail(`chunk ${this.index} is truncated`);
        const out = Buffer.allocUnsafe(last.length - chunkOverhead(this.combo));
        this.open(last, out, 0);
        this.push(out);
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/**
 * Whole-buffer helpers for small payloads (small files, symlink targets, dirid.c9r). With
 * `into` (big enough), the ciphertext is written there and a view of it returned.
 */
export function encryptBuffer(combo: CipherCombo, keys: CryptomatorKeys, clear: Buffer, into?: Buffer): Buffer {
  const header = newHeader(combo);
  const pieces: Buffer[] = [];
  for (let off = 0; off < clear.length; off += CLEARTEXT_CHUNK_SIZE) pieces.push(clear.subarray(off, off + CLEARTEXT_CHUNK_SIZE));
  return sealChunks(combo, keys, header, aadFor(header), 0, pieces, encryptHeader(combo, keys, header), into);
}

export function decryptBuffer(combo: CipherCombo, keys: CryptomatorKeys, data: Buffer, label: string): Buffer {
  return Buffer.concat([...decryptPieces(combo, keys, [data], label)()]);
}

/**
 * A file's cleartext a chunk at a time, decrypted as it is iterated, from its ciphertext in
 * pieces of any size (as read): a 10 MB manifest is then never held whole a second time.
 */
export function decryptPieces(combo: CipherCombo, keys: CryptomatorKeys, pieces: readonly Uint8Array[], label: string): () => Generator<Buffer> {
  const fail = (what: string) =>
    new CerberusError('INTEGRITY', `${label}: ${what}`, { hint: 'the vault file is damaged or was modified outside Cryptomator' });
  return function* () {
    const next = pieceReader(pieces);
    const head = next(headerSize(combo));
    if (head.length < headerSize(combo)) throw fail('file is shorter than its header');
    const header = decryptHeader(combo, keys, head);
    if (header === undefined) throw fail('file header failed authentication');
    for (let i = 0, raw = next(ciphertextChunkSize(combo)); raw.length > 0; i++, raw = next(ciphertextChunkSize(combo))) {
      if (raw.length < chunkOverhead(combo)) throw fail(`chunk ${i} is truncated`);
      const clear = decryptChunk(combo, keys, header, i, raw);
      if (clear === undefined) throw fail(`chunk ${i} failed authentication`);
      yield clear;
    }
  };
}

/** The next n bytes (fewer at the end) of a run of pieces: a view where one piece holds them, else a copy. */
function pieceReader(pieces: readonly Uint8Array[]): (n: number) => Buffer {
  let index = 0;
  let offset = 0;
  return (n) => {
    const first = pieces[index];
    if (first !== undefined && first.length - offset >= n) {
      const view = Buffer.from(first.buffer, first.byteOffset + offset, n);
      offset += n;
      return view;
    }
    const out: Buffer[] = [];
    let got = 0;
    for (let piece = pieces[index]; piece !== undefined && got < n; piece = pieces[index]) {
      const k = Math.min(n - got, piece.length - offset);
      out.push(Buffer.from(piece.buffer, piece.byteOffset + offset, k));
      got += k;
      offset += k;
      if (offset === piece.length) {
        index++;
        offset = 0;
      }
    }
    return Buffer.concat(out, got);
  };
}
