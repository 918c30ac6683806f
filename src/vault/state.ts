import { createHash } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../errors.js';
import { dirPath, fileContentPath, type CryptomatorKeys } from '../formats/cryptomator/index.js';
import { jsonObjectParts, readJsonLines, wholeBytes, type ByteSource } from '../text-bytes.js';

/**
 * What cerberus knows about a vault it wrote: for each cleartext path (NFC, as the vault
 * names it) where its node lives, the dirId of each folder, what the file held, and the
 * sha256 of the objects it wrote there. The state cache keeps one per generation, so the
 * next generation re-encrypts only changes.
 */

const sha = z.string().regex(/^[0-9a-f]{64}$/);
const record = z.object({
  type: z.enum(['file', 'dir', 'symlink']),
  /** vault-relative path of the node: `d/XX/YYY…/<name>.c9r` or `….c9s` */
  node: z.string(),
  shortened: z.boolean(),
  dirId: z.string().optional(),
  target: z.string().optional(),
  size: z.number().int().nonnegative().optional(),
  /** ciphertext bytes on the target */
  ctSize: z.number().int().nonnegative().optional(),
  /** cleartext sha256 */
  sha256: sha.optional(),
  /**
   * sha256 of the one encrypted object the node owns: a file's content, a symlink's
   * symlink.c9r, a folder's dirid.c9r (in the folder's own `d/XX/YYY…`). Absent in mirrors.
   */
  ct: sha.optional(),
  /** sha256 of a shortened node's name.c9s; absent in mirrors */
  ns: sha.optional(),
});
export type VaultRecord = z.infer<typeof record>;

export interface VaultState {
  /** cleartext path → record */
  entries: Record<string, VaultRecord>;
}

const STATE_FORMAT = 2;
const pair = z.tuple([z.string(), record]);

/**
 * Format 2, a `[path, record]` pair a line (read and written without the text as one string:
 * a vault of 40,000 files is 20 MB of it). Format 1 was one line with a separate `objects`
 * map of every object's sha256; `keys` place its folders' dirid.c9r, to read it into records.
 */
export function stateParts(state: VaultState): Generator<Buffer> {
  return jsonObjectParts({ format: STATE_FORMAT }, 'entries', pairs(state.entries));
}

function* pairs(entries: Record<string, VaultRecord>): Generator<[string, VaultRecord]> {
  for (const p in entries) yield [p, entries[p]!];
}

/** A state file's content, or undefined when it is damaged or unknown: a damaged cache is a missing cache. */
export function parseVaultState(bytes: ByteSource, keys?: CryptomatorKeys): VaultState | undefined {
  try {
    const entries: Record<string, VaultRecord> = {};
    let bad = false;
    const lines = readJsonLines(bytes, (item) => {
      const p = pair.safeParse(item);
      if (p.success) entries[p.data[0]] = p.data[1];
      else bad = true;
    });
    if (lines) return !bad && (lines.head as { format?: unknown }).format === STATE_FORMAT ? { entries } : undefined;
    return fromFormat1(JSON.parse(wholeBytes(bytes).toString('utf8')), keys);
  } catch {
    return undefined;
  }
}

const format1 = z.object({
  format: z.literal(1),
  entries: z.record(z.string(), record),
  objects: z.record(z.string(), sha).optional(),
});

function fromFormat1(raw: unknown, keys: CryptomatorKeys | undefined): VaultState | undefined {
  const parsed = format1.safeParse(raw);
  if (!parsed.success) return undefined;
  const { entries, objects } = parsed.data;
  // a mirror's cache had no objects, and needs none
  if (!objects) return { entries };
  if (!keys) return undefined;
  for (const [p, r] of Object.entries(entries)) {
    const own = ownObjects(keys, p, r);
    r.ct = objects[own.ct];
    if (own.ns !== undefined) r.ns = objects[own.ns];
    if (!hashed(r, own)) return undefined;
  }
  return { entries };
}

/** Where a record's objects are in the vault; `dir.c9r` holds the folder's dirId in clear, so its hash is known. */
function ownObjects(keys: CryptomatorKeys, p: string, r: VaultRecord): { ct: string; ns?: string; dir?: [string, string] } {
  const ns = r.shortened ? `${r.node}/name.c9s` : undefined;
  if (r.type === 'file') return { ct: fileContentPath(r), ns };
  if (r.type === 'symlink') return { ct: `${r.node}/symlink.c9r`, ns };
  const dirId = r.dirId ?? '';
  const folder = `${dirPath(keys, dirId)}/dirid.c9r`;
  return p === '' ? { ct: folder } : { ct: folder, ns, dir: [`${r.node}/dir.c9r`, createHash('sha256').update(dirId, 'utf8').digest('hex')] };
}

/** The record knows the hash of each object it owns. */
const hashed = (r: VaultRecord, own: { ns?: string }): boolean => r.ct !== undefined && (own.ns === undefined || r.ns !== undefined);

/**
 * Every object under `d/` of a vault this state describes, with its sha256, in no order.
 * Throws when a record lacks a hash: a mirror's state describes no generation.
 */
export function* vaultObjects(keys: CryptomatorKeys, state: VaultState): Generator<[string, string]> {
  for (const [p, r] of pairs(state.entries)) {
    const own = ownObjects(keys, p, r);
    if (!hashed(r, own)) throw new CerberusError('INTERNAL', `the vault state has no hash for the objects of ${JSON.stringify(p)}`);
    yield [own.ct, r.ct!];
    if (own.ns !== undefined) yield [own.ns, r.ns!];
    if (own.dir) yield own.dir;
  }
}

/** The key a cleartext path has in a vault: Cryptomator names are NFC. */
export const vaultKey = (p: string): string => p.normalize('NFC');

export function parentOf(p: string): string {
  const i = p.lastIndexOf('/');
  return i < 0 ? '' : p.slice(0, i);
}
