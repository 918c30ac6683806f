import { z } from 'zod';
import { CerberusError } from '../errors.js';
import { LEVELS } from './levels.js';
import { joinedBytes, jsonObjectParts, readJsonLines, wholeBytes, type ByteSource } from '../text-bytes.js';

/**
 * The manifest: the FULL state at one restore point, and for each file which generation of
 * the chain holds its bytes. It is the only thing restore trusts about names.
 */

/** A relative path that cannot leave the folder it is restored into. */
export function isSafeRelativePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\0')) return false;
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

const safePath = z.string().refine(isSafeRelativePath, { message: 'unsafe path' });
const nsTime = z.string().regex(/^-?\d+$/);
const genId = z.string().regex(/^\d{4}-\d{2}-\d{2}T\d{6}Z$/);

const fileEntry = z.object({
  path: safePath,
  type: z.literal('file'),
  size: z.number().int().nonnegative(),
  mtimeNs: nsTime,
  mode: z.number().int().nonnegative(),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  holder: genId,
});
const dirEntry = z.object({
  path: safePath,
  type: z.literal('dir'),
  mtimeNs: nsTime,
  mode: z.number().int().nonnegative(),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
});
const symlinkEntry = z.object({
  path: safePath,
  type: z.literal('symlink'),
  mtimeNs: nsTime,
  mode: z.number().int().nonnegative(),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  target: z.string().min(1),
});

export const manifestEntrySchema = z.discriminatedUnion('type', [fileEntry, dirEntry, symlinkEntry]);
export type ManifestEntry = z.infer<typeof manifestEntrySchema>;
export type FileEntry = z.infer<typeof fileEntry>;

const KEYS = { file: 9, dir: 6, symlink: 7 } as const;
const NS_TIME = /^-?\d+$/;
const SHA256 = /^[0-9a-f]{64}$/;
const GEN_ID = /^\d{4}-\d{2}-\d{2}T\d{6}Z$/;
const natural = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/**
 * The entry schema's checks by hand, for the common case: zod's parse of each of 40,000
 * entries was a tenth of a no-change run. True only where the schema would accept `v` as it
 * is (its object strips unknown keys, so an entry with more is left to zod); whatever this
 * refuses, zod judges and names.
 */
export function isPlainEntry(v: unknown): v is ManifestEntry {
  if (typeof v !== 'object' || v === null) return false;
  const e = v as Record<string, unknown>;
  const common =
    typeof e.path === 'string' && isSafeRelativePath(e.path) && typeof e.mtimeNs === 'string' && NS_TIME.test(e.mtimeNs) &&
    natural(e.mode) && natural(e.uid) && natural(e.gid);
  if (!common) return false;
  const keys = Object.keys(e).length;
  switch (e.type) {
    case 'file':
      return keys === KEYS.file && natural(e.size) && typeof e.sha256 === 'string' && SHA256.test(e.sha256) && typeof e.holder === 'string' && GEN_ID.test(e.holder);
    case 'dir':
      return keys === KEYS.dir;
    case 'symlink':
      return keys === KEYS.symlink && typeof e.target === 'string' && e.target.length > 0;
    default:
      return false;
  }
}

export const manifestSchema = z.object({
  format: z.literal(1),
  job: z.string(),
  id: genId,
  level: z.enum(LEVELS),
  parent: genId.nullable(),
  /** ids from the full generation to this one */
  chain: z.array(genId).min(1),
  createdAt: z.string(),
  roots: z.array(z.string()),
  entries: z.array(manifestEntrySchema),
  stats: z.object({
    files: z.number().int(),
    dirs: z.number().int(),
    symlinks: z.number().int(),
    bytes: z.number(),
    storedFiles: z.number().int(),
    storedBytes: z.number(),
    deleted: z.number().int(),
  }),
});
export type Manifest = z.infer<typeof manifestSchema>;

/**
 * Parses and checks a manifest. Bytes as manifestBytes writes them are read an entry a line,
 * each checked as it comes: no text of the whole, no second copy of every entry. With
 * `each`, the entries go to it one by one and are not kept (the result's list is empty, and
 * the whole-list check for paths through links is left out): for a scan that only counts.
 */
export function parseManifest(json: string | ByteSource, what: string, each?: (e: ManifestEntry) => void): Manifest {
  const malformed = (issue: z.core.$ZodIssue | undefined, prefix: string) => {
    const where = issue ? [prefix, ...issue.path].filter((p) => p !== '').join('.') : prefix;
    const kind = issue?.message === 'unsafe path' ? 'UNSAFE_PATH' : 'INTEGRITY';
    return new CerberusError(kind, `${what} is malformed at ${where}: ${issue?.message ?? 'invalid'}`, {
      hint: 'the repository may have been tampered with; restore from another target',
    });
  };
  let raw: unknown;
  let byLine = false;
  const entries: ManifestEntry[] = [];
  try {
    const lines =
      typeof json !== 'string' &&
      readJsonLines(json, (item, i) => {
        let entry: ManifestEntry;
        if (isPlainEntry(item)) entry = item;
        else {
          const e = manifestEntrySchema.safeParse(item);
          if (!e.success) throw malformed(e.error.issues[0], `entries.${i}`);
          entry = e.data;
        }
        if (each) each(entry);
        else entries.push(entry);
      });
    byLine = lines !== false;
    raw = lines ? lines.head : JSON.parse(typeof json === 'string' ? json : wholeBytes(json).toString('utf8'));
  } catch (err) {
    if (err instanceof CerberusError) throw err;
    throw new CerberusError('INTEGRITY', `${what} is not valid JSON: ${(err as Error).message}`);
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) throw malformed(parsed.error.issues[0], '');
  if (byLine) parsed.data.entries = entries;
  if (each) {
    for (const e of parsed.data.entries) each(e);
    parsed.data.entries = [];
  }
  const m = parsed.data;
  if (m.chain[m.chain.length - 1] !== m.id) {
    throw new CerberusError('INTEGRITY', `${what}: its chain does not end with its own id ${m.id}`);
  }
  checkNoWriteThroughLinks(m.entries, what);
  return m;
}

/**
 * Every ancestor of an entry must be a directory of the manifest (or the root): otherwise a
 * file could be written through a symlink, out of the restore folder.
 */
function checkNoWriteThroughLinks(entries: ManifestEntry[], what: string): void {
  const kinds = new Map<string, ManifestEntry['type']>();
  for (const e of entries) {
    if (kinds.has(e.path)) throw new CerberusError('INTEGRITY', `${what} lists ${e.path} twice`);
    kinds.set(e.path, e.type);
  }
  for (const e of entries) {
    let i = e.path.lastIndexOf('/');
    while (i > 0) {
      const anc = e.path.slice(0, i);
      const k = kinds.get(anc);
      if (k !== undefined && k !== 'dir') {
        throw new CerberusError('UNSAFE_PATH', `${what}: ${e.path} would be written through the ${k} ${anc}`, {
          hint: 'the repository may have been tampered with; nothing was restored',
        });
      }
      i = anc.lastIndexOf('/');
    }
  }
}

/** Deterministic order: paths sorted by UTF-16 code units, parents before children. */
export function sortEntries<T extends { path: string }>(entries: T[]): T[] {
  return entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** The manifest's JSON as UTF-8, one entry per line, in pieces: a big source's is megabytes. */
export function manifestParts(m: Manifest): Generator<Buffer> {
  const { entries, ...head } = m;
  return jsonObjectParts(head, 'entries', entries);
}

export const manifestBytes = (m: Manifest): Buffer => Buffer.concat([...manifestParts(m)]);

export function manifestTsv(entries: ManifestEntry[]): Buffer {
  const esc = (s: string) => s.replace(/\\/g, '\\\\').replace(/\t/g, '\\t').replace(/\n/g, '\\n').replace(/\r/g, '\\r');
  const line = (e: ManifestEntry) => {
    const size = e.type === 'file' ? String(e.size) : '';
    const sha = e.type === 'file' ? e.sha256 : '';
    const holder = e.type === 'file' ? e.holder : '';
    const target = e.type === 'symlink' ? esc(e.target) : '';
    return [esc(e.path), e.type, size, (e.mode & 0o7777).toString(8), e.mtimeNs, sha, holder, target].join('\t');
  };
  function* lines(): Generator<string> {
    yield '# path\ttype\tsize\tmode\tmtime_ns\tsha256\tholder\tlink_target';
    for (const e of entries) yield line(e);
  }
  return joinedBytes(lines(), (l) => l, '\n', '', '\n');
}

type Meta = Pick<ManifestEntry, 'type' | 'mode' | 'mtimeNs' | 'uid' | 'gid'>;

/** Type, mode, time and owner as the manifest had them. */
export const sameMeta = (a: Meta, e: Meta): boolean => a.type === e.type && a.mode === e.mode && a.mtimeNs === e.mtimeNs && a.uid === e.uid && a.gid === e.gid;

/**
 * The previous state's file, if a walked file is still it: its cached hash (still valid for
 * its stat) is the one recorded, and size and metadata have not moved.
 */
export function unchangedFile(p: ManifestEntry | undefined, e: Meta & { size: number }, knownSha256: string | undefined): FileEntry | undefined {
  return knownSha256 !== undefined && p?.type === 'file' && p.sha256 === knownSha256 && p.size === e.size && sameMeta(p, e) ? p : undefined;
}
