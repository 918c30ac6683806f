import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { buffer } from 'node:stream/consumers';
import { afterAll, describe, expect, it } from 'vitest';
import { ciphertextSize, decryptBuffer } from '../../src/formats/cryptomator/content.js';
import { SEAL_PIECE, SealEngine } from '../../src/formats/cryptomator/seal-engine.js';
import { sealedFile } from '../../src/vault/sealed-file.js';

const keys = { encKey: randomBytes(32), macKey: randomBytes(32) };
const engine = new SealEngine('SIV_GCM', keys);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cerberus-sealed-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function file(name: string, data: Buffer): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  return p;
}

describe('sealedFile', () => {
  it.each([0, 1, SEAL_PIECE, SEAL_PIECE + 1, 3 * SEAL_PIECE + 12345])('streams the ciphertext of a %i-byte file, with its digests and progress', async (n) => {
    const data = randomBytes(n);
    const p = file(`f${n}`, data);
    let read = 0;
    const s = sealedFile(p, n, engine.file(), (b) => (read += b));
    const ct = await buffer(s.body);
    expect(ct.length).toBe(ciphertextSize('SIV_GCM', n));
    expect(decryptBuffer('SIV_GCM', keys, ct, p)).toEqual(data);
    expect(s.outcome).toEqual({ sourceBytes: n, digests: { sha256: sha(data), ctSha256: sha(ct) } });
    expect(read).toBe(n);
  });

  it('pads a file that shrank since it was listed to its listed size, and says so', async () => {
    const data = randomBytes(SEAL_PIECE + 10);
    const p = file('shrank', data);
    const listed = 2 * SEAL_PIECE + 7;
    const s = sealedFile(p, listed, engine.file(), () => undefined);
    const clear = decryptBuffer('SIV_GCM', keys, await buffer(s.body), p);
    expect(clear.length).toBe(listed);
    expect(clear.subarray(0, data.length)).toEqual(data);
    expect(clear.subarray(data.length).every((b) => b === 0)).toBe(true);
    expect(s.outcome.sourceBytes).toBe(data.length);
  });

  it('cuts a file that grew since it was listed, and says so', async () => {
    const data = randomBytes(SEAL_PIECE * 2);
    const p = file('grew', data);
    const s = sealedFile(p, SEAL_PIECE, engine.file(), () => undefined);
    const clear = decryptBuffer('SIV_GCM', keys, await buffer(s.body), p);
    expect(clear).toEqual(data.subarray(0, SEAL_PIECE));
    expect(s.outcome.sourceBytes).toBe(SEAL_PIECE + 1);
  });

  it('closes the file when the consumer gives up halfway', async () => {
    const p = file('big', randomBytes(4 * SEAL_PIECE));
    const s = sealedFile(p, 4 * SEAL_PIECE, engine.file(), () => undefined);
    for await (const _ of s.body) {
      expect(openFiles()).toContain(p);
      break; // destroys the stream after the first piece
    }
    // the generator's finally closes the handle once the stream is destroyed
    await new Promise((r) => setTimeout(r, 50));
    expect(openFiles()).not.toContain(p);
    expect(s.outcome.digests).toBeUndefined();
  });

  it('fails on a file that is gone', async () => {
    const s = sealedFile(path.join(dir, 'missing'), 10, engine.file(), () => undefined);
    await expect(buffer(s.body)).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

function openFiles(): string[] {
  return fs.readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      return [fs.readlinkSync(`/proc/self/fd/${fd}`)];
    } catch {
      return []; // the descriptor readdir itself used
    }
  });
}
