import { z } from 'zod';
import { CerberusError } from '../errors.js';
import { joinPath, removeTree, type Backend, type BodySource, type ObjectInfo, type RequestOptions } from '../storage/backend.js';
import { LEVELS, isGenerationId, type Level } from '../engine/levels.js';
import { putBuffer, readSmall, sha256Hex } from './io.js';

/**
 * Generations on a target: `<level>/<id>/`, committed once SHA256SUMS (the commit marker)
 * is there. Everything else under a level folder is an unfinished or broken write.
 */

export const SUMS = 'SHA256SUMS';
export const INFO = 'info.json';
export const MANIFEST = 'manifest.json.gpg';
/** a plain generation's manifest, readable as it is */
export const PLAIN_MANIFEST = 'manifest.json';
/** a plain generation's folder tree */
export const PLAIN_FILES = 'files';
export const INCOMPLETE_PREFIX = '.incomplete-';

export const infoSchema = z.object({
  format: z.literal(1),
  /** absent in generations written before Cryptomator repositories existed */
  kind: z.enum(['openpgp', 'cryptomator', 'plain']).default('openpgp'),
  id: z.string(),
  level: z.enum(LEVELS),
  parent: z.string().nullable(),
  chain: z.array(z.string()).min(1),
  /** `level/id` of every generation of the chain, oldest first, space-separated for shell use */
  chainDirs: z.string(),
  createdAt: z.string(),
  suspicious: z.array(z.string()),
  /** OpenPGP volumes; 0 for a Cryptomator vault */
  volumes: z.number().int().nonnegative(),
  stats: z.object({
    files: z.number().int(),
    bytes: z.number(),
    storedFiles: z.number().int(),
    storedBytes: z.number(),
    /** a Cryptomator generation: bytes of its whole vault (`d/`), copied ones included */
    vaultBytes: z.number().optional(),
  }),
  createdBy: z.string(),
});
/** Plaintext facts about a generation, so list, verify and retention need no key. */
export type GenerationInfo = z.output<typeof infoSchema>;

export interface Generation {
  id: string;
  level: Level;
  dir: string;
  parent: string | null;
  info: GenerationInfo;
  files: ObjectInfo[];
  /** bytes on the target */
  storedSize: number;
  /** SHA256SUMS, as read when listing (or written when committing) */
  sums: Map<string, string>;
}

export interface Leftover {
  dir: string;
  why: string;
}

export interface RepositoryListing {
  committed: Generation[];
  /** unfinished writes of dead runs: prune removes them */
  leftovers: Leftover[];
  /** committed, but their info.json does not match SHA256SUMS: kept for a person to look at */
  damaged: Leftover[];
}

export function parseSums(text: string): Map<string, string> {
  const sums = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const m = /^([0-9a-f]{64}) [ *](.+)$/.exec(line);
    if (!m || !m[1] || !m[2]) throw new CerberusError('INTEGRITY', `malformed ${SUMS} line: ${line.slice(0, 80)}`);
    sums.set(m[2], m[1]);
  }
  return sums;
}

export function formatSums(sums: Map<string, string>): string {
  return [...sums.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([name, hash]) => `${hash}  ${name}\n`)
    .join('');
}

/** Generations read at once while listing: a remote listing is many small requests. */
const LISTING_PARALLEL = 4;

export async function listGenerations(backend: Backend): Promise<RepositoryListing> {
  const committed: Generation[] = [];
  const leftovers: Leftover[] = [];
  const damaged: Leftover[] = [];
  const candidates: Array<{ level: Level; id: string; dir: string }> = [];
  for (const level of LEVELS) {
    for (const entry of await backend.list(level)) {
      const dir = joinPath(level, entry.name);
      if (!entry.isDir) continue;
      if (entry.name.startsWith(INCOMPLETE_PREFIX) || !isGenerationId(entry.name)) leftovers.push({ dir, why: 'unfinished write' });
      else candidates.push({ level, id: entry.name, dir });
    }
  }
  await forEachLimited(candidates, LISTING_PARALLEL, async ({ level, id, dir }) => {
    const files = await backend.list(dir);
    if (!files.some((f) => f.name === SUMS)) {
      leftovers.push({ dir, why: `no ${SUMS} (never committed, or half deleted)` });
      return;
    }
    let sums: Map<string, string>;
    let info: GenerationInfo | string;
    try {
      sums = parseSums((await readSmall(backend, joinPath(dir, SUMS), 16 << 20)).toString('utf8'));
      info = await readInfo(backend, dir, level, id, sums);
    } catch (err) {
      // deleted since its folder was listed (a prune elsewhere, e.g. the next backup beside a
      // restore, which takes no lock): it is no restore point now. Deleting removes SHA256SUMS
      // first, so a generation that still has it is damaged, not deleted, and that stays an error.
      if (err instanceof CerberusError && err.code === 'NOT_FOUND' && !(await backend.stat(joinPath(dir, SUMS)))) return;
      throw err;
    }
    if (typeof info === 'string') {
      damaged.push({ dir, why: info });
      return;
    }
    committed.push({ id, level, dir, parent: info.parent, info, files, storedSize: files.reduce((s, f) => s + f.size, 0), sums });
  });
  committed.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  leftovers.sort((a, b) => (a.dir < b.dir ? -1 : 1));
  return { committed, leftovers, damaged };
}

/**
 * info.json, checked against SHA256SUMS: a read the network altered must not make a
 * committed generation look like garbage that prune may clear. Read twice before calling
 * it damaged; a failed read is an error, not a verdict.
 */
async function readInfo(backend: Backend, dir: string, level: Level, id: string, sums: Map<string, string>): Promise<GenerationInfo | string> {
  const expected = sums.get(INFO);
  if (!expected) return `${SUMS} does not list ${INFO}`;
  for (let attempt = 1; ; attempt++) {
    const bytes = await readSmall(backend, joinPath(dir, INFO), 1 << 20);
    if (sha256Hex(bytes) !== expected) {
      if (attempt < 2) continue;
      return `${INFO} does not match ${SUMS}`;
    }
    let json: unknown;
    try {
      json = JSON.parse(bytes.toString('utf8'));
    } catch {
      return `${INFO} is not JSON`;
    }
    const parsed = infoSchema.safeParse(json);
    if (!parsed.success || parsed.data.id !== id || parsed.data.level !== level) return `${INFO} does not describe ${level}/${id}`;
    return parsed.data;
  }
}

async function forEachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * Writes one generation by the commit protocol: everything under `.incomplete-<id>/`,
 * SHA256SUMS last, then the folder moved into place. Without `move`, files go straight to
 * the final folder and SHA256SUMS, written last, is the only commit marker.
 */
export class GenerationWriter {
  readonly sums = new Map<string, string>();
  /** what was written, for callers that keep their listing current without listing again */
  readonly written: ObjectInfo[] = [];
  readonly workDir: string;
  readonly finalDir: string;

  constructor(
    private readonly backend: Backend,
    readonly level: Level,
    readonly id: string,
  ) {
    this.finalDir = joinPath(level, id);
    this.workDir = backend.capabilities.move ? joinPath(level, `${INCOMPLETE_PREFIX}${id}`) : this.finalDir;
  }

  async begin(): Promise<void> {
    if (await this.backend.stat(this.finalDir)) {
      throw new CerberusError('USAGE', `${this.backend.description}: generation ${this.finalDir} already exists`, {
        hint: 'one generation per second at most; wait a moment, or pass a later --now',
      });
    }
    await this.backend.mkdir(this.workDir);
  }

  /** `sha256`: the body's digest, or what gives it once the body was sent (a stream hashed on its way) */
  async put(name: string, body: BodySource, size: number, sha256: string | (() => string), opts: RequestOptions = {}): Promise<void> {
    await this.backend.put(joinPath(this.workDir, name), body, size, opts);
    this.sums.set(name, typeof sha256 === 'string' ? sha256 : sha256());
    this.written.push({ name, size, isDir: false });
  }

  async putBuffer(name: string, data: Buffer | Uint8Array, sha256: string): Promise<void> {
    await putBuffer(this.backend, joinPath(this.workDir, name), data);
    this.sums.set(name, sha256);
    this.written.push({ name, size: data.byteLength, isDir: false });
  }

  async commit(): Promise<void> {
    // what was put with deferSync must be on the disk before the commit marker is
    await this.backend.flush?.();
    const sums = Buffer.from(formatSums(this.sums));
    await putBuffer(this.backend, joinPath(this.workDir, SUMS), sums);
    this.written.push({ name: SUMS, size: sums.length, isDir: false });
    if (this.workDir !== this.finalDir && this.backend.move) {
      await this.backend.move(this.workDir, this.finalDir);
    }
  }

  /** Best effort: a failed run leaves nothing that looks like a generation. */
  async abort(): Promise<void> {
    await removeTree(this.backend, this.workDir).catch(() => undefined);
  }
}

/** Removes the commit marker first, so a half-finished delete never looks whole. */
export async function deleteGeneration(backend: Backend, dir: string): Promise<void> {
  await backend.remove(joinPath(dir, SUMS));
  await removeTree(backend, dir);
}
