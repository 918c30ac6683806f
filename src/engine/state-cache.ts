import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { makeDirs, writeParts } from '../fsutil.js';
import { randomBytes } from 'node:crypto';
import { ioError } from '../errors.js';
import { manifestParts, parseManifest, type Manifest, type ManifestEntry } from './manifest.js';
import { fileBytes, jsonArrayParts, readJsonLines, wholeBytes, type ByteSource } from '../text-bytes.js';

/**
 * The local state cache. Per repository it keeps the plaintext manifests of the generations
 * that can still be parents (the backup machine cannot decrypt the ones on the target); per
 * job it keeps file hashes keyed by stat data, so only what looks changed is read twice.
 */

export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CERBERUS_STATE_DIR) return path.resolve(env.CERBERUS_STATE_DIR);
  const xdg = env.XDG_STATE_HOME || path.join(os.homedir(), '.local', 'state');
  return path.join(xdg, 'cerberus');
}

export interface HashRecord {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  sha256: string;
}

/** The cached hash still holds while size, mtime, ctime and inode are what they were. */
export function matchesStat(r: HashRecord | undefined, e: { size: number; mtimeNs: string; ctimeNs: string; ino: string }): r is HashRecord {
  return r !== undefined && r.size === e.size && r.mtimeNs === e.mtimeNs && r.ctimeNs === e.ctimeNs && r.ino === e.ino;
}

/** `data` whole, in pieces (never all in memory), or as a copy of the file `{ from }`. */
async function writeAtomic(file: string, data: string | Uint8Array | Iterable<Uint8Array> | { from: string }): Promise<void> {
  const tmp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await makeDirs(path.dirname(file));
    if (typeof data === 'object' && 'from' in data) await fsp.copyFile(data.from, tmp);
    else if (typeof data === 'string' || data instanceof Uint8Array) await fsp.writeFile(tmp, data);
    else await writeParts(tmp, data);
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw ioError(err, `cannot write the state cache ${file}`);
  }
}

const isFile = (file: string): Promise<boolean> => fsp.stat(file).then((s) => s.isFile(), () => false);

// a tenant's job `acme/website` becomes `acme+website`: no config job name holds a '+'
const safeName = (s: string) => s.replace(/\//g, '+').replace(/[^A-Za-z0-9._+-]/g, '_');

export class StateCache {
  readonly jobDir: string;
  readonly repoDir: string;

  constructor(stateDir: string, job: string, repoId: string) {
    this.jobDir = path.join(stateDir, safeName(job));
    this.repoDir = path.join(this.jobDir, 'repos', safeName(repoId));
  }

  /** a scratch folder on the local disk, for spooling volumes */
  async scratch(): Promise<string> {
    const dir = path.join(this.jobDir, 'tmp');
    await makeDirs(dir).catch((err: unknown) => {
      throw ioError(err, `cannot create ${dir} (set CERBERUS_STATE_DIR to a writable folder)`);
    });
    return fsp.mkdtemp(path.join(dir, 'run-'));
  }

  /** `each`: see parseManifest; the entries go to it, and the result's list is empty. */
  async loadManifest(id: string, each?: (e: ManifestEntry) => void): Promise<Manifest | undefined> {
    const file = path.join(this.repoDir, `${id}.json`);
    try {
      // read a piece at a time: a big source's manifest is tens of MB
      const m = parseManifest(fileBytes(file), file, each);
      return m.id === id ? m : undefined;
    } catch {
      return undefined; // missing, or damaged: a damaged cache is a missing cache (the next generation is full)
    }
  }

  /** Whether the cache holds a manifest of `id`, without reading it (loadManifest may still find it damaged). */
  async hasManifest(id: string): Promise<boolean> {
    return isFile(path.join(this.repoDir, `${id}.json`));
  }

  /** `json`: the manifest already serialized, as bytes or in a file, when the caller has it (megabytes for a big source) */
  async saveManifest(m: Manifest, json: Uint8Array | Iterable<Uint8Array> | { from: string } = manifestParts(m)): Promise<void> {
    await writeAtomic(path.join(this.repoDir, `${m.id}.json`), json);
  }

  /** Another record kept per generation (`<id>.<kind>.json`), such as a vault's state. */
  async loadRecord(id: string, kind: string): Promise<ByteSource | undefined> {
    return this.loadFile(`${id}.${kind}.json`);
  }

  async saveRecord(id: string, kind: string, data: Iterable<Uint8Array>): Promise<void> {
    await this.saveFile(`${id}.${kind}.json`, data);
  }

  /** A file of the repository's cache that `retain` never drops: names not ending in .json. */
  async loadFile(name: string): Promise<ByteSource | undefined> {
    const file = path.join(this.repoDir, name);
    return (await isFile(file)) ? fileBytes(file) : undefined;
  }

  async saveFile(name: string, data: Iterable<Uint8Array>): Promise<void> {
    await writeAtomic(path.join(this.repoDir, name), data);
  }

  /** Drops cached manifests (and other records) of generations that can no longer be parents. */
  async retain(ids: Set<string>): Promise<void> {
    let names: string[];
    try {
      names = await fsp.readdir(this.repoDir);
    } catch {
      return;
    }
    for (const n of names) {
      // generation ids hold no '.', so the id is what comes before the first one
      if (n.endsWith('.json') && !ids.has(n.slice(0, n.indexOf('.')))) await fsp.rm(path.join(this.repoDir, n), { force: true });
    }
  }

  async loadHashes(): Promise<Map<string, HashRecord>> {
    try {
      // [path, record] pairs a line; older caches are one line, pairs or an object keyed by path
      const bytes = fileBytes(path.join(this.jobDir, 'hashes.json'));
      const map = new Map<string, HashRecord>();
      if (readJsonLines(bytes, (pair) => map.set(...(pair as [string, HashRecord])))) return map;
      const raw = JSON.parse(wholeBytes(bytes).toString('utf8')) as Array<[string, HashRecord]> | Record<string, HashRecord>;
      return new Map(Array.isArray(raw) ? raw : Object.entries(raw));
    } catch {
      return new Map();
    }
  }

  /** Pairs, not an object: no dictionary of every path on the heap on the way in or out. */
  async saveHashes(hashes: Map<string, HashRecord>): Promise<void> {
    await writeAtomic(path.join(this.jobDir, 'hashes.json'), jsonArrayParts(hashes));
  }
}
