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

function encryptChunk(combo: CipherCombo, keys: CryptomatorKeys, header: Header, index: number, clear: Buffer): Buffer {
  const { nonceSize } = LAYOUT[combo];
  const nonce = randomBytes(nonceSize);
  if (combo === 'SIV_GCM') {
    const c = createCipheriv('aes-256-gcm', header.contentKey, nonce);
    c.setAAD(Buffer.concat([indexBytes(index), header.nonce]));
    const ct = Buffer.concat([c.update(clear), c.final()]);
    return Buffer.concat([nonce, ct, c.getAuthTag()]);
  }
  const c = createCipheriv('aes-256-ctr', header.contentKey, nonce);
  const ct = Buffer.concat([c.update(clear), c.final()]);
  const mac = createHmac('sha256', keys.macKey).update(header.nonce).update(indexBytes(index)).update(nonce).update(ct).digest();
  return Buffer.concat([nonce, ct, mac]);
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

/** Gathers input into fixed-size pieces without growing past one piece plus one write. */
class Accumulator {
  private parts: Buffer[] = [];
  length = 0;
  push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  take(n: number): Buffer {
    const all = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.length);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.parts = rest.length > 0 ? [rest] : [];
    this.length = rest.length;
    return out;
  }
}

/** Cleartext in, Cryptomator ciphertext out. An empty input yields the header alone, as Cryptomator writes it. */
export class EncryptStream extends Transform {
  private readonly header: Header;
  private readonly pending = new Accumulator();
  private index = 0;

  constructor(
    private readonly combo: CipherCombo,
    private readonly keys: CryptomatorKeys,
  ) {
    super();
    this.header = { nonce: randomBytes(LAYOUT[combo].nonceSize), contentKey: randomBytes(32) };
    this.push(encryptHeader(combo, keys, this.header));
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.pending.push(chunk);
    while (this.pending.length >= CLEARTEXT_CHUNK_SIZE) {
      this.push(encryptChunk(this.combo, this.keys, this.header, this.index++, this.pending.take(CLEARTEXT_CHUNK_SIZE)));
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.pending.length > 0) {
      this.push(encryptChunk(this.combo, this.keys, this.header, this.index++, this.pending.take(this.pending.length)));
    }
    done();
  }
}

/** Cryptomator ciphertext in, cleartext out; authentication failures are INTEGRITY errors naming `label`. */
export class DecryptStream extends Transform {
  private header: Header | undefined;
  private readonly pending = new Accumulator();
  private index = 0;

  constructor(
    private readonly combo: CipherCombo,
    private readonly keys: CryptomatorKeys,
    /** the file as the user knows it, for error messages */
    private readonly label: string,
  ) {
    super();
  }

  private fail(what: string): CerberusError {
    return new CerberusError('INTEGRITY', `${this.label}: ${what}`, {
      hint: 'the vault file is damaged or was modified outside Cryptomator',
    });
  }

  private chunk(raw: Buffer): void {
    const header = this.header!;
    const clear = decryptChunk(this.combo, this.keys, header, this.index, raw);
    if (clear === undefined) throw this.fail(`chunk ${this.index} failed authentication`);
    this.index++;
    this.push(clear);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    try {
      this.pending.push(data);
      if (this.header === undefined) {
        if (this.pending.length < headerSize(this.combo)) return done();
        this.header = decryptHeader(this.combo, this.keys, this.pending.take(headerSize(this.combo)));
        if (this.header === undefined) throw this.fail('file header failed authentication');
      }
      // a full chunk is decrypted only once a byte beyond it arrives, so _flush always has the last one
      while (this.pending.length > ciphertextChunkSize(this.combo)) {
        this.chunk(this.pending.take(ciphertextChunkSize(this.combo)));
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      if (this.header === undefined) throw this.fail('file is shorter than its header');
      if (this.pending.length > 0) {
        if (this.pending.length < chunkOverhead(this.combo)) throw this.fail(`chunk ${this.index} is truncated`);
        this.chunk(this.pending.take(this.pending.length));
      }
      done();
    } catch (err) {
      done(err as Error);
    }
  }
}

/** Whole-buffer helpers for small payloads (symlink targets, dirid.c9r). */
export function encryptBuffer(combo: CipherCombo, keys: CryptomatorKeys, clear: Buffer): Buffer {
  const header: Header = { nonce: randomBytes(LAYOUT[combo].nonceSize), contentKey: randomBytes(32) };
  const out = [encryptHeader(combo, keys, header)];
  for (let i = 0, off = 0; off < clear.length; i++, off += CLEARTEXT_CHUNK_SIZE) {
    out.push(encryptChunk(combo, keys, header, i, clear.subarray(off, off + CLEARTEXT_CHUNK_SIZE)));
  }
  return Buffer.concat(out);
}

export function decryptBuffer(combo: CipherCombo, keys: CryptomatorKeys, data: Buffer, label: string): Buffer {
  const fail = (what: string) =>
    new CerberusError('INTEGRITY', `${label}: ${what}`, { hint: 'the vault file is damaged or was modified outside Cryptomator' });
  if (data.length < headerSize(combo)) throw fail('file is shorter than its header');
  const header = decryptHeader(combo, keys, data.subarray(0, headerSize(combo)));
  if (header === undefined) throw fail('file header failed authentication');
  const out: Buffer[] = [];
  const size = ciphertextChunkSize(combo);
  for (let i = 0, off = headerSize(combo); off < data.length; i++, off += size) {
    const raw = data.subarray(off, off + size);
    if (raw.length < chunkOverhead(combo)) throw fail(`chunk ${i} is truncated`);
    const clear = decryptChunk(combo, keys, header, i, raw);
    if (clear === undefined) throw fail(`chunk ${i} failed authentication`);
    out.push(clear);
  }
  return Buffer.concat(out);
}
