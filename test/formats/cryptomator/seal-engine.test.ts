import { createHash, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CLEARTEXT_CHUNK_SIZE, ciphertextSize, decryptBuffer } from '../../../src/formats/cryptomator/content.js';
import { SEAL_BUFFER, SEAL_PIECE, SealEngine } from '../../../src/formats/cryptomator/seal-engine.js';

const keys = { encKey: randomBytes(32), macKey: randomBytes(32) };
const COMBOS = ['SIV_GCM', 'SIV_CTRMAC'] as const;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe.each(COMBOS)('SealEngine %s', (combo) => {
  const engine = new SealEngine(combo, keys);

  it.each([0, 1, CLEARTEXT_CHUNK_SIZE, CLEARTEXT_CHUNK_SIZE + 1, 100_000])('seals a whole file of %i bytes into the given buffer, with both digests', (n) => {
    const clear = randomBytes(n);
    const out = Buffer.alloc(ciphertextSize(combo, n) + 100);
    const r = engine.whole(clear, out);
    expect(r.ct.buffer).toBe(out.buffer);
    expect(r.ct.length).toBe(ciphertextSize(combo, n));
    expect(decryptBuffer(combo, keys, Buffer.from(r.ct), 'f')).toEqual(clear);
    expect(r.sha256).toBe(sha(clear));
    expect(r.ctSha256).toBe(sha(r.ct));
  });

  it('refuses an output buffer too small for the ciphertext', () => {
    expect(() => engine.whole(randomBytes(10), Buffer.alloc(20))).toThrow(RangeError);
  });

  // piece lengths: whole pieces, a short last one, a short one in the middle (a partial chunk
  // carried into the next piece), an empty last one, and an empty file
  it.each([
    [[SEAL_PIECE, SEAL_PIECE, 5]],
    [[SEAL_PIECE, 1000, SEAL_PIECE, 0]],
    [[CLEARTEXT_CHUNK_SIZE * 2]],
    [[0]],
  ])('seals a streamed file piece by piece in place: %j', (lengths) => {
    const clear = randomBytes(lengths.reduce((a, b) => a + b, 0));
    const file = engine.file();
    const out: Buffer[] = [];
    let at = 0;
    let digests;
    for (const [i, n] of lengths.entries()) {
      const buf = Buffer.alloc(SEAL_BUFFER);
      clear.copy(buf, 0, at, at + n);
      at += n;
      const r = file.seal(buf, n, i === lengths.length - 1);
      expect(r.ct.buffer).toBe(buf.buffer);
      out.push(Buffer.from(r.ct));
      digests = r.digests;
    }
    const ct = Buffer.concat(out);
    expect(ct.length).toBe(ciphertextSize(combo, clear.length));
    expect(decryptBuffer(combo, keys, ct, 'f')).toEqual(clear);
    expect(digests).toEqual({ sha256: sha(clear), ctSha256: sha(ct) });
  });

  it('gives digests only with the last piece', () => {
    const file = engine.file();
    expect(file.seal(Buffer.alloc(SEAL_BUFFER), 10, false).digests).toBeUndefined();
    expect(file.seal(Buffer.alloc(SEAL_BUFFER), 10, true).digests).toBeDefined();
  });

  it('two files sealed in turn share the scratch space without mixing their bytes', () => {
    const a = randomBytes(SEAL_PIECE * 2);
    const b = randomBytes(SEAL_PIECE * 2);
    const fa = engine.file();
    const fb = engine.file();
    const outA: Buffer[] = [];
    const outB: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      for (const [src, f, out] of [[a, fa, outA], [b, fb, outB]] as const) {
        const buf = Buffer.alloc(SEAL_BUFFER);
        src.copy(buf, 0, i * SEAL_PIECE, (i + 1) * SEAL_PIECE);
        out.push(Buffer.from(f.seal(buf, SEAL_PIECE, i === 1).ct));
      }
    }
    expect(decryptBuffer(combo, keys, Buffer.concat(outA), 'a')).toEqual(a);
    expect(decryptBuffer(combo, keys, Buffer.concat(outB), 'b')).toEqual(b);
  });
});
