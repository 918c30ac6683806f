import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../../src/errors.js';
import {
  CLEARTEXT_CHUNK_SIZE, ciphertextSize, cleartextSize, decryptBuffer, decryptPieces, DecryptStream, encryptBuffer, EncryptStream, headerSize,
} from '../../../src/formats/cryptomator/content.js';

const keys = { encKey: randomBytes(32), macKey: randomBytes(32) };
const COMBOS = ['SIV_GCM', 'SIV_CTRMAC'] as const;

/** Feeds the input in odd-sized pieces so chunk boundaries never line up with writes. */
function pieces(data: Buffer, size = 7777): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += size) parts.push(data.subarray(i, i + size));
  return Readable.from(parts);
}

async function encrypt(combo: (typeof COMBOS)[number], clear: Buffer): Promise<Buffer> {
  return buffer(pieces(clear).pipe(new EncryptStream(combo, keys)));
}

async function decrypt(combo: (typeof COMBOS)[number], ct: Buffer, label = 'docs/a.txt', size = 5000): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(pieces(ct, size), new DecryptStream(combo, keys, label), async (src: AsyncIterable<Buffer>) => {
    for await (const b of src) out.push(b);
  });
  return Buffer.concat(out);
}

async function integrityError(p: Promise<unknown>): Promise<CerberusError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(CerberusError);
  expect((err as CerberusError).code).toBe('INTEGRITY');
  return err as CerberusError;
}

describe.each(COMBOS)('content %s', (combo) => {
  it.each([0, 1, 32767, 32768, 32769, 65536, 100_000])('round-trips %i bytes with the predicted size', async (n) => {
    const clear = randomBytes(n);
    const ct = await encrypt(combo, clear);
    expect(ct.length).toBe(ciphertextSize(combo, n));
    expect(cleartextSize(combo, ct.length)).toBe(n);
    expect((await decrypt(combo, ct)).equals(clear)).toBe(true);
    expect(decryptBuffer(combo, keys, ct, 'x').equals(clear)).toBe(true);
    expect(decryptBuffer(combo, keys, encryptBuffer(combo, keys, clear), 'x').equals(clear)).toBe(true);
  });

  it.each([0, 1, 32768, 65537, 100_000])('decrypts %i bytes arriving in pieces of any size, as a stream and from pieces', async (n) => {
    const clear = randomBytes(n);
    const ct = encryptBuffer(combo, keys, clear);
    const chunk = ciphertextSize(combo, CLEARTEXT_CHUNK_SIZE) - headerSize(combo);
    // pieces that split the header, end exactly on chunk boundaries, or hold the whole file
    for (const size of [1, 97, chunk, chunk + 1, ct.length]) {
      if (size === 1 && n > 40_000) continue;
      expect((await decrypt(combo, ct, 'x', size)).equals(clear)).toBe(true);
      const parts: Buffer[] = [];
      for (let i = 0; i < ct.length; i += size) parts.push(ct.subarray(i, i + size));
      expect(Buffer.concat([...decryptPieces(combo, keys, parts, 'x')()]).equals(clear)).toBe(true);
    }
  });

  it('never repeats a header nonce or a chunk nonce, across files and pool refills', async () => {
    const [nonceSize, tagSize] = combo === 'SIV_GCM' ? [12, 16] : [16, 32];
    const seen = new Set<string>();
    const clear = Buffer.alloc(CLEARTEXT_CHUNK_SIZE * 3, 7);
    // 2,000 files of three chunks draw far more than one pool of random bytes
    for (let i = 0; i < 2000; i++) {
      const ct = encryptBuffer(combo, keys, clear);
      const nonces = [ct.subarray(0, nonceSize)];
      for (let off = headerSize(combo); off < ct.length; off += CLEARTEXT_CHUNK_SIZE + nonceSize + tagSize) nonces.push(ct.subarray(off, off + nonceSize));
      expect(nonces).toHaveLength(4);
      for (const n of nonces) seen.add(n.toString('hex'));
    }
    expect(seen.size).toBe(8000);
  });

  it('an empty file is the header alone', async () => {
    expect((await encrypt(combo, Buffer.alloc(0))).length).toBe(headerSize(combo));
  });

  it('a flipped byte in a chunk fails with INTEGRITY naming the file and chunk', async () => {
    const ct = await encrypt(combo, randomBytes(70_000));
    const bad = Buffer.from(ct);
    const at = headerSize(combo) + ciphertextSize(combo, CLEARTEXT_CHUNK_SIZE) - headerSize(combo) + 100;
    bad[at] = bad[at]! ^ 1;
    const err = await integrityError(decrypt(combo, bad, 'docs/report.pdf'));
    expect(err.message).toContain('docs/report.pdf');
    expect(err.message).toContain('chunk 1');
  });

  it('a flipped header byte fails', async () => {
    const ct = await encrypt(combo, randomBytes(10));
    ct[20] = ct[20]! ^ 0x80;
    expect((await integrityError(decrypt(combo, ct, 'h.txt'))).message).toMatch(/h\.txt: file header/);
  });

  it('swapped chunks fail', async () => {
    const ct = await encrypt(combo, randomBytes(3 * CLEARTEXT_CHUNK_SIZE));
    const h = headerSize(combo);
    const c = ciphertextSize(combo, CLEARTEXT_CHUNK_SIZE) - h;
    const swapped = Buffer.concat([ct.subarray(0, h), ct.subarray(h + c, h + 2 * c), ct.subarray(h, h + c), ct.subarray(h + 2 * c)]);
    expect((await integrityError(decrypt(combo, swapped, 'swap.bin'))).message).toContain('swap.bin: chunk 0');
  });

  it('a chunk spliced from another file fails (header nonce is bound)', async () => {
    const a = await encrypt(combo, randomBytes(100));
    const b = await encrypt(combo, randomBytes(100));
    const h = headerSize(combo);
    await integrityError(decrypt(combo, Buffer.concat([a.subarray(0, h), b.subarray(h)])));
  });

  it('truncation inside a chunk or header fails; wrong keys fail', async () => {
    const ct = await encrypt(combo, randomBytes(40_000));
    await integrityError(decrypt(combo, ct.subarray(0, ct.length - 1)));
    await integrityError(decrypt(combo, ct.subarray(0, headerSize(combo) - 1)));
    await integrityError(decrypt(combo, ct.subarray(0, headerSize(combo) + 5)));
    expect(() => decryptBuffer(combo, { encKey: randomBytes(32), macKey: randomBytes(32) }, ct, 'k')).toThrow(CerberusError);
    expect(cleartextSize(combo, headerSize(combo) + 5)).toBeUndefined();
    expect(cleartextSize(combo, 3)).toBeUndefined();
  });
});
