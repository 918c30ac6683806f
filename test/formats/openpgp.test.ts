import { randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorOf } from '../helpers/errors.js';
import { gpg, killAgents } from '../helpers/gpg.js';
import { generateKeyPair, readPrivateKey, readPublicKeys, type GeneratedKeyPair } from '../../src/formats/openpgp/keys.js';
import {
  decryptBuffer,
  decryptStream,
  encryptBuffer,
  encryptStream,
  type Compression,
  type Opening,
} from '../../src/formats/openpgp/message.js';

const KEY_PASS = 'key passphrase with spaces';
const SYM_PASS = 'symmetric passphrase';

let tmp: string;
const homes: string[] = [];

async function newHome(): Promise<string> {
  const home = await fsp.mkdtemp(path.join(tmp, 'gnupg-'));
  await fsp.chmod(home, 0o700);
  homes.push(home);
  return home;
}

async function importKeys(home: string, key: GeneratedKeyPair, secret: boolean): Promise<void> {
  const dir = await fsp.mkdtemp(path.join(tmp, 'keys-'));
  await fsp.writeFile(path.join(dir, 'pub.asc'), key.publicArmored);
  await fsp.writeFile(path.join(dir, 'sec.asc'), key.privateArmored);
  const r = await gpg(home, ['--passphrase', KEY_PASS, '--import', path.join(dir, secret ? 'sec.asc' : 'pub.asc')]);
  expect(r.code, r.stderr).toBe(0);
}

async function writeKeyFiles(key: GeneratedKeyPair, name: string): Promise<{ pub: string; sec: string }> {
  const pub = path.join(tmp, `${name}.pub.asc`);
  const sec = path.join(tmp, `${name}.key.asc`);
  await fsp.writeFile(pub, key.publicArmored);
  await fsp.writeFile(sec, key.privateArmored);
  return { pub, sec };
}

const collect = async (s: Readable): Promise<Buffer> => {
  const out: Buffer[] = [];
  for await (const c of s) out.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(out);
};

/** Splits a buffer into uneven chunks, as a network or file stream would deliver it. */
const chunksOf = (b: Buffer | Uint8Array, n = 65_521): Readable => {
  const buf = Buffer.from(b);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += n) parts.push(buf.subarray(i, i + n));
  return Readable.from(parts);
};


/** Checks the packets gpg sees: SEIPD v1 with MDC, no AEAD, compression as asked. */
function expectSeipdV1(listing: string, compression: Compression | undefined): void {
  expect(listing).toMatch(/:encrypted data packet:\n(\t[^\n]*\n)*?\tmdc_method: 2\n/);
  expect(listing).not.toMatch(/:aead encrypted packet:/);
  expect(listing).not.toMatch(/aead [1-9]/);
  if (compression === 'zlib') expect(listing).toMatch(/:compressed packet: algo=2/);
  if (compression === 'none') expect(listing).not.toMatch(/:compressed packet:/);
  if (compression !== undefined) expect(listing).toMatch(/:literal data packet:/);
}

let alice: GeneratedKeyPair; // ECC, passphrase-protected
let aliceFiles: { pub: string; sec: string };
let alicePub: openpgp.PublicKey;
let alicePriv: openpgp.PrivateKey;
let bob: GeneratedKeyPair; // ECC, no passphrase
let bobFiles: { pub: string; sec: string };
let aliceHome: string; // holds alice's secret key
let emptyHome: string;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerb-pgp-'));
  alice = await generateKeyPair({ name: 'Alice Backup', email: 'alice@example.org', rsa: false, passphrase: KEY_PASS });
  bob = await generateKeyPair({ name: 'Bob', rsa: false, passphrase: undefined });
  aliceFiles = await writeKeyFiles(alice, 'alice');
  bobFiles = await writeKeyFiles(bob, 'bob');
  alicePub = (await readPublicKeys([aliceFiles.pub]))[0]!;
  alicePriv = await readPrivateKey(aliceFiles.sec, KEY_PASS);
  aliceHome = await newHome();
  await importKeys(aliceHome, alice, true);
  emptyHome = await newHome();
});

afterAll(async () => {
  await killAgents(homes);
  await fsp.rm(tmp, { recursive: true, force: true });
});

describe('generateKeyPair', () => {
  it('makes a v4 Curve25519 key pair that gpg imports, secret key included', async () => {
    expect(alice.fingerprint).toMatch(/^[0-9A-F]{40}$/); // v4: 40 hex digits (v6 has 64)
    expect(alice.publicArmored).toMatch(/^-----BEGIN PGP PUBLIC KEY BLOCK-----/);
    expect(alice.privateArmored).toMatch(/^-----BEGIN PGP PRIVATE KEY BLOCK-----/);
    const pub = await gpg(aliceHome, ['--with-colons', '--fixed-list-mode', '--list-keys']);
    expect(pub.code, pub.stderr).toBe(0);
    const rows = pub.stdout.toString().split('\n').map((l) => l.split(':'));
    expect(rows.find((r) => r[0] === 'fpr')?.[9]).toBe(alice.fingerprint);
    expect(rows.find((r) => r[0] === 'pub')?.[3]).toBe('22'); // EdDSA primary
    const sub = rows.find((r) => r[0] === 'sub');
    expect(sub?.[3]).toBe('18'); // ECDH subkey
    expect(sub?.[11]).toContain('e');
    expect(rows.find((r) => r[0] === 'uid')?.[9]).toBe('Alice Backup <alice@example.org>');
    const sec = await gpg(aliceHome, ['--with-colons', '--list-secret-keys']);
    expect(sec.stdout.toString()).toMatch(new RegExp(`^fpr:+${alice.fingerprint}:`, 'm'));
    expect(sec.stdout.toString()).toMatch(/^ssb:/m);
  });

  it('protects the private key with the passphrase', async () => {
    await expect(readPrivateKey(aliceFiles.sec, KEY_PASS)).resolves.toBeDefined();
    expect((await errorOf(readPrivateKey(aliceFiles.sec, 'wrong'))).code).toBe('KEY');
    expect((await errorOf(readPrivateKey(aliceFiles.sec, undefined))).code).toBe('KEY');
    // gpg refuses it with a wrong passphrase too
    const home = await newHome();
    await importKeys(home, alice, true);
    const enc = await encryptBuffer(Buffer.from('x'), { keys: [alicePub] }, 'none');
    const r = await gpg(home, ['--passphrase', 'wrong', '--decrypt'], Buffer.from(enc));
    expect(r.code).not.toBe(0);
    // a key made without a passphrase needs none
    await expect(readPrivateKey(bobFiles.sec, undefined)).resolves.toBeDefined();
  });

  it('makes an RSA 4096 key pair that gpg imports and uses', { timeout: 180_000 }, async () => {
    const rsa = await generateKeyPair({ name: 'RSA', rsa: true, passphrase: KEY_PASS });
    expect(rsa.fingerprint).toMatch(/^[0-9A-F]{40}$/);
    const home = await newHome();
    await importKeys(home, rsa, true);
    const list = await gpg(home, ['--with-colons', '--list-keys']);
    const rows = list.stdout.toString().split('\n').map((l) => l.split(':'));
    const pub = rows.find((r) => r[0] === 'pub');
    expect(pub?.[3]).toBe('1');
    expect(pub?.[2]).toBe('4096');
    const files = await writeKeyFiles(rsa, 'rsa');
    const keys = await readPublicKeys([files.pub]);
    const data = randomBytes(10_000);
    const enc = await encryptBuffer(data, { keys }, 'zlib');
    const r = await gpg(home, ['--passphrase', KEY_PASS, '--decrypt'], Buffer.from(enc));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.equals(data)).toBe(true);
    // and back: gpg encrypts to it, cerberus decrypts
    const g = await gpg(home, ['--trust-model', 'always', '--encrypt', '--recipient', rsa.fingerprint], data);
    expect(g.code, g.stderr).toBe(0);
    const key = await readPrivateKey(files.sec, KEY_PASS);
    expect(Buffer.from(await decryptBuffer(g.stdout, { key }, 'rsa message')).equals(data)).toBe(true);
  });
});

describe('what cerberus encrypts, gpg decrypts', () => {
  for (const compression of ['none', 'zlib'] as const) {
    it(`encryptBuffer to a key, compression ${compression}`, async () => {
      const data = Buffer.concat([Buffer.from('manifest '.repeat(500)), randomBytes(5000)]);
      const enc = Buffer.from(await encryptBuffer(data, { keys: [alicePub] }, compression));
      const r = await gpg(aliceHome, ['--passphrase', KEY_PASS, '--decrypt'], enc);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
      const packets = await gpg(aliceHome, ['--passphrase', KEY_PASS, '--list-packets'], enc);
      expect(packets.stdout.toString()).toMatch(/:pubkey enc packet: version 3, algo 18/);
      expectSeipdV1(packets.stdout.toString(), compression);
      // without the key gpg still sees the outer packets
      const outer = await gpg(emptyHome, ['--list-packets'], enc);
      expect(outer.code).not.toBe(0);
      expectSeipdV1(outer.stdout.toString(), undefined);
    });

    it(`encryptStream to a key, compression ${compression}`, async () => {
      const data = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(1024 * 1024, 'a')]);
      const enc = await collect(await encryptStream(chunksOf(data), { keys: [alicePub] }, compression));
      if (compression === 'zlib') expect(enc.length).toBeLessThan(data.length);
      const r = await gpg(aliceHome, ['--passphrase', KEY_PASS, '--decrypt'], enc);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
      const packets = await gpg(aliceHome, ['--passphrase', KEY_PASS, '--list-packets'], enc);
      expectSeipdV1(packets.stdout.toString(), compression);
    });

    it(`encryptBuffer and encryptStream with a passphrase, compression ${compression}`, async () => {
      const data = randomBytes(200_000);
      const encB = Buffer.from(await encryptBuffer(data, { passphrase: SYM_PASS }, compression));
      const encS = await collect(await encryptStream(chunksOf(data), { passphrase: SYM_PASS }, compression));
      for (const enc of [encB, encS]) {
        const r = await gpg(emptyHome, ['--passphrase', SYM_PASS, '--decrypt'], enc);
        expect(r.code, r.stderr).toBe(0);
        expect(r.stdout.equals(data)).toBe(true);
        const packets = (await gpg(emptyHome, ['--passphrase', SYM_PASS, '--list-packets'], enc)).stdout.toString();
        expect(packets).toMatch(/:symkey enc packet: version 4,/);
        expectSeipdV1(packets, compression);
        const wrong = await gpg(emptyHome, ['--passphrase', 'not it', '--decrypt'], enc);
        expect(wrong.code).not.toBe(0);
      }
    });
  }

  it('encrypts to several recipients, each of whom can decrypt alone', async () => {
    const keys = await readPublicKeys([aliceFiles.pub, bobFiles.pub]);
    expect(keys).toHaveLength(2);
    const data = randomBytes(1000);
    const enc = Buffer.from(await encryptBuffer(data, { keys }, 'zlib'));
    const bobHome = await newHome();
    await importKeys(bobHome, bob, true);
    for (const [home, pass] of [[aliceHome, KEY_PASS], [bobHome, '']] as const) {
      const r = await gpg(home, ['--passphrase', pass, '--decrypt'], enc);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.equals(data)).toBe(true);
    }
  });
});

describe('what gpg encrypts, cerberus decrypts', () => {
  it('a message to the generated key, with gpg default compression, streamed', async () => {
    const data = Buffer.concat([randomBytes(2 * 1024 * 1024), Buffer.alloc(100_000, 'z')]);
    const g = await gpg(aliceHome, ['--trust-model', 'always', '--encrypt', '--recipient', alice.fingerprint], data);
    expect(g.code, g.stderr).toBe(0);
    expect((await collect(await decryptStream(chunksOf(g.stdout, 4096), { key: alicePriv }, 'gpg message'))).equals(data)).toBe(true);
    expect(Buffer.from(await decryptBuffer(g.stdout, { key: alicePriv }, 'gpg message')).equals(data)).toBe(true);
  });

  it('a symmetric message', async () => {
    const data = randomBytes(50_000);
    const g = await gpg(emptyHome, ['--passphrase', SYM_PASS, '--s2k-count', '65536', '--symmetric', '--cipher-algo', 'AES256'], data);
    expect(g.code, g.stderr).toBe(0);
    expect((await collect(await decryptStream(chunksOf(g.stdout), { passphrase: SYM_PASS }, 'gpg message'))).equals(data)).toBe(true);
    expect(Buffer.from(await decryptBuffer(g.stdout, { passphrase: SYM_PASS }, 'gpg message')).equals(data)).toBe(true);
  });
});

describe('decryption failures', () => {
  const data = Buffer.from('the plaintext '.repeat(20_000));
  const openers: Array<[string, () => Opening, () => Opening, (c: Compression) => Promise<Uint8Array>]> = [
    ['key', () => ({ key: alicePriv }), () => ({ key: bobPriv }), (c) => encryptBuffer(data, { keys: [alicePub] }, c)],
    ['passphrase', () => ({ passphrase: SYM_PASS }), () => ({ passphrase: 'wrong' }), (c) => encryptBuffer(data, { passphrase: SYM_PASS }, c)],
  ];
  let bobPriv: openpgp.PrivateKey;
  beforeAll(async () => {
    bobPriv = await readPrivateKey(bobFiles.sec, undefined);
  });

  for (const [mode, right, wrong, encrypt] of openers) {
    it(`decrypts with the right ${mode} and gives KEY with a wrong one`, async () => {
      const enc = await encrypt('zlib');
      expect(Buffer.from(await decryptBuffer(enc, right(), 'm')).equals(data)).toBe(true);
      expect((await collect(await decryptStream(chunksOf(enc), right(), 'm'))).equals(data)).toBe(true);
      const e1 = await errorOf(decryptBuffer(enc, wrong(), 'manifest.json.gpg'));
      expect(e1.code).toBe('KEY');
      expect(e1.message).toContain('manifest.json.gpg');
      const e2 = await errorOf(decryptStream(chunksOf(enc), wrong(), 'm').then(collect));
      expect(e2.code).toBe('KEY');
    });

    for (const compression of ['none', 'zlib'] as const) {
      it(`gives INTEGRITY for a flipped byte (${mode}, compression ${compression})`, async () => {
        const enc = Buffer.from(await encrypt(compression));
        // flip inside the encrypted data, past the session key packet, and at the very end (the MDC)
        for (const at of [Math.floor(enc.length / 2), Math.floor(enc.length * 0.9), enc.length - 1]) {
          const bad = Buffer.from(enc);
          bad[at] = bad[at]! ^ 0x01;
          const e1 = await errorOf(decryptBuffer(bad, right(), 'm'));
          expect(e1.code, `buffer, byte ${at}`).toBe('INTEGRITY');
          const e2 = await errorOf(decryptStream(chunksOf(bad), right(), 'm').then(collect));
          expect(e2.code, `stream, byte ${at}`).toBe('INTEGRITY');
        }
      });
    }
  }

  it('gives INTEGRITY for a truncated message and for what is no message at all', async () => {
    const enc = Buffer.from(await encryptBuffer(data, { keys: [alicePub] }, 'none'));
    expect((await errorOf(decryptBuffer(enc.subarray(0, enc.length - 100), { key: alicePriv }, 'm'))).code).toBe('INTEGRITY');
    expect((await errorOf(decryptStream(chunksOf(enc.subarray(0, enc.length - 100)), { key: alicePriv }, 'm').then(collect))).code).toBe('INTEGRITY');
    expect((await errorOf(decryptBuffer(Buffer.from('this is no OpenPGP message. '.repeat(20)), { key: alicePriv }, 'm'))).code).toBe('INTEGRITY');
  });
});

describe('key files', () => {
  it('reads armored and binary public keys, and refuses what is not one', async () => {
    const home = await newHome();
    await importKeys(home, alice, false);
    const bin = await gpg(home, ['--export', alice.fingerprint]);
    const binFile = path.join(tmp, 'alice.pub.gpg');
    await fsp.writeFile(binFile, bin.stdout);
    const keys = await readPublicKeys([binFile, aliceFiles.pub]);
    expect(keys.map((k) => k.getFingerprint().toUpperCase())).toEqual([alice.fingerprint, alice.fingerprint]);
    const junk = path.join(tmp, 'junk.asc');
    await fsp.writeFile(junk, 'not a key');
    expect((await errorOf(readPublicKeys([junk]))).code).toBe('KEY');
    expect((await errorOf(readPublicKeys([path.join(tmp, 'absent.asc')]))).code).toBe('IO');
    expect((await errorOf(readPrivateKey(aliceFiles.pub, KEY_PASS))).code).toBe('KEY');
  });
});
