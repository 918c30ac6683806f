/**
 * Walks a format-8 vault on the local file system and yields its cleartext tree.
 *
 * Each cleartext directory lives in `d/XX/YYY…` (from its dirId); its children are nodes named
 * `<encrypted>.c9r` or, for long names, `<sha1>.c9s` folders whose `name.c9s` holds the real
 * encrypted name. A node is a file (plain `.c9r` file, or `contents.c9r` inside a `.c9s`), a
 * directory (holds `dir.c9r` = child dirId in clear utf-8) or a symlink (holds `symlink.c9r`,
 * an encrypted content file whose cleartext is the target).
 */
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline, type Readable } from 'node:stream';
import { CerberusError } from '../../errors.js';
import { cleartextSize, decryptBuffer, DecryptStream } from './content.js';
import { type CryptomatorKeys, unlockMasterkey } from './masterkey.js';
import { dirPath, decryptName, ROOT_DIR_ID } from './names.js';
import { MASTERKEY_KID, peekVaultConfigKid, readVaultConfig, type VaultConfig } from './vault-config.js';

export type VaultEntry =
  | { path: string; type: 'dir' }
  | { path: string; type: 'file'; size: number; open: () => Readable }
  | { path: string; type: 'symlink'; target: string };

export interface OpenedVault {
  config: VaultConfig;
  keys: CryptomatorKeys;
  root: string;
}

export async function openVault(root: string, password: string): Promise<OpenedVault> {
  const token = await readFile(join(root, 'vault.cryptomator'), 'utf8').catch((cause: unknown) => {
    throw new CerberusError('NOT_FOUND', `no vault.cryptomator in ${root}`, { cause, hint: 'point at the vault folder' });
  });
  const kid = peekVaultConfigKid(token);
  if (kid !== undefined && kid !== MASTERKEY_KID) {
    throw new CerberusError('CONFIG', `vault key "${kid}" is not supported`, {
      hint: 'only password vaults (masterkey.cryptomator) can be opened',
    });
  }
  const mk = await readFile(join(root, 'masterkey.cryptomator'), 'utf8').catch((cause: unknown) => {
    throw new CerberusError('NOT_FOUND', `no masterkey.cryptomator in ${root}`, { cause });
  });
  const keys = await unlockMasterkey(mk, password);
  return { config: readVaultConfig(token, keys), keys, root };
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/** Depth-first, children sorted by cleartext name; paths use `/` and have no leading slash. */
export async function* walkVault(vault: OpenedVault): AsyncGenerator<VaultEntry> {
  yield* walkDir(vault, ROOT_DIR_ID, '', new Set());
}

async function* walkDir(vault: OpenedVault, dirId: string, prefix: string, seen: Set<string>): AsyncGenerator<VaultEntry> {
  // a dir.c9r pointing back at an ancestor would otherwise recurse forever
  if (seen.has(dirId)) throw new CerberusError('INTEGRITY', `directory loop at ${prefix || '/'}`);
  seen.add(dirId);
  const { keys, config } = vault;
  const folder = join(vault.root, ...dirPath(keys, dirId).split('/'));
  let names: string[];
  try {
    names = await readdir(folder);
  } catch (cause) {
    throw new CerberusError('INTEGRITY', `vault folder for ${prefix || '/'} is missing`, { cause });
  }
  const children: { name: string; node: string; encrypted: string }[] = [];
  for (const node of names) {
    let encrypted: string;
    if (node.endsWith('.c9s')) {
      encrypted = (await readFile(join(folder, node, 'name.c9s'), 'utf8')).trim();
    } else if (node.endsWith('.c9r') && node !== 'dirid.c9r') {
      encrypted = node;
    } else {
      // dirid.c9r (the dirId backup) and foreign files such as .DS_Store are not entries
      continue;
    }
    children.push({ name: decryptName(keys, encrypted, dirId), node, encrypted });
  }
  children.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const child of children) {
    const nodePath = join(folder, child.node);
    const path = prefix + child.name;
    if (child.name.includes('/') || child.name === '.' || child.name === '..' || child.name === '') {
      throw new CerberusError('UNSAFE_PATH', `vault entry name is not a plain file name: ${JSON.stringify(child.name)}`);
    }
    const st = await lstat(nodePath);
    let contentPath: string | undefined;
    if (st.isFile()) {
      contentPath = nodePath;
    } else if (await exists(join(nodePath, 'dir.c9r'))) {
      const childId = (await readFile(join(nodePath, 'dir.c9r'), 'utf8')).trim();
      yield { path, type: 'dir' };
      yield* walkDir(vault, childId, `${path}/`, seen);
      continue;
    } else if (await exists(join(nodePath, 'symlink.c9r'))) {
      const raw = await readFile(join(nodePath, 'symlink.c9r'));
      yield { path, type: 'symlink', target: decryptBuffer(config.cipherCombo, keys, raw, path).toString('utf8') };
      continue;
    } else if (child.node.endsWith('.c9s') && (await exists(join(nodePath, 'contents.c9r')))) {
      contentPath = join(nodePath, 'contents.c9r');
    } else {
      throw new CerberusError('INTEGRITY', `vault node for ${path} is neither file, directory nor symlink`);
    }
    const cst = await lstat(contentPath);
    const size = cleartextSize(config.cipherCombo, cst.size);
    if (size === undefined) throw new CerberusError('INTEGRITY', `${path}: ciphertext size ${cst.size} is impossible`);
    const file = contentPath;
    yield {
      path,
      type: 'file',
      size,
      // pipeline, not pipe: a read error must reach the consumer instead of stalling it
      open: () => pipeline(createReadStream(file), new DecryptStream(config.cipherCombo, keys, path), () => {}),
    };
  }
}
