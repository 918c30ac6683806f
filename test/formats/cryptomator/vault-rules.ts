/**
 * Test helper: every rule of vault format 8 (SIV_GCM, as Cryptomator desktop writes it) that a
 * writer must follow, checked on a local vault folder. Returns the violations; [] means OK.
 * Deliberately independent of vault-reader.ts so a reader bug cannot hide a writer bug.
 */
import { createHmac } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ciphertextSize, cleartextSize, decryptBuffer } from '../../../src/formats/cryptomator/content.js';
import { type CryptomatorKeys, unlockMasterkey } from '../../../src/formats/cryptomator/masterkey.js';
import { decryptName, dirPath, shortenedName } from '../../../src/formats/cryptomator/names.js';
import { MASTERKEY_KID } from '../../../src/formats/cryptomator/vault-config.js';

const COMBO = 'SIV_GCM';
const THRESHOLD = 220;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const B64 = /^[A-Za-z0-9+/]+={0,2}$/;

const isDir = (p: string) => statSync(p, { throwIfNoEntry: false })?.isDirectory() ?? false;
const isFile = (p: string) => statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
const endsWithNewline = (b: Buffer) => b.length > 0 && (b[b.length - 1] === 0x0a || b[b.length - 1] === 0x0d);

function parseJson(part: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function checkConfig(raw: Buffer, keys: CryptomatorKeys | undefined, out: string[]): void {
  const v = (msg: string): void => void out.push(`vault.cryptomator: ${msg}`);
  if (endsWithNewline(raw)) v('ends with a newline');
  const parts = raw.toString('utf8').split('.');
  if (parts.length !== 3) return v('is not a compact JWT (three dot-separated parts)');
  const [head, body, sig] = parts as [string, string, string];
  const header = parseJson(head);
  const claims = parseJson(body);
  if (!header) v('header is not base64url JSON');
  else {
    if (header.alg !== 'HS256') v(`alg is ${JSON.stringify(header.alg)}, not "HS256"`);
    if (header.kid !== MASTERKEY_KID) v(`kid is ${JSON.stringify(header.kid)}, not "${MASTERKEY_KID}"`);
  }
  if (!claims) v('payload is not base64url JSON');
  else {
    // `8.0` parses to 8, so the integer is checked on the text too
    const text = Buffer.from(body, 'base64url').toString('utf8');
    if (claims.format !== 8 || !/"format"\s*:\s*8\s*[,}]/.test(text)) v(`format is ${JSON.stringify(claims.format)}, not the integer 8`);
    if (claims.cipherCombo !== COMBO) v(`cipherCombo is ${JSON.stringify(claims.cipherCombo)}, not "${COMBO}"`);
    if (claims.shorteningThreshold !== THRESHOLD || !/"shorteningThreshold"\s*:\s*220\s*[,}]/.test(text)) {
      v(`shorteningThreshold is ${JSON.stringify(claims.shorteningThreshold)}, not ${THRESHOLD}`);
    }
    if (typeof claims.jti !== 'string' || claims.jti === '') v('has no jti');
  }
  if (keys) {
    const expected = createHmac('sha256', Buffer.concat([keys.encKey, keys.macKey])).update(`${head}.${body}`, 'ascii').digest();
    if (!Buffer.from(sig.trim(), 'base64url').equals(expected)) v('signature does not match the masterkey');
  }
}

function checkMasterkey(raw: Buffer, out: string[]): void {
  const v = (msg: string): void => void out.push(`masterkey.cryptomator: ${msg}`);
  let mk: Record<string, unknown>;
  try {
    mk = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  } catch {
    v('is not JSON');
    return;
  }
  if (mk.version !== 999) v(`version is ${JSON.stringify(mk.version)}, not 999`);
  if (typeof mk.scryptSalt !== 'string' || !B64.test(mk.scryptSalt) || Buffer.from(mk.scryptSalt, 'base64').length !== 8) {
    v('scryptSalt is not 8 bytes of base64');
  }
  if (mk.scryptCostParam !== 32768) v(`scryptCostParam is ${JSON.stringify(mk.scryptCostParam)}, not 32768`);
  if (mk.scryptBlockSize !== 8) v(`scryptBlockSize is ${JSON.stringify(mk.scryptBlockSize)}, not 8`);
  const sizes = { primaryMasterKey: 40, hmacMasterKey: 40, versionMac: 32 } as const;
  for (const [field, size] of Object.entries(sizes)) {
    const val = mk[field];
    if (typeof val !== 'string' || !B64.test(val) || Buffer.from(val, 'base64').length !== size) v(`${field} is not ${size} bytes of base64`);
  }
}

/** Encrypted content files must have no empty trailing chunk: the size must be the canonical one for its cleartext. */
function checkContentSize(rel: string, size: number, out: string[]): void {
  const clear = cleartextSize(COMBO, size);
  if (clear === undefined || ciphertextSize(COMBO, clear) !== size) out.push(`${rel}: ciphertext size ${size} is not valid`);
}

export async function checkVaultRules(root: string, password: string): Promise<string[]> {
  const out: string[] = [];
  const read = (rel: string): Buffer | undefined => {
    if (!isFile(join(root, rel))) {
      out.push(`${rel}: missing`);
      return undefined;
    }
    return readFileSync(join(root, rel));
  };
  const mkRaw = read('masterkey.cryptomator');
  let keys: CryptomatorKeys | undefined;
  if (mkRaw) {
    checkMasterkey(mkRaw, out);
    keys = await unlockMasterkey(mkRaw.toString('utf8'), password).catch((e: unknown) => {
      out.push(`masterkey.cryptomator: does not unlock: ${(e as Error).message}`);
      return undefined;
    });
  }
  const cfg = read('vault.cryptomator');
  if (cfg) checkConfig(cfg, keys, out);
  if (!keys) return out;

  // folder (d/XX/YYYY) → its dirId, from dirid.c9r
  const dirIds = new Map<string, string>();
  const rootFolder = dirPath(keys, '');
  if (!isDir(join(root, rootFolder))) out.push(`${rootFolder}: root folder is missing`);
  for (const xx of isDir(join(root, 'd')) ? readdirSync(join(root, 'd')) : []) {
    if (!isDir(join(root, 'd', xx))) continue;
    for (const yy of readdirSync(join(root, 'd', xx))) {
      const folder = `d/${xx}/${yy}`;
      if (!isDir(join(root, folder))) continue;
      const raw = read(`${folder}/dirid.c9r`);
      if (!raw) continue;
      checkContentSize(`${folder}/dirid.c9r`, raw.length, out);
      let dirId: string;
      try {
        dirId = decryptBuffer(COMBO, keys, raw, `${folder}/dirid.c9r`).toString('utf8');
      } catch (e) {
        out.push(`${folder}/dirid.c9r: does not decrypt: ${(e as Error).message}`);
        continue;
      }
      if (dirPath(keys, dirId) !== folder) out.push(`${folder}/dirid.c9r: holds ${JSON.stringify(dirId)}, whose folder is ${dirPath(keys, dirId)}`);
      else dirIds.set(folder, dirId);
    }
  }

  for (const [folder, dirId] of dirIds) {
    for (const name of readdirSync(join(root, folder))) {
      if (name === 'dirid.c9r') continue;
      const node = `${folder}/${name}`;
      const abs = join(root, node);
      let encrypted: string;
      if (name.endsWith('.c9s')) {
        if (!isDir(abs)) {
          out.push(`${node}: a .c9s node is not a folder`);
          continue;
        }
        const raw = read(`${node}/name.c9s`);
        if (!raw) continue;
        if (endsWithNewline(raw)) out.push(`${node}/name.c9s: ends with a newline`);
        encrypted = raw.toString('utf8');
        if (shortenedName(encrypted) !== name) out.push(`${node}/name.c9s: sha1/base64url of the name is not the node name`);
        if (encrypted.length <= THRESHOLD) out.push(`${node}/name.c9s: name is ${encrypted.length} chars, short enough not to be shortened`);
        const present = ['contents.c9r', 'dir.c9r', 'symlink.c9r'].filter((f) => isFile(join(abs, f)));
        if (present.length !== 1) out.push(`${node}: holds ${present.length === 0 ? 'none' : present.join(' and ')} of contents.c9r/dir.c9r/symlink.c9r, not exactly one`);
      } else if (name.endsWith('.c9r')) {
        encrypted = name;
        if (name.length > THRESHOLD) out.push(`${node}: node name is ${name.length} chars, longer than ${THRESHOLD}`);
        if (isDir(abs)) {
          const present = ['dir.c9r', 'symlink.c9r'].filter((f) => isFile(join(abs, f)));
          if (present.length !== 1) out.push(`${node}: a .c9r folder holds ${present.length === 0 ? 'none' : 'both'} of dir.c9r/symlink.c9r`);
        }
      } else {
        continue; // foreign files are ignored by Cryptomator too
      }
      try {
        decryptName(keys, encrypted, dirId);
      } catch (e) {
        out.push(`${node}: name does not decrypt: ${(e as Error).message}`);
      }
      if (isFile(abs)) {
        checkContentSize(node, statSync(abs).size, out);
        continue;
      }
      if (isFile(join(abs, 'contents.c9r'))) checkContentSize(`${node}/contents.c9r`, statSync(join(abs, 'contents.c9r')).size, out);
      if (isFile(join(abs, 'symlink.c9r'))) {
        const raw = readFileSync(join(abs, 'symlink.c9r'));
        checkContentSize(`${node}/symlink.c9r`, raw.length, out);
        try {
          decryptBuffer(COMBO, keys, raw, node);
        } catch (e) {
          out.push(`${node}/symlink.c9r: does not decrypt: ${(e as Error).message}`);
        }
      }
      if (isFile(join(abs, 'dir.c9r'))) {
        const raw = readFileSync(join(abs, 'dir.c9r'));
        if (endsWithNewline(raw)) out.push(`${node}/dir.c9r: ends with a newline`);
        const id = raw.toString('utf8');
        if (raw.length !== 36 || !UUID.test(id)) out.push(`${node}/dir.c9r: is not a 36-byte UUID`);
        if (!isDir(join(root, dirPath(keys, id)))) out.push(`${node}/dir.c9r: its folder ${dirPath(keys, id)} is missing`);
      }
    }
  }
  return out;
}
