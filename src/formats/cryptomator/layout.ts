/**
 * Where a writer puts things in a format-8 vault, and what those metadata objects hold.
 * Pure: returns paths (vault-relative, '/'-separated) and bytes; the caller does the I/O.
 * File contents themselves are sealed by SealEngine (or EncryptStream) into `fileContentPath(node)`.
 */
import { randomUUID } from 'node:crypto';
import { CerberusError } from '../../errors.js';
import { encryptBuffer } from './content.js';
import type { CryptomatorKeys } from './masterkey.js';
import { DEFAULT_SHORTENING_THRESHOLD, dirPath, ROOT_DIR_ID, vaultNodeName } from './names.js';
import type { CipherCombo } from './vault-config.js';

export interface VaultObject {
  /** vault-relative path */
  path: string;
  data: Buffer;
}

export interface ChildNode {
  /** vault-relative path of the node: `d/XX/YYYY/<name>.c9r` or `…/<hash>.c9s` */
  node: string;
  shortened: boolean;
  /** name.c9s when shortened, else none */
  objects: VaultObject[];
}

/** Cryptomator uses random UUIDs; any unique string would read back, but other clients expect 36 bytes. */
export function newDirId(): string {
  return randomUUID();
}

/**
 * The `d/XX/YYYY…` folder of a directory and its `dirid.c9r` backup (the dirId, content-encrypted).
 * The root's backup is an encrypted empty file: a header and no chunk (68 bytes for SIV_GCM).
 */
export function dirFolder(keys: CryptomatorKeys, combo: CipherCombo, dirId: string): { folder: string; objects: VaultObject[] } {
  const folder = dirPath(keys, dirId);
  return { folder, objects: [{ path: `${folder}/dirid.c9r`, data: encryptBuffer(combo, keys, Buffer.from(dirId, 'utf8')) }] };
}

/** Where a child named `name` of the directory `parentDirId` (whose folder is `parentFolder`) lives. */
export function childNode(
  keys: CryptomatorKeys,
  parentFolder: string,
  parentDirId: string,
  name: string,
  threshold = DEFAULT_SHORTENING_THRESHOLD,
): ChildNode {
  if (name.includes('/') || name === '.' || name === '..' || name === '') {
    throw new CerberusError('UNSAFE_PATH', `not a plain file name: ${JSON.stringify(name)}`);
  }
  const v = vaultNodeName(keys, name, parentDirId, threshold);
  const node = `${parentFolder}/${v.nodeName}`;
  // name.c9s holds the whole encrypted name, `.c9r` included, with no newline
  return { node, shortened: v.shortened, objects: v.shortened ? [{ path: `${node}/name.c9s`, data: Buffer.from(v.encryptedName, 'utf8') }] : [] };
}

/** A plain file's ciphertext is the node itself; a shortened one lives inside the `.c9s` folder. */
export function fileContentPath(node: { node: string; shortened: boolean }): string {
  return node.shortened ? `${node.node}/contents.c9r` : node.node;
}

/** `dir.c9r` holds the child's dirId in clear utf-8, no newline. Its folder comes from `dirFolder(childDirId)`. */
export function dirNodeObjects(node: { node: string }, childDirId: string): VaultObject[] {
  if (childDirId === ROOT_DIR_ID) throw new CerberusError('INTERNAL', 'a child directory cannot have the root dirId');
  return [{ path: `${node.node}/dir.c9r`, data: Buffer.from(childDirId, 'utf8') }];
}

/** `symlink.c9r` is a content-encrypted file whose cleartext is the target, as given (not normalised). */
export function symlinkNodeObjects(keys: CryptomatorKeys, combo: CipherCombo, node: { node: string }, target: string): VaultObject[] {
  return [{ path: `${node.node}/symlink.c9r`, data: encryptBuffer(combo, keys, Buffer.from(target, 'utf8')) }];
}
