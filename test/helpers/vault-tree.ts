/**
 * Helpers for the Cryptomator end-to-end tests: a source tree with every awkward case, a big
 * file made once and shared by hard links, and a map of which vault
 * object belongs to which cleartext path, read over the local folder of a vault.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { dirPath, openVault, walkVault, type VaultStore } from '../../src/formats/cryptomator/index.js';
import { tempDir } from './cli.js';

export const BIG_SIZE = 100 * 1024 * 1024;

let big: Promise<string> | undefined;
/** One random 100 MB file per test run, written in 1 MiB pieces. */
export function bigFile(): Promise<string> {
  big ??= (async () => {
    const file = path.join(await tempDir('cerberus-big-'), 'big.bin');
    let left = BIG_SIZE;
    const gen = Readable.from(
      (function* () {
        while (left > 0) {
          const n = Math.min(left, 1 << 20);
          left -= n;
          yield randomBytes(n);
        }
      })(),
    );
    await pipeline(gen, fs.createWriteStream(file));
    return file;
  })();
  return big;
}

export async function removeBigFile(): Promise<void> {
  if (big) await fsp.rm(path.dirname(await big), { recursive: true, force: true });
  big = undefined;
}

export const LONG_FILE = 'f'.repeat(226) + '.txt'; // 230 bytes
export const LONG_DIR = 'D'.repeat(240);
export const NFD_NAME = 'Zoe\u0308 in NFD.txt';
export const NFC_NAME = 'Ren\u00e9e in NFC.txt';
export const NFD_DIR = 'Cafe\u0301 NFD';

/**
 * Nested and empty folders, an empty file, files at the 32 KiB chunk edges, names in NFD and
 * NFC, long names (shortened to .c9s nodes), relative, absolute and dangling links, odd modes
 * and times. `big` (a file path) is hard-linked in when given: no copy of 100 MB per test.
 */
export async function buildTree(src: string, opts: { big?: string } = {}): Promise<void> {
  const w = (rel: string, data: Buffer | string) => fsp.writeFile(path.join(src, rel), data);
  await fsp.mkdir(path.join(src, 'a/b/c/d'), { recursive: true });
  await fsp.mkdir(path.join(src, 'empty/also empty'), { recursive: true });
  await fsp.mkdir(path.join(src, LONG_DIR, 'inner'), { recursive: true });
  await fsp.mkdir(path.join(src, NFD_DIR), { recursive: true });
  await w('empty.txt', '');
  await w('a/chunk-32768.bin', randomBytes(32768));
  await w('a/b/chunk-32769.bin', randomBytes(32769));
  await w('a/b/c/chunk-65536.bin', randomBytes(65536));
  await w('a/b/c/d/deep.txt', 'deep\n');
  await w('a/small.txt', 'hello vault\n');
  await w(NFD_NAME, 'decomposed\n');
  await w(NFC_NAME, 'composed\n');
  await w(`${NFD_DIR}/inside.txt`, 'in a decomposed folder\n');
  await w(LONG_FILE, randomBytes(1000));
  await w(`${LONG_DIR}/${LONG_FILE}`, 'long in long\n');
  await w(`${LONG_DIR}/inner/x.txt`, 'x\n');
  if (opts.big) await fsp.link(opts.big, path.join(src, 'big.bin'));
  await fsp.symlink('a/b/c/d/deep.txt', path.join(src, 'relative-link'));
  await fsp.symlink('/etc/hostname', path.join(src, 'absolute-link'));
  await fsp.symlink('does/not/exist', path.join(src, 'dangling-link'));
  await fsp.symlink(`../${LONG_FILE}`, path.join(src, LONG_DIR, 'l'.repeat(230)));
  await fsp.chmod(path.join(src, 'a/chunk-32768.bin'), 0o600);
  await fsp.chmod(path.join(src, 'a/b/chunk-32769.bin'), 0o755);
  await fsp.chmod(path.join(src, 'a/b/c'), 0o700);
  await fsp.utimes(path.join(src, 'a/small.txt'), new Date('2001-02-03T04:05:06.789Z'), new Date('2001-02-03T04:05:06.789Z'));
  await fsp.utimes(path.join(src, 'empty/also empty'), new Date('2010-01-01T00:00:00Z'), new Date('2010-01-01T00:00:00Z'));
}


/** A VaultStore over a local folder, for reading a vault the way the reader does. */
export function localStore(root: string): VaultStore {
  return {
    async list(dir) {
      const abs = path.join(root, dir);
      const names = await fsp.readdir(abs).catch(() => [] as string[]);
      return Promise.all(
        names.map(async (name) => {
          const st = await fsp.stat(path.join(abs, name));
          return { name, size: st.size, isDir: st.isDirectory() };
        }),
      );
    },
    async get(p) {
      const abs = path.join(root, p);
      if (!fs.existsSync(abs)) throw Object.assign(new Error(`${p} not found`), { code: 'NOT_FOUND' });
      return fs.createReadStream(abs);
    },
  };
}

export interface VaultObjectOwner {
  /** cleartext path (NFC, as the vault names it) */
  path: string;
  role: 'content' | 'name' | 'dir' | 'dirid' | 'symlink';
}

/**
 * Every object of a vault (generation-relative, `d/…`) and whose it is. Read through the
 * reader in src: what matters here is the delta writer, not the reader.
 */
export async function vaultOwners(vaultDir: string, password: string): Promise<Map<string, VaultObjectOwner>> {
  const vault = await openVault(localStore(vaultDir), password);
  const out = new Map<string, VaultObjectOwner>();
  out.set(`${dirPath(vault.keys, '')}/dirid.c9r`, { path: '', role: 'dirid' });
  for await (const e of walkVault(vault)) {
    if (e.node.endsWith('.c9s')) out.set(`${e.node}/name.c9s`, { path: e.path, role: 'name' });
    if (e.type === 'file') out.set(e.content, { path: e.path, role: 'content' });
    else if (e.type === 'symlink') out.set(`${e.node}/symlink.c9r`, { path: e.path, role: 'symlink' });
    else {
      out.set(`${e.node}/dir.c9r`, { path: e.path, role: 'dir' });
      out.set(`${dirPath(vault.keys, e.dirId)}/dirid.c9r`, { path: e.path, role: 'dirid' });
    }
  }
  return out;
}

/** Every regular file under `root`, relative, with '/' separators. */
export async function filesUnder(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true }).catch(() => [])) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await filesUnder(root, r)));
    else out.push(r);
  }
  return out.sort();
}
