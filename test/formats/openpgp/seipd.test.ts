import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf } from '../../helpers/errors.js';
import { gpg, keyPairWithGpg, killAgents } from '../../helpers/gpg.js';
import { generateKeyPair, readPrivateKey } from '../../../src/formats/openpgp/keys.js';
import { decryptBuffer, decryptStream, encryptBuffer, encryptStream, type Compression } from '../../../src/formats/openpgp/message.js';
import { PARTIAL } from '../../../src/formats/openpgp/packet-stream.js';
import { literalPacket, Sealer } from '../../../src/formats/openpgp/seipd.js';
import { deflateSync } from 'node:zlib';

// The bulk of every backup is encrypted by seipd.ts, not by openpgp.js: these tests hold it to
// what GnuPG and openpgp.js read, at every packet boundary, and to failing loudly on damage.

const PASS = 'pass phrase';
let tmp: string;
let home: string;
let pub: openpgp.PublicKey;
let priv: openpgp.PrivateKey;

const collect = async (s: Readable): Promise<Buffer> => {
  const out: Buffer[] = [];
  for await (const c of s) out.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(out);
};

const chunksOf = (b: Buffer, n: number): Readable => {
  const parts: Buffer[] = [];
  for (let i = 0; i < b.length; i += n) parts.push(b.subarray(i, i + n));
  return Readable.from(parts);
};

const seal = async (data: Buffer, compression: Compression, chunk = 65_536): Promise<Buffer> =>
  collect(await encryptStream(chunksOf(data, chunk), { keys: [pub] }, compression));

const open = async (enc: Buffer, chunk = 65_536): Promise<Buffer> => collect(await decryptStream(chunksOf(enc, chunk), { key: priv }, 'volume'));

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerb-seipd-'));
  ({ pub, priv, home } = await keyPairWithGpg(tmp, 'seipd', PASS));
});

afterAll(async () => {
  await killAgents([home]);
  await fsp.rm(tmp, { recursive: true, force: true });
});

// around every boundary: the literal header (6 bytes) shifts the data against the 1 MiB parts
const SIZES = [0, 1, 191, 192, 8383, 8384, PARTIAL - 6, PARTIAL - 5, PARTIAL, PARTIAL + 1, 2 * PARTIAL - 6, 3 * PARTIAL + 12_345];

describe('encryptStream (SEIPD v1 through node:crypto)', () => {
  for (const compression of ['none', 'zlib'] as const) {
    it(`round-trips every size near a packet boundary, and gpg and openpgp.js read each (compression ${compression})`, { timeout: 60_000 }, async () => {
      for (const size of SIZES) {
        // half text, half random: zlib has something to do and something it cannot shrink
        const data = Buffer.concat([Buffer.alloc(Math.floor(size / 2), 'document '), randomBytes(size - Math.floor(size / 2))]);
        const enc = await seal(data, compression, 10_007);
        expect((await open(enc)).equals(data), `size ${size}`).toBe(true);
        const byGpg = await gpg(home, ['--passphrase', PASS, '--decrypt'], enc);
        expect(byGpg.code, `gpg, size ${size}: ${byGpg.stderr}`).toBe(0);
        expect(byGpg.stdout.equals(data), `gpg, size ${size}`).toBe(true);
        expect(Buffer.from(await decryptBuffer(enc, { key: priv }, 'm')).equals(data), `openpgp.js, size ${size}`).toBe(true);
      }
    });
  }

  it('writes session-key packets, then one SEIPD v1 packet in 1 MiB partial lengths with an MDC', async () => {
    const enc = await seal(randomBytes(3 * PARTIAL), 'none');
    const listing = (await gpg(home, ['--passphrase', PASS, '--list-packets'], enc)).stdout.toString();
    expect(listing).toMatch(/:pubkey enc packet: version 3, algo 18/);
    expect(listing).toMatch(/:encrypted data packet:\n\tlength: unknown\n\tmdc_method: 2/);
    expect(listing).toMatch(/:literal data packet:\n\tmode b/);
    expect(listing).not.toMatch(/compressed packet/);
    // the SEIPD header follows the PKESK: new format tag 18, then a 2^20 partial length octet
    const pkeskLength = enc[1]!;
    expect(enc[0]).toBe(0xc1);
    expect(enc[2 + pkeskLength]).toBe(0xd2);
    expect(enc[3 + pkeskLength]).toBe(0xf4);
    expect(enc[4 + pkeskLength]).toBe(1); // version 1
  });

  it('a passphrase seals with a symmetric-key packet that gpg opens', async () => {
    const data = randomBytes(PARTIAL + 77);
    const enc = await collect(await encryptStream(chunksOf(data, 4096), { passphrase: 'sym pass' }, 'zlib'));
    const r = await gpg(home, ['--passphrase', 'sym pass', '--decrypt'], enc);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    expect((await collect(await decryptStream(chunksOf(enc, 333), { passphrase: 'sym pass' }, 'm'))).equals(data)).toBe(true);
  });

  it('reads its own messages in chunks of any size, down to single bytes', async () => {
    const data = randomBytes(20_000);
    for (const compression of ['none', 'zlib'] as const) {
      const enc = await seal(data, compression);
      for (const chunk of [1, 7, 4096]) expect((await open(enc, chunk)).equals(data), `${compression}, chunks of ${chunk}`).toBe(true);
    }
  });
});

describe('decryptStream', () => {
  it('a reader that stops early closes the input (the volume being read)', async () => {
    const data = randomBytes(8 * PARTIAL);
    const enc = await seal(data, 'none');
    const input = chunksOf(enc, 65_536);
    const plain = await decryptStream(input, { key: priv }, 'volume');
    let got = 0;
    for await (const c of plain) {
      got += (c as Buffer).length;
      if (got >= PARTIAL) break; // destroys the stream
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(plain.destroyed).toBe(true);
    expect(input.destroyed).toBe(true);
  });

  it('reads what openpgp.js wrote (repositories from before this path)', async () => {
    const data = randomBytes(2 * PARTIAL + 5);
    for (const c of [openpgp.enums.compression.uncompressed, openpgp.enums.compression.zlib, openpgp.enums.compression.zip]) {
      const message = await openpgp.createMessage({ binary: data });
      const enc = await openpgp.encrypt({
        message,
        encryptionKeys: pub,
        format: 'binary',
        config: { aeadProtect: false, preferredCompressionAlgorithm: c },
      });
      expect((await open(Buffer.from(enc), 50_000)).equals(data), `compression ${c}`).toBe(true);
    }
  });

  it('hands AEAD messages and ciphers it does not stream to openpgp.js', async () => {
    const data = randomBytes(100_000);
    const aead = await openpgp.encrypt({
      message: await openpgp.createMessage({ binary: data }),
      passwords: ['x'],
      format: 'binary',
      config: { aeadProtect: true },
    });
    expect((await collect(await decryptStream(chunksOf(Buffer.from(aead), 9999), { passphrase: 'x' }, 'm'))).equals(data)).toBe(true);
    const twofish = await gpg(home, ['--passphrase', 'y', '--s2k-count', '65536', '--symmetric', '--cipher-algo', 'TWOFISH'], data);
    expect(twofish.code, twofish.stderr).toBe(0);
    expect((await collect(await decryptStream(chunksOf(twofish.stdout, 9999), { passphrase: 'y' }, 'm'))).equals(data)).toBe(true);
  });

  it('gives KEY for a wrong passphrase, whatever session key it yields', { timeout: 60_000 }, async () => {
    // A passphrase packet carries no check: a wrong one yields a key that fails the quick check
    // (AES), or one for a cipher handed to openpgp.js, which then fails somewhere. Both are KEY.
    const data = randomBytes(70_000);
    for (const algo of ['AES256', 'TWOFISH']) {
      const g = await gpg(home, ['--passphrase', 'right', '--s2k-count', '65536', '--symmetric', '--cipher-algo', algo], data);
      expect(g.code, g.stderr).toBe(0);
      const e = await errorOf(decryptStream(chunksOf(g.stdout, 9999), { passphrase: 'wrong' }, 'volume 3').then(collect));
      expect(e.code, `${algo}: ${e.message}`).toBe('KEY');
      expect(e.message).toContain('volume 3');
    }
    // ours wrap a random session key: a wrong passphrase unwraps noise, a valid algorithm byte now and then
    for (let i = 0; i < 40; i++) {
      const enc = await encryptBuffer(data, { passphrase: 'right' }, 'none');
      const e = await errorOf(decryptBuffer(enc, { passphrase: `wrong ${i}` }, 'm'));
      expect(e.code, e.message).toBe('KEY');
    }
    // with a key, the session key is checked by its packet: a bad quick check is damage
    const enc = Buffer.from(await seal(data, 'none'));
    const at = 2 + enc[1]! + 2 + 3;
    enc[at] = enc[at]! ^ 0x01;
    expect((await errorOf(open(enc))).code).toBe('INTEGRITY');
  });

  it('gives KEY, not a hang, where openpgp.js streaming a wrong passphrase\'s noise never ends', { timeout: 15_000 }, async () => {
    // gpg --symmetric --cipher-algo TWOFISH with "right"; under "wrong", openpgp.js 6.3 left to
    // stream it unchecked never settles
    const twofish = Buffer.from(
      'jA0ECgMCzbSSVX7ko3pg0n0BiKd1BXAZWYJBsxGtrEPxQFykQBlsnND3JpF7HMAftRzaP3aymVPXsvtW7gWb/1lvNy88kTv/nXi+sP8b5H5NJsrNWbx7RzbNfhMUne2upiX5sNVLNZkPVsofCxLABNyJqliJubfLlTrz0lAOJc6fa6K2ikt0R7BJx0xN0w==',
      'base64',
    );
    const e = await errorOf(decryptStream(chunksOf(twofish, 50), { passphrase: 'wrong' }, 'volume 4').then(collect));
    expect(e.code, e.message).toBe('KEY');
    expect((await collect(await decryptStream(chunksOf(twofish, 50), { passphrase: 'right' }, 'volume 4'))).length).toBe(64);
  });

  it('refuses, without an uncaught error, megabytes after the end of the compressed stream', async () => {
    const data = randomBytes(300_000);
    const sessionKey = randomBytes(32);
    const preamble = await openpgp.encryptSessionKey({ data: sessionKey, algorithm: 'aes256', encryptionKeys: pub, format: 'binary', config: { aeadProtect: false } });
    const sealed = (tail: Buffer) => {
      const out: Buffer[] = [];
      // told to write a deflate stream and then more: a valid MDC over an odd inside
      const sealer = new Sealer(preamble, sessionKey, (b) => out.push(b), 'zlib');
      sealer.write(deflateSync(literalPacket(data)));
      sealer.write(tail);
      sealer.end();
      return Buffer.concat(out);
    };
    // megabytes past the end: refused
    const e = await errorOf(open(sealed(randomBytes(3 * PARTIAL)), 4096));
    expect(e.code, e.message).toBe('INTEGRITY');
    // a byte past the end, in the same piece as the end: zlib stops there, as gpg's does; the
    // contents are whole and the MDC holds
    expect((await open(sealed(Buffer.from('x')), 4096)).equals(data)).toBe(true);
  });

  it('gives KEY for the wrong key and INTEGRITY for damage anywhere, never a clean end', { timeout: 60_000 }, async () => {
    const other = await generateKeyPair({ name: 'other', rsa: false, passphrase: undefined });
    await fsp.writeFile(path.join(tmp, 'other.asc'), other.privateArmored);
    const otherKey = await readPrivateKey(path.join(tmp, 'other.asc'), undefined);
    const data = randomBytes(3 * PARTIAL + 1000);
    for (const compression of ['none', 'zlib'] as const) {
      const enc = await seal(data, compression);
      const wrong = await errorOf(decryptStream(chunksOf(enc, 65_536), { key: otherKey }, 'volume 7').then(collect));
      expect(wrong.code).toBe('KEY');
      expect(wrong.message).toContain('volume 7');
      const pkesk = 2 + enc[1]!;
      // the SEIPD header, the random prefix, the middle, a part boundary, the MDC, the last byte
      for (const at of [pkesk, pkesk + 4, pkesk + 20, Math.floor(enc.length / 2), pkesk + 2 + PARTIAL, enc.length - 15, enc.length - 1]) {
        const bad = Buffer.from(enc);
        bad[at] = bad[at]! ^ 0x10;
        const e = await errorOf(open(bad));
        expect(e.code, `${compression}, byte ${at}: ${e.message}`).toBe('INTEGRITY');
      }
      for (const cut of [pkesk + 3, pkesk + 100, PARTIAL, enc.length - 22, enc.length - 1]) {
        const e = await errorOf(open(enc.subarray(0, cut)));
        expect(e.code, `${compression}, cut at ${cut}: ${e.message}`).toBe('INTEGRITY');
      }
      // the second and third 1 MiB parts swapped: CFB decrypts them, the MDC catches it
      const part = (k: number) => pkesk + 2 + k * (PARTIAL + 1);
      const swapped = Buffer.concat([
        enc.subarray(0, part(1)),
        enc.subarray(part(2), part(3)),
        enc.subarray(part(1), part(2)),
        enc.subarray(part(3)),
      ]);
      expect(swapped.length).toBe(enc.length);
      expect((await errorOf(open(swapped))).code, compression).toBe('INTEGRITY');
      // trailing bytes after the message
      expect((await errorOf(open(Buffer.concat([enc, Buffer.from('x')])))).code).toBe('INTEGRITY');
    }
    // not random bytes: those can read as session-key packets, and then KEY is a fair answer
    expect((await errorOf(open(Buffer.from('this is no OpenPGP message. '.repeat(200))))).code).toBe('INTEGRITY');
  });
});
