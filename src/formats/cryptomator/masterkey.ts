/**
 * `masterkey.cryptomator`: the two 256-bit vault keys, each wrapped (RFC 3394) with a KEK
 * derived by scrypt from the password.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../../errors.js';

/** encKey encrypts (AES), macKey authenticates (HMAC / the CMAC half of SIV). */
export interface CryptomatorKeys {
  encKey: Buffer;
  macKey: Buffer;
}

// Cryptomator writes 999 for every vault format >= 8; the real format lives in vault.cryptomator
export const MASTERKEY_VERSION = 999;

// Gson writes padded base64; third-party writers (yombar) omit the padding
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64');

export const MasterkeyFileSchema = z.object({
  version: z.number().int(),
  scryptSalt: base64,
  scryptCostParam: z.number().int().min(2),
  scryptBlockSize: z.number().int().min(1),
  primaryMasterKey: base64,
  hmacMasterKey: base64,
  versionMac: base64,
});
export type MasterkeyFile = z.infer<typeof MasterkeyFileSchema>;

// RFC 3394 default IV; node's id-aes256-wrap requires it passed explicitly
const WRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

function deriveKek(password: string, salt: Buffer, n: number, r: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // node's default maxmem (32 MiB) is exactly what N=32768,r=8 needs, which it rejects
    const maxmem = 128 * n * r * 2 + 1024 * 1024;
    scrypt(Buffer.from(password.normalize('NFC'), 'utf8'), salt, 32, { N: n, r, p: 1, maxmem }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

function unwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const d = createDecipheriv('id-aes256-wrap', kek, WRAP_IV);
  return Buffer.concat([d.update(wrapped), d.final()]);
}

function wrap(kek: Buffer, key: Buffer): Buffer {
  const c = createCipheriv('id-aes256-wrap', kek, WRAP_IV);
  return Buffer.concat([c.update(key), c.final()]);
}

function versionMac(macKey: Buffer, version: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeInt32BE(version);
  return createHmac('sha256', macKey).update(v).digest();
}

export function parseMasterkeyFile(text: string): MasterkeyFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new CerberusError('KEY', 'masterkey.cryptomator is not valid JSON', { cause });
  }
  const parsed = MasterkeyFileSchema.safeParse(json);
  if (!parsed.success) {
    throw new CerberusError('KEY', `masterkey.cryptomator is malformed: ${parsed.error.issues[0]?.message ?? 'invalid'}`, {
      hint: 'the file must be the one Cryptomator wrote next to vault.cryptomator',
    });
  }
  return parsed.data;
}

/** Unlocks the vault keys. A wrong password surfaces as CerberusError('KEY'). */
export async function unlockMasterkey(file: MasterkeyFile | string, password: string): Promise<CryptomatorKeys> {
  const mk = typeof file === 'string' ? parseMasterkeyFile(file) : file;
  const kek = await deriveKek(password, Buffer.from(mk.scryptSalt, 'base64'), mk.scryptCostParam, mk.scryptBlockSize);
  let encKey: Buffer;
  let macKey: Buffer;
  try {
    encKey = unwrap(kek, Buffer.from(mk.primaryMasterKey, 'base64'));
    macKey = unwrap(kek, Buffer.from(mk.hmacMasterKey, 'base64'));
  } catch (cause) {
    // RFC 3394's integrity check is the only password check this file offers
    throw new CerberusError('KEY', 'wrong password for the Cryptomator vault', {
      hint: 'check the vault password (it is case-sensitive)',
      cause,
    });
  }
  if (encKey.length !== 32 || macKey.length !== 32) {
    throw new CerberusError('KEY', 'masterkey.cryptomator holds keys of the wrong length');
  }
  const mac = Buffer.from(mk.versionMac, 'base64');
  const expected = versionMac(macKey, mk.version);
  if (mac.length !== expected.length || !timingSafeEqual(mac, expected)) {
    throw new CerberusError('KEY', 'masterkey.cryptomator has been tampered with (version MAC mismatch)', {
      hint: 'restore masterkey.cryptomator from its .bkup copy',
    });
  }
  return { encKey, macKey };
}

export interface CreateMasterkeyOptions {
  N?: number;
  r?: number;
  /** supply existing keys to re-wrap them under a new password */
  keys?: CryptomatorKeys;
}

/** Returns fresh (or given) keys and the masterkey.cryptomator JSON text that protects them. */
export async function createMasterkey(
  password: string,
  options: CreateMasterkeyOptions = {},
): Promise<{ keys: CryptomatorKeys; file: MasterkeyFile; text: string }> {
  const n = options.N ?? 32768;
  const r = options.r ?? 8;
  const keys = options.keys ?? { encKey: randomBytes(32), macKey: randomBytes(32) };
  const salt = randomBytes(8);
  const kek = await deriveKek(password, salt, n, r);
  const file: MasterkeyFile = {
    version: MASTERKEY_VERSION,
    scryptSalt: salt.toString('base64'),
    scryptCostParam: n,
    scryptBlockSize: r,
    primaryMasterKey: wrap(kek, keys.encKey).toString('base64'),
    hmacMasterKey: wrap(kek, keys.macKey).toString('base64'),
    versionMac: versionMac(keys.macKey, MASTERKEY_VERSION).toString('base64'),
  };
  return { keys, file, text: JSON.stringify(file, null, 2) };
}
