/**
 * Walks a format-8 vault held in any store (local disk, WebDAV, S3) and yields its cleartext tree.
 *
 * Each cleartext directory lives in `d/XX/YYY…` (from its dirId); its children are nodes named
 * `<encrypted>.c9r` or, for long names, `<sha1>.c9s` folders whose `name.c9s` holds the real
 * encrypted name. A node is a file (plain `.c9r` file, or `contents.c9r` inside a `.c9s`), a
 * directory (holds `dir.c9r` = child dirId in clear utf-8) or a symlink (holds `symlink.c9r`,
 * an encrypted content file whose cleartext is the target).
 */
import type { Readable } from 'node:stream';
import { CerberusError } from '../../errors.js';
import { cleartextSize, decryptBuffer, DecryptStream } from './content.js';
import { type CryptomatorKeys, unlockMasterkey } from './masterkey.js';
import { decryptName, dirPath, ROOT_DIR_ID, shortenedName } from './names.js';
import { MASTERKEY_KID, peekVaultConfigKid, readVaultConfig, type VaultConfig } from './vault-config.js';

/** The two verbs the reader needs; a storage Backend satisfies it structurally. Paths are '/'-separated, relative to the store root. */
export interface VaultStore {
  /** direct children; an absent directory lists as empty */
  list(dir: string): Promise<Array<{ name: string; size: number; isDir: boolean }>>;
  /** a missing object rejects with an error whose `code` is NOT_FOUND */
  get(path: string): Promise<Readable>;
}

export interface OpenedVault {
  config: VaultConfig;
  keys: CryptomatorKeys;
  store: VaultStore;
  /** vault folder inside the store, '' or 'a/b' */
  root: string;
}

export type VaultEntry =
  | { path: string; type: 'dir'; node: string; dirId: string }
  | { path: string; type: 'file'; node: string; content: string; ctSize: number; size: number; open: () => Promise<Readable> }
  | { path: string; type: 'symlink'; node: string; target: string };

export interface VaultDamage {
  /** cleartext path of the folder it is in, '' for the root */
  dir: string;
  /** vault-relative path of the bad object */
  object: string;
  problem: string;
}

/** Metadata files are tiny; a cap keeps a hostile store from making us buffer gigabytes. */
export const SMALL_FILE_LIMIT = 1024 * 1024;

const DAMAGE_HINT = 'the vault is damaged or was modified outside Cryptomator';

function joinPath(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p !== '' && p !== '.')
    .join('/');
}

const isNotFound = (err: unknown) => (err as { code?: unknown } | undefined)?.code === 'NOT_FOUND';

/** Whole small object, or an INTEGRITY error once it passes `limit`. */
async function readSmall(store: VaultStore, path: string, limit = SMALL_FILE_LIMIT): Promise<Buffer> {
  const stream = await store.get(path);
  const parts: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream) {
      const b = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
      total += b.length;
      if (total > limit) throw new CerberusError('INTEGRITY', `${path} is larger than ${limit} bytes`, { hint: DAMAGE_HINT });
      parts.push(b);
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(parts, total);
}

export async function openVault(store: VaultStore, password: string, root = ''): Promise<OpenedVault> {
  const base = joinPath(root);
  const where = base === '' ? 'the store root' : base;
  const read = (name: string) =>
    readSmall(store, joinPath(base, name)).catch((cause: unknown) => {
      if (isNotFound(cause)) {
        throw new CerberusError('NOT_FOUND', `no ${name} in ${where}`, { cause, hint: 'point at the vault folder' });
      }
      throw cause;
    });
  const token = (await read('vault.cryptomator')).toString('utf8');
  const kid = peekVaultConfigKid(token);
  if (kid !== undefined && kid !== MASTERKEY_KID) {
    throw new CerberusError('CONFIG', `vault key "${kid}" is not supported`, {
      hint: 'only password vaults (masterkey.cryptomator) can be opened',
    });
  }
  const mk = (await read('masterkey.cryptomator')).toString('utf8');
  const keys = await unlockMasterkey(mk, password);
  return { config: readVaultConfig(token, keys), keys, store, root: base };
}

/** directory nodes whose reads run ahead of the walk (three reads each) */
const PREFETCH = 8;

type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };
const settle = <T>(p: Promise<T>): Promise<Settled<T>> =>
  p.then(
    (value) => ({ ok: true, value }),
    (error: unknown) => ({ ok: false, error }),
  );
const unsettle = <T>(r: Settled<T>): T => {
  if (r.ok) return r.value;
  throw r.error;
};

interface Listing {
  folder: string;
  items: Array<{ name: string; size: number; isDir: boolean }>;
}

interface Child {
  name: string;
  /** vault-relative */
  node: string;
  isDir: boolean;
  size: number;
}

class Walker {
  // every dirId seen, not just ancestors: two dir.c9r naming one folder would otherwise let a
  // small hostile vault expand exponentially. Costs one short string per directory, not per file.
  private readonly seen = new Set<string>();

  constructor(
    private readonly vault: OpenedVault,
    private readonly onDamage: ((d: VaultDamage) => void) | undefined,
    private readonly knownName: ((node: string) => string | undefined) | undefined,
  ) {}

  private at(rel: string): string {
    // rel is always clean (built here from listed names); only the root needs joining
    return this.vault.root === '' ? rel : `${this.vault.root}/${rel}`;
  }

  /** Reports and returns (the caller skips the entry), or throws when nobody listens. */
  private damage(dir: string, object: string, problem: string): void {
    if (this.onDamage) {
      this.onDamage({ dir, object, problem });
      return;
    }
    throw new CerberusError('INTEGRITY', `vault folder /${dir}: ${object}: ${problem}`, { hint: DAMAGE_HINT });
  }

  /**
   * Reads started ahead of the walk (see prefetch), by object; each taken once. Only the I/O
   * runs ahead: what a result means (damage, loops) is still decided in walk order.
   */
  private readonly ahead = new Map<string, Promise<Settled<unknown>>>();

  private take<T>(key: string, read: () => Promise<T>): Promise<T> {
    const early = this.ahead.get(key) as Promise<Settled<T>> | undefined;
    if (!early) return read();
    this.ahead.delete(key);
    return early.then(unsettle);
  }

  private start<T>(key: string, read: () => Promise<T>): Promise<Settled<T>> {
    const p = settle(read());
    this.ahead.set(key, p);
    return p;
  }

  private list(rel: string): Promise<Listing['items']> {
    return this.take(`list:${rel}`, () => this.vault.store.list(this.at(rel)));
  }

  private read(object: string): Promise<Buffer> {
    return this.take(`read:${object}`, () => readSmall(this.vault.store, this.at(object)));
  }

  /**
   * Starts the reads a directory node will need: its node folder, its dir.c9r and the folder
   * that names. Walking one folder after another, each waiting on its own round trips, left
   * a no-change `sync up` of 500 folders idle for most of a second.
   */
  private prefetch(node: string): void {
    void this.start(`list:${node}`, () => this.vault.store.list(this.at(node))).then(async (inside) => {
      if (!inside.ok || !inside.value.some((e) => e.name === 'dir.c9r' && !e.isDir)) return;
      const object = `${node}/dir.c9r`;
      const raw = await this.start(`read:${object}`, () => readSmall(this.vault.store, this.at(object)));
      if (!raw.ok) return;
      const dirId = raw.value.toString('utf8').trim();
      const folder = dirPath(this.vault.keys, dirId);
      if (!this.ahead.has(`list:${folder}`)) void this.start(`list:${folder}`, () => this.vault.store.list(this.at(folder)));
    });
  }

  /** undefined when the folder is absent; an absent folder and an empty one list alike, so the parent decides. */
  async listFolder(dirId: string): Promise<Listing | undefined> {
    const folder = dirPath(this.vault.keys, dirId);
    const items = await this.list(folder);
    if (items.length > 0) return { folder, items };
    const slash = folder.lastIndexOf('/');
    const parent = await this.list(folder.slice(0, slash));
    const leaf = folder.slice(slash + 1);
    return parent.some((e) => e.name === leaf && e.isDir) ? { folder, items } : undefined;
  }

  async *walk(dirId: string, dir: string, listing: Listing): AsyncGenerator<VaultEntry> {
    this.seen.add(dirId);
    const children = await this.children(dirId, dir, listing);
    const prefix = dir === '' ? '' : `${dir}/`;
    const folders = children.filter((c) => c.isDir);
    let next = 0;
    const fill = () => {
      for (; next < folders.length && this.ahead.size < PREFETCH * 3; next++) this.prefetch(folders[next]!.node);
    };
    for (const child of children) {
      if (child.isDir) fill();
      const path = prefix + child.name;
      if (!child.isDir) {
        if (!child.node.endsWith('.c9r')) {
          this.damage(dir, child.node, 'a .c9s node must be a folder');
          continue;
        }
        const file = this.file(dir, path, child.node, child.node, child.size);
        if (file) yield file;
        continue;
      }
      const inside = await this.list(child.node);
      const has = (n: string) => inside.find((e) => e.name === n && !e.isDir);
      const dirFile = has('dir.c9r');
      const linkFile = has('symlink.c9r');
      const contents = child.node.endsWith('.c9s') ? has('contents.c9r') : undefined;
      if (dirFile) {
        const target = await this.childDir(dir, `${child.node}/dir.c9r`);
        if (!target) continue;
        yield { path, type: 'dir', node: child.node, dirId: target.dirId };
        yield* this.walk(target.dirId, path, target.listing);
      } else if (linkFile) {
        const object = `${child.node}/symlink.c9r`;
        const raw = await this.small(dir, object);
        if (!raw) continue;
        let target: string;
        try {
          target = decryptBuffer(this.vault.config.cipherCombo, this.vault.keys, raw, path).toString('utf8');
        } catch (err) {
          if (!(err instanceof CerberusError)) throw err;
          this.damage(dir, object, err.message);
          continue;
        }
        yield { path, type: 'symlink', node: child.node, target };
      } else if (contents) {
        const file = this.file(dir, path, child.node, `${child.node}/contents.c9r`, contents.size);
        if (file) yield file;
      } else {
        this.damage(dir, child.node, 'node is neither file, directory nor symlink');
      }
    }
  }

  /** Decrypted, checked and sorted children of one folder; damaged ones reported and left out. */
  private async children(dirId: string, dir: string, listing: Listing): Promise<Child[]> {
    const out: Child[] = [];
    for (const item of listing.items) {
      const node = `${listing.folder}/${item.name}`;
      const known = this.knownName?.(node);
      if (known !== undefined) {
        out.push({ name: known, node, isDir: item.isDir, size: item.size });
        continue;
      }
      let encrypted: string;
      if (item.name.endsWith('.c9s')) {
        if (!item.isDir) {
          this.damage(dir, node, 'a .c9s node must be a folder');
          continue;
        }
        const raw = await this.small(dir, `${node}/name.c9s`);
        if (!raw) continue;
        encrypted = raw.toString('utf8').trim();
        // the hash binds name.c9s to its node, so swapped name.c9s files cannot swap names
        if (shortenedName(encrypted) !== item.name) {
          this.damage(dir, `${node}/name.c9s`, 'name does not match the hash in its node name');
          continue;
        }
      } else if (item.name.endsWith('.c9r') && item.name !== 'dirid.c9r') {
        encrypted = item.name;
      } else {
        // dirid.c9r (the dirId backup) and foreign files such as .DS_Store are not entries
        continue;
      }
      let name: string;
      try {
        name = decryptName(this.vault.keys, encrypted, dirId);
      } catch (err) {
        if (!(err instanceof CerberusError)) throw err;
        this.damage(dir, node, err.message);
        continue;
      }
      if (name.includes('/') || name === '.' || name === '..' || name === '') {
        throw new CerberusError('UNSAFE_PATH', `vault entry name is not a plain file name: ${JSON.stringify(name)} (${node})`);
      }
      out.push({ name, node, isDir: item.isDir, size: item.size });
    }
    out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // two nodes decrypting to one name (a sync conflict copy) would give one path twice
    return out.filter((c, i) => {
      if (i === 0 || out[i - 1]!.name !== c.name) return true;
      this.damage(dir, c.node, `another node in this folder is also named ${JSON.stringify(c.name)}`);
      return false;
    });
  }

  /** A small metadata object, or undefined (reported) when missing or oversized. Store failures propagate. */
  private async small(dir: string, object: string): Promise<Buffer | undefined> {
    try {
      return await this.read(object);
    } catch (err) {
      if (isNotFound(err)) this.damage(dir, object, 'is missing');
      else if (err instanceof CerberusError && err.code === 'INTEGRITY') this.damage(dir, object, err.message);
      else throw err;
      return undefined;
    }
  }

  private async childDir(dir: string, object: string): Promise<{ dirId: string; listing: Listing } | undefined> {
    const raw = await this.small(dir, object);
    if (!raw) return undefined;
    const dirId = raw.toString('utf8').trim();
    if (dirId === ROOT_DIR_ID || this.seen.has(dirId)) {
      this.damage(dir, object, `names a directory already walked (${JSON.stringify(dirId)}): a loop or a duplicate`);
      return undefined;
    }
    const listing = await this.listFolder(dirId);
    if (!listing) {
      this.damage(dir, object, `names folder ${dirPath(this.vault.keys, dirId)}, which is missing`);
      return undefined;
    }
    return { dirId, listing };
  }

  private file(dir: string, path: string, node: string, content: string, ctSize: number): VaultEntry | undefined {
    const { config, keys, store } = this.vault;
    const size = cleartextSize(config.cipherCombo, ctSize);
    if (size === undefined) {
      this.damage(dir, content, `ciphertext size ${ctSize} is impossible`);
      return undefined;
    }
    const at = this.at(content);
    return {
      path,
      type: 'file',
      node,
      content,
      ctSize,
      size,
      open: async () => piped(await store.get(at), new DecryptStream(config.cipherCombo, keys, path)),
    };
  }
}

/** Depth-first, children sorted by cleartext name, a dir before its children; paths use `/` and have no leading slash. */
export interface WalkOptions {
  /** report damage and go on, instead of throwing */
  onDamage?: (d: VaultDamage) => void;
  /**
   * The cleartext name of a node (vault-relative path) the caller wrote itself and remembers.
   * A node's name follows from the cleartext name and the folder's dirId alone (AES-SIV is
   * deterministic), so a remembered one needs no decryption; nodes it does not know are
   * decrypted as usual.
   */
  knownName?: (node: string) => string | undefined;
}

export async function* walkVault(vault: OpenedVault, opts: WalkOptions = {}): AsyncGenerator<VaultEntry> {
  const walker = new Walker(vault, opts.onDamage, opts.knownName);
  const listing = await walker.listFolder(ROOT_DIR_ID);
  if (!listing) {
    const folder = dirPath(vault.keys, ROOT_DIR_ID);
    if (opts.onDamage) opts.onDamage({ dir: '', object: folder, problem: 'the root folder is missing' });
    else throw new CerberusError('INTEGRITY', `vault root folder ${folder} is missing`, { hint: DAMAGE_HINT });
    return;
  }
  yield* walker.walk(ROOT_DIR_ID, '', listing);
}

/**
 * `src.pipe(to)`, with a read error passed on to the consumer instead of stalling it, and the
 * source closed when the consumer stops. Not stream.pipeline: per call, that makes an
 * AbortController and aborts it at the end, which builds a DOMException with a stack trace:
 * a second of CPU time and much garbage in a restore of 40,000 small files.
 */
function piped<T extends NodeJS.ReadWriteStream & Readable>(src: Readable, to: T): T {
  src.on('error', (err) => to.destroy(err));
  to.once('close', () => src.destroy());
  src.pipe(to);
  return to;
}
