import fsp from 'node:fs/promises';
import type * as openpgp from 'openpgp';
import { openpgpLib } from './lib.js';
import { CerberusError, ioError } from '../../errors.js';

export interface GeneratedKeyPair {
  publicArmored: string;
  privateArmored: string;
  fingerprint: string;
}

/** A v4 key that GnuPG 2.2 reads: Ed25519/Cv25519 (legacy encoding) or RSA 4096. */
export async function generateKeyPair(opts: {
  name: string;
  email?: string;
  rsa: boolean;
  passphrase: string | undefined;
}): Promise<GeneratedKeyPair> {
  const pgp = await openpgpLib();
  const userIDs = [opts.email ? { name: opts.name, email: opts.email } : { name: opts.name }];
  const keyType = opts.rsa
    ? ({ type: 'rsa', rsaBits: 4096 } as const)
    : ({ type: 'ecc', curve: 'curve25519Legacy' } as const);
  const { privateKey, publicKey } = await pgp.generateKey({
    ...keyType,
    userIDs,
    ...(opts.passphrase ? { passphrase: opts.passphrase } : {}),
    format: 'armored',
    config: { v6Keys: false, aeadProtect: false },
  });
  const key = await pgp.readKey({ armoredKey: publicKey });
  return { publicArmored: publicKey, privateArmored: privateKey, fingerprint: key.getFingerprint().toUpperCase() };
}

async function readKeyFile(file: string): Promise<Uint8Array> {
  try {
    return new Uint8Array(await fsp.readFile(file));
  } catch (err) {
    throw ioError(err, `cannot read key file ${file}`);
  }
}

function isArmored(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.subarray(0, 64)).toString('latin1').includes('-----BEGIN PGP');
}

export async function readPublicKeys(files: string[]): Promise<openpgp.PublicKey[]> {
  const pgp = await openpgpLib();
  const keys: openpgp.PublicKey[] = [];
  for (const file of files) {
    const bytes = await readKeyFile(file);
    let read: openpgp.Key[];
    try {
      read = isArmored(bytes)
        ? await pgp.readKeys({ armoredKeys: Buffer.from(bytes).toString('utf8') })
        : await pgp.readKeys({ binaryKeys: bytes });
    } catch (err) {
      throw new CerberusError('KEY', `${file} is not an OpenPGP public key: ${(err as Error).message}`, {
        hint: 'export one with `gpg --export --armor KEYID` or make one with `cerberus keygen`',
      });
    }
    for (const k of read) {
      const enc = await k.getEncryptionKey().catch(() => undefined);
      if (!enc) {
        throw new CerberusError('KEY', `key ${k.getFingerprint().toUpperCase()} in ${file} cannot encrypt (expired, revoked or no encryption subkey)`, {
          hint: 'use a key with a valid encryption subkey',
        });
      }
      keys.push(k.toPublic());
    }
  }
  return keys;
}

export function fingerprintOf(key: openpgp.Key): string {
  return key.getFingerprint().toUpperCase();
}

/** Reads and unlocks a private key. Wrong passphrase gives a one-line KEY error. */
export async function readPrivateKey(file: string, passphrase: string | undefined): Promise<openpgp.PrivateKey> {
  const pgp = await openpgpLib();
  const bytes = await readKeyFile(file);
  let key: openpgp.PrivateKey;
  try {
    key = isArmored(bytes)
      ? await pgp.readPrivateKey({ armoredKey: Buffer.from(bytes).toString('utf8') })
      : await pgp.readPrivateKey({ binaryKey: bytes });
  } catch (err) {
    throw new CerberusError('KEY', `${file} is not an OpenPGP private key: ${(err as Error).message}`, {
      hint: 'pass the file that `cerberus keygen` wrote as cerberus.key.asc, or `gpg --export-secret-keys --armor`',
    });
  }
  if (key.isDecrypted()) return key;
  if (passphrase === undefined || passphrase === '') {
    throw new CerberusError('KEY', `the private key ${file} is protected by a passphrase`, {
      hint: 'set CERBERUS_KEY_PASSPHRASE',
    });
  }
  try {
    return await pgp.decryptKey({ privateKey: key, passphrase });
  } catch {
    throw new CerberusError('KEY', `wrong passphrase for the private key ${file}`, {
      hint: 'check CERBERUS_KEY_PASSPHRASE',
    });
  }
}
