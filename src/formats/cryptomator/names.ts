/**
 * Cleartext names ↔ vault names, and dirIds ↔ `d/XX/YYYY…` folders (vault format 8).
 */
import { createHash } from 'node:crypto';
import { CerberusError } from '../../errors.js';
import type { CryptomatorKeys } from './masterkey.js';
import { SivAuthenticationError, sivDecrypt, sivEncrypt } from './siv.js';

export const ROOT_DIR_ID = '';
export const DEFAULT_SHORTENING_THRESHOLD = 220;

// RFC 5297 puts the CMAC key first: Cryptomator's "macKey" is the S2V half, "encKey" the CTR half
const sivKey = (keys: CryptomatorKeys) => Buffer.concat([keys.macKey, keys.encKey]);

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function base32(data: Buffer): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

// Guava's base64Url() pads; Node's 'base64url' does not, so padding is restored by hand
function base64UrlPadded(data: Buffer): string {
  return data.toString('base64').replace(/\+/g, '-').replace(/\//g, '_');
}

// a walk and a writer both ask for every folder's path; each costs an AES-SIV and a SHA-1
const dirPaths = new WeakMap<CryptomatorKeys, Map<string, string>>();

/** `d/XX/YYYY…` (30 chars), relative to the vault root, with `/` separators. */
export function dirPath(keys: CryptomatorKeys, dirId: string): string {
  let known = dirPaths.get(keys);
  if (!known) dirPaths.set(keys, (known = new Map()));
  let p = known.get(dirId);
  if (p === undefined) known.set(dirId, (p = computeDirPath(keys, dirId)));
  return p;
}

function computeDirPath(keys: CryptomatorKeys, dirId: string): string {
  const hashed = base32(createHash('sha1').update(sivEncrypt(sivKey(keys), Buffer.from(dirId, 'utf8'))).digest());
  return `d/${hashed.slice(0, 2)}/${hashed.slice(2)}`;
}

/** Encrypted name including `.c9r`, before any shortening. */
export function encryptName(keys: CryptomatorKeys, name: string, parentDirId: string): string {
  const ct = sivEncrypt(sivKey(keys), Buffer.from(name.normalize('NFC'), 'utf8'), [Buffer.from(parentDirId, 'utf8')]);
  return `${base64UrlPadded(ct)}.c9r`;
}

/** Takes the name with `.c9r` (as stored in the folder or in name.c9s). */
export function decryptName(keys: CryptomatorKeys, encrypted: string, parentDirId: string): string {
  if (!encrypted.endsWith('.c9r')) throw new CerberusError('INTEGRITY', `not an encrypted name: ${encrypted}`);
  const body = encrypted.slice(0, -4);
  // Buffer's base64 decoder silently skips junk, so validate the alphabet first
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(body)) {
    throw new CerberusError('INTEGRITY', `encrypted name is not base64url: ${encrypted}`);
  }
  try {
    return sivDecrypt(sivKey(keys), Buffer.from(body, 'base64url'), [Buffer.from(parentDirId, 'utf8')]).toString('utf8');
  } catch (err) {
    if (err instanceof SivAuthenticationError) {
      throw new CerberusError('INTEGRITY', `encrypted name does not authenticate in its directory: ${encrypted}`, {
        cause: err,
      });
    }
    throw err;
  }
}

/** `.c9s` node name for an encrypted name; the hash covers the full name including `.c9r`. */
export function shortenedName(encryptedName: string): string {
  return `${base64UrlPadded(createHash('sha1').update(encryptedName, 'utf8').digest())}.c9s`;
}

export interface VaultNode {
  /** name of the node in its `d/XX/YYY` folder (`…=.c9r` or `…=.c9s`) */
  nodeName: string;
  /** full encrypted name; `name.c9s` holds this when shortened */
  encryptedName: string;
  shortened: boolean;
}

/** Cryptomator shortens when the encrypted name, `.c9r` included, is longer than the threshold. */
export function vaultNodeName(
  keys: CryptomatorKeys,
  name: string,
  parentDirId: string,
  threshold = DEFAULT_SHORTENING_THRESHOLD,
): VaultNode {
  const encryptedName = encryptName(keys, name, parentDirId);
  if (encryptedName.length > threshold) {
    return { nodeName: shortenedName(encryptedName), encryptedName, shortened: true };
  }
  return { nodeName: encryptedName, encryptedName, shortened: false };
}
