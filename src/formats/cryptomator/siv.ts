/**
 * AES-SIV (RFC 5297) on node:crypto.
 *
 * Written here because Node has no AES-SIV in its OpenSSL binding (OpenSSL 3 has it, but
 * node:crypto does not expose the SIV tag API) and the only npm implementation, `miscreant`,
 * has not been released since 2018. CMAC is built from AES-CBC with a zero IV (the CBC-MAC
 * chain) so long inputs cost one cipher call instead of one per block.
 *
 * Key layout follows RFC 5297: first half is the S2V/CMAC key, second half the CTR key.
 * Cryptomator feeds macKey ‖ encKey here (see names.ts).
 */
import { createCipheriv, timingSafeEqual } from 'node:crypto';

const BLOCK = 16;

/** The synthetic IV did not match: wrong key, wrong associated data, or tampered ciphertext. */
export class SivAuthenticationError extends Error {
  constructor() {
    super('AES-SIV authentication failed');
    this.name = 'SivAuthenticationError';
  }
}

function aesName(key: Buffer, mode: string): string {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new RangeError(`AES key must be 16, 24 or 32 bytes, got ${key.length}`);
  }
  return `aes-${key.length * 8}-${mode}`;
}

/** Doubling in GF(2^128) with the RFC 5297 / CMAC polynomial x^128 + x^7 + x^2 + x + 1. */
function dbl(block: Buffer): Buffer {
  const out = Buffer.alloc(BLOCK);
  let carry = 0;
  for (let i = BLOCK - 1; i >= 0; i--) {
    const b = block[i]!;
    out[i] = ((b << 1) & 0xff) | carry;
    carry = b >>> 7;
  }
  if (carry) out[BLOCK - 1] = out[BLOCK - 1]! ^ 0x87;
  return out;
}

function xorInto(target: Buffer, offset: number, src: Buffer): void {
  for (let i = 0; i < src.length; i++) target[offset + i] = target[offset + i]! ^ src[i]!;
}

function aesBlock(key: Buffer, block: Buffer): Buffer {
  const c = createCipheriv(aesName(key, 'ecb'), key, null);
  c.setAutoPadding(false);
  return c.update(block);
}

/** Per-key constants: CMAC's subkeys, S2V's first block, and the last associated data's MAC. */
interface KeyState {
  k1: Buffer;
  k2: Buffer;
  /** CMAC(zero block): where every S2V starts */
  d0: Buffer;
  /** names in one folder share their associated data (the dirId): its MAC is kept */
  lastAd?: { data: Buffer; mac: Buffer };
}

// A vault walk decrypts tens of thousands of names with one key: recomputing these made a
// cipher object for every block; a few keys at most are in use at once
const states = new Map<string, KeyState>();

function keyState(key: Buffer): KeyState {
  const id = key.toString('latin1');
  let st = states.get(id);
  if (!st) {
    const k1 = dbl(aesBlock(key, Buffer.alloc(BLOCK)));
    const k2 = dbl(k1);
    st = { k1, k2, d0: cmacWith(key, k1, k2, Buffer.alloc(BLOCK)) };
    if (states.size >= 8) states.delete(states.keys().next().value!);
    states.set(id, st);
  }
  return st;
}

/** AES-CMAC (RFC 4493 / NIST SP 800-38B). */
export function cmac(key: Buffer, message: Buffer): Buffer {
  const { k1, k2 } = keyState(key);
  return cmacWith(key, k1, k2, message);
}

function cmacWith(key: Buffer, k1: Buffer, k2: Buffer, message: Buffer): Buffer {
  const complete = message.length > 0 && message.length % BLOCK === 0;
  const n = complete ? message.length / BLOCK : Math.floor(message.length / BLOCK) + 1;
  const m = Buffer.alloc(n * BLOCK);
  message.copy(m);
  if (complete) {
    xorInto(m, (n - 1) * BLOCK, k1);
  } else {
    m[message.length] = 0x80;
    xorInto(m, (n - 1) * BLOCK, k2);
  }
  const c = createCipheriv(aesName(key, 'cbc'), key, Buffer.alloc(BLOCK));
  c.setAutoPadding(false);
  const out = c.update(m);
  return Buffer.from(out.subarray(out.length - BLOCK));
}

/** S2V over the associated data items followed by the plaintext (RFC 5297 §2.4). */
function s2v(key: Buffer, strings: Buffer[]): Buffer {
  if (strings.length === 0) {
    const one = Buffer.alloc(BLOCK);
    one[BLOCK - 1] = 1;
    return cmac(key, one);
  }
  // RFC 5297 §7: more than 127 components would let distinct AD lists collide
  if (strings.length > 127) throw new RangeError('AES-SIV allows at most 126 associated data items');
  const st = keyState(key);
  let d = st.d0;
  for (let i = 0; i < strings.length - 1; i++) {
    const ad = strings[i]!;
    if (!st.lastAd || !st.lastAd.data.equals(ad)) st.lastAd = { data: Buffer.from(ad), mac: cmac(key, ad) };
    d = dbl(d);
    xorInto(d, 0, st.lastAd.mac);
  }
  const last = strings[strings.length - 1]!;
  let t: Buffer;
  if (last.length >= BLOCK) {
    t = Buffer.from(last);
    xorInto(t, last.length - BLOCK, d);
  } else {
    t = dbl(d);
    const padded = Buffer.alloc(BLOCK);
    last.copy(padded);
    padded[last.length] = 0x80;
    xorInto(t, 0, padded);
  }
  return cmac(key, t);
}

function ctr(key: Buffer, v: Buffer, data: Buffer): Buffer {
  // RFC 5297 §2.5 clears the top bit of the last two 32-bit words so implementations with
  // 32- or 64-bit counters cannot carry across word boundaries
  const q = Buffer.from(v);
  q[8] = q[8]! & 0x7f;
  q[12] = q[12]! & 0x7f;
  const c = createCipheriv(aesName(key, 'ctr'), key, q);
  return Buffer.concat([c.update(data), c.final()]);
}

function splitKey(key: Buffer): [Buffer, Buffer] {
  if (key.length !== 32 && key.length !== 48 && key.length !== 64) {
    throw new RangeError(`AES-SIV key must be 32, 48 or 64 bytes, got ${key.length}`);
  }
  const half = key.length / 2;
  return [key.subarray(0, half), key.subarray(half)];
}

/** Returns SIV (16 bytes) ‖ ciphertext. */
export function sivEncrypt(key: Buffer, plaintext: Buffer, associatedData: Buffer[] = []): Buffer {
  const [macKey, ctrKey] = splitKey(key);
  const v = s2v(macKey, [...associatedData, plaintext]);
  return Buffer.concat([v, ctr(ctrKey, v, plaintext)]);
}

/** Inverse of sivEncrypt; throws SivAuthenticationError when the synthetic IV does not verify. */
export function sivDecrypt(key: Buffer, ciphertext: Buffer, associatedData: Buffer[] = []): Buffer {
  const [macKey, ctrKey] = splitKey(key);
  if (ciphertext.length < BLOCK) throw new SivAuthenticationError();
  const v = ciphertext.subarray(0, BLOCK);
  const plaintext = ctr(ctrKey, v, ciphertext.subarray(BLOCK));
  const expected = s2v(macKey, [...associatedData, plaintext]);
  if (!timingSafeEqual(expected, v)) throw new SivAuthenticationError();
  return plaintext;
}
