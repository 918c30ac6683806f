import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ManifestEntry } from '../engine/manifest.js';
import { matchesStat, type HashRecord } from '../engine/state-cache.js';
import { Excluder, walkSource, type SourceEntry } from '../engine/walk.js';
import {
  childNode,
  ciphertextSize,
  dirFolder,
  dirNodeObjects,
  fileContentPath,
  newDirId,
  SEAL_PIECE,
  SealEngine,
  symlinkNodeObjects,
  type CryptomatorKeys,
  type VaultObject,
} from '../formats/cryptomator/index.js';
import { readWhole, sha256OfFile, SMALL_FILE } from '../fsutil.js';
import { joinPath, removeTree, type Backend } from '../storage/index.js';
import type { Reporter } from '../report/log.js';
import { CerberusError } from '../errors.js';
import { collectAllOver, collector } from '../heap.js';
import { TaskPool } from './pool.js';
import { sealedFile, type SealedFile } from './sealed-file.js';
import { parentOf, vaultKey, type VaultRecord, type VaultState } from './state.js';

/**
 * Makes the vault at `root` on a backend hold exactly the source: new and changed files are
 * encrypted and uploaded, removed ones deleted, everything else left untouched. The vault
 * starts as `previous` describes it (a server-side copy of the last generation, or a mirror
 * as listed), so unchanged files are never read or encrypted again.
 */

const COMBO = 'SIV_GCM' as const;
const PIECES_PER_COLLECTION = 32;
/**
 * A full collection every so many files, and at the end: the walk's and the apply's objects
 * outlive the small young generation and are promoted, and V8 lets the old one grow fourfold
 * before it looks again, so at 40,000 files a no-change run held 35-50 MB of them at its peak.
 */
const FULL_COLLECTION_FILES = 10_000;
/** ... when the heap is this big: a first backup, with no last state, stays below it and pays nothing */
const FULL_COLLECTION_HEAP = 64 << 20;

export interface ApplyOptions {
  backend: Backend;
  /** the vault's folder on the backend */
  root: string;
  keys: CryptomatorKeys;
  /** what the vault at `root` holds now; undefined for an empty (new) vault */
  previous: VaultState | undefined;
  /** the last manifest's entries by path, kept for whatever cannot be read this time: loaded only then */
  previousEntries?: () => Promise<ReadonlyMap<string, ManifestEntry>>;
  source: { paths: string[]; exclude: string[] };
  oldHashes: Map<string, HashRecord>;
  dryRun: boolean;
  reporter: Reporter;
  /** uploads in flight */
  parallel: number;
  /** the generation id recorded as every file's holder */
  holder: string;
  /** false: keep no manifest entries (a mirror has no manifest) */
  manifest?: boolean;
  /** `root` is an uncommitted generation's folder: objects may be written in place (RequestOptions.unpublished) */
  unpublished?: boolean;
  /**
   * Files from outside the source (database dumps), put into the folder `dir` at the top of
   * the vault after the walk and uploaded every time, never taken as unchanged.
   */
  extra?: { dir: SourceEntry; files: SourceEntry[] };
  /** called with what would go, before anything is deleted; may throw to keep it */
  beforeDeletes?: (what: { gone: Array<{ path: string; type: VaultRecord['type'] }>; previousFiles: number; rootsMissing: string[] }) => void;
}

export interface VaultChanges {
  added: string[];
  changed: string[];
  deleted: string[];
}

export interface ApplyStats {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  /** files encrypted and uploaded */
  storedFiles: number;
  storedBytes: number;
  deleted: number;
  /** ciphertext bytes sent */
  uploadedBytes: number;
}

export interface ApplyResult {
  state: VaultState;
  entries: ManifestEntry[];
  hashes: Map<string, HashRecord>;
  changes: VaultChanges;
  stats: ApplyStats;
  problems: string[];
  unreadable: number;
  rootsMissing: string[];
}

interface DirContext {
  path: string;
  dirId: string;
  folder: string;
  /** NFC names already used in this folder: two source names that differ only in normalization collide */
  names: Set<string>;
  /** a colliding folder: everything below it is left out */
  skip: boolean;
}

const objectSha = (o: VaultObject): string => createHash('sha256').update(o.data).digest('hex');

/** The objects a node owns directly (not its folder): what to delete when it goes. */
function nodeFolderOf(r: VaultRecord): string | undefined {
  return r.type === 'file' && !r.shortened ? undefined : r.node;
}

export async function applyToVault(opts: ApplyOptions): Promise<ApplyResult> {
  const { backend, root, keys, reporter, dryRun } = opts;
  const prev = opts.previous?.entries ?? {};
  let lastEntries: Promise<ReadonlyMap<string, ManifestEntry>> | undefined;
  const previousEntries = () => (lastEntries ??= opts.previousEntries?.() ?? Promise.resolve(new Map()));
  const entries: Record<string, VaultRecord> = {};
  const manifest: ManifestEntry[] = [];
  const inManifest = new Set<string>();
  // a mirror keeps no manifest; 50,000 entries of one are memory and collector time for nothing
  const addEntry = (m: ManifestEntry) => {
    if (opts.manifest === false) return;
    manifest.push(m);
    inManifest.add(m.path);
  };
  const hashes = new Map<string, HashRecord>();
  const changes: VaultChanges = { added: [], changed: [], deleted: [] };
  const problems: string[] = [];
  const rootsMissing: string[] = [];
  let unreadable = 0;
  const stats: ApplyStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, storedFiles: 0, storedBytes: 0, deleted: 0, uploadedBytes: 0 };
  const pool = new TaskPool(Math.max(1, opts.parallel));
  // every object is made durable at once by the caller's `flush`, before it commits
  const DEFER = { deferSync: true, unpublished: opts.unpublished === true };
  // made on the first file to encrypt: a run that changes nothing never allocates its scratch
  let engine: SealEngine | undefined;
  const sealer = () => (engine ??= new SealEngine(COMBO, keys));
  // small files' buffers, reused: a fresh pair per file was half a gigabyte of short-lived memory
  // outside the heap for a 2 GiB tree. One read buffer (each file is sealed before the next
  // await), and one ciphertext buffer per upload in flight.
  let readBuffer: Buffer | undefined;
  const ctBuffers: Buffer[] = [];
  // sealing leaves fresh buffers that die young (node:crypto's output per 32 KiB chunk, a
  // streamed file's pieces): young-generation collections free them before tens of MB pile
  // up outside the heap
  const collect = collector(PIECES_PER_COLLECTION * SEAL_PIECE);
  const at = (p: string) => joinPath(root, p);
  const problem = (msg: string) => {
    problems.push(msg);
    reporter.warn(msg);
  };

  const putObject = async (o: VaultObject) => {
    if (dryRun) return;
    await backend.put(at(o.path), () => Readable.from([o.data]), o.data.length, DEFER);
    stats.uploadedBytes += o.data.length;
  };
  const putObjects = async (list: VaultObject[]) => {
    for (const o of list) await pool.run(() => putObject(o));
  };
  const mkdir = async (p: string) => {
    if (!dryRun) await backend.mkdir(at(p));
  };
  /** Removes a node and what it owns, for a path whose type changed. */
  const removeNode = async (r: VaultRecord) => {
    if (dryRun) return;
    const folder = nodeFolderOf(r);
    if (folder) await removeTree(backend, at(folder));
    else await backend.remove(at(r.node));
  };

  // the root folder exists in every vault; a new vault gets its dirid.c9r here
  const rootDir: DirContext = { path: '', dirId: '', folder: dirFolder(keys, COMBO, '').folder, names: new Set(), skip: false };
  const rootRecord = prev[''];
  if (rootRecord) entries[''] = rootRecord;
  else {
    const { folder, objects: own } = dirFolder(keys, COMBO, '');
    await mkdir(folder);
    await putObjects(own);
    entries[''] = { type: 'dir', node: '', shortened: false, dirId: '', ct: objectSha(own[0]!) };
  }
  const stack: DirContext[] = [rootDir];
  const top = () => stack[stack.length - 1]!;

  const visited = { files: 0, bytes: 0 };
  const tick = () => reporter.progress({ files: visited.files, bytes: visited.bytes });

  /** Claims the entry's name in its folder; false (and a warning) on a normalization clash. */
  const claim = (e: { path: string; abs: string }): boolean => {
    const parent = top();
    const name = vaultKey(e.path.slice(e.path.lastIndexOf('/') + 1));
    if (parent.names.has(name)) {
      problem(`left out ${e.abs}: another name in its folder differs from it only in Unicode normalization, and a vault stores names in NFC`);
      return false;
    }
    parent.names.add(name);
    return true;
  };

  /** Keeps what is below an unreadable path as the previous state had it. */
  const carryOver = async (p: string) => {
    const key = vaultKey(p);
    for (const [k, r] of Object.entries(prev)) {
      if (k !== '' && (k === key || k.startsWith(key + '/') || key === '') && !entries[k]) {
        entries[k] = r;
        // counted as if read: the guards compare these counts with the last run's
        if (r.type === 'file') {
          stats.files++;
          stats.bytes += r.size ?? 0;
        } else if (r.type === 'dir') stats.dirs++;
        else stats.symlinks++;
      }
    }
    for (const [k, e] of await previousEntries()) {
      if ((k === p || k.startsWith(p + '/') || p === '') && !inManifest.has(k)) addEntry(e);
    }
  };

  /** Records a file once its content is on the target. */
  const stored = (e: SourceEntry, record: VaultRecord, isNew: boolean, content: string, before: fs.BigIntStats, sha256: string, ctSha256: string) => {
    const size = Number(before.size);
    const ctSize = ciphertextSize(COMBO, size);
    record.ct = ctSha256;
    record.size = size;
    record.ctSize = ctSize;
    record.sha256 = sha256;
    stats.storedFiles++;
    stats.storedBytes += size;
    stats.uploadedBytes += ctSize;
    hashes.set(e.abs, { size, mtimeNs: before.mtimeNs.toString(), ctimeNs: before.ctimeNs.toString(), ino: e.ino, sha256 });
    addEntry({
      path: e.path, type: 'file', size, mtimeNs: before.mtimeNs.toString(), mode: Number(before.mode & 0o7777n), uid: e.uid, gid: e.gid, sha256, holder: opts.holder,
    });
    (isNew ? changes.added : changes.changed).push(e.path);
  };

  /**
   * A small file read whole and encrypted in memory: the stream pipeline and its thread-pool
   * reads cost more per file than the few KiB of work, and most files of a document tree are
   * small. False when the file is not (or no longer) a small regular file: then it streams.
   */
  const uploadSmall = async (e: SourceEntry, record: VaultRecord, isNew: boolean): Promise<boolean> => {
    const content = fileContentPath(record);
    for (let attempt = 1; ; attempt++) {
      const read = readWhole(e.abs, (readBuffer ??= Buffer.allocUnsafe(SMALL_FILE + 1)));
      if (read === 'gone') return true; // the delete pass sees it as gone
      if (read === 'stream') return false;
      const { data, before, stable } = read;
      if (!stable && attempt < 2) continue;
      if (!stable) problem(`${e.abs} changed while it was read (twice); the stored copy may be inconsistent`);
      const size = data.length;
      const out = ctBuffers.pop() ?? Buffer.allocUnsafe(ciphertextSize(COMBO, SMALL_FILE));
      const sealed = sealer().whole(data, out);
      collect(size);
      // the same bytes on a retry: the same content under the same nonces, nothing new revealed
      await backend.put(at(content), () => Readable.from([sealed.ct]), sealed.ct.length, DEFER);
      // a settled put holds no reference to its body (a failed one drops the buffer instead)
      ctBuffers.push(out);
      visited.bytes += size;
      tick();
      stored(e, record, isNew, content, before, sealed.sha256, sealed.ctSha256);
      return true;
    }
  };

  const uploadFile = async (e: SourceEntry, record: VaultRecord, isNew: boolean): Promise<void> => {
    if (e.size <= SMALL_FILE && (await uploadSmall(e, record, isNew))) return;
    const content = fileContentPath(record);
    for (let attempt = 1; ; attempt++) {
      const before = await fsp.lstat(e.abs, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined;
        throw err;
      });
      if (!before) return; // gone meanwhile: the delete pass sees it as gone
      const size = Number(before.size);
      let current: SealedFile['outcome'] | undefined;
      const ctSize = ciphertextSize(COMBO, size);
      // every attempt re-reads and re-encrypts with fresh nonces; the digests follow the last one
      const body = () => {
        const sealed = sealedFile(e.abs, size, sealer().file(), (n) => {
          visited.bytes += n;
          tick();
          collect(n);
        });
        current = sealed.outcome;
        return sealed.body;
      };
      await backend.put(at(content), body, ctSize, DEFER);
      const after = await fsp.lstat(e.abs, { bigint: true }).catch(() => undefined);
      const used = current!;
      const stable = after !== undefined && after.size === before.size && after.mtimeNs === before.mtimeNs && used.sourceBytes === size;
      if (!stable && attempt < 2) continue;
      if (!stable) problem(`${e.abs} changed while it was read (twice); the stored copy may be inconsistent`);
      const digests = used.digests;
      if (!digests) throw new CerberusError('INTERNAL', `${e.abs}: the upload ended before its encryption did`);
      stored(e, record, isNew, content, before, digests.sha256, digests.ctSha256);
      return;
    }
  };

  /** `always`: upload it even when its content is what the vault holds */
  const onFile = async (e: SourceEntry, always = false) => {
    const parent = top();
    const key = vaultKey(e.path);
    const old = prev[key];
    visited.files++;
    if (visited.files % FULL_COLLECTION_FILES === 0) collectAllOver(FULL_COLLECTION_HEAP);
    stats.files++;
    stats.bytes += e.size;
    const cached = always ? undefined : opts.oldHashes.get(e.abs);
    let known = matchesStat(cached, e) ? cached : undefined;
    if (!always && !known && !dryRun && old?.type === 'file' && old.sha256 !== undefined && old.size === e.size) {
      // touched, or its hash forgotten: reading it is cheaper than encrypting and sending it
      const sha256 = await sha256OfFile(e.abs).catch(() => undefined);
      if (sha256 === old.sha256) known = { size: e.size, mtimeNs: e.mtimeNs, ctimeNs: e.ctimeNs, ino: e.ino, sha256 };
    }
    if (old?.type === 'file' && known && old.sha256 === known.sha256 && old.size === e.size) {
      entries[key] = old;
      hashes.set(e.abs, known);
      addEntry({ path: e.path, type: 'file', size: e.size, mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, sha256: known.sha256, holder: opts.holder });
      visited.bytes += e.size;
      tick();
      return;
    }
    const node = childNode(keys, parent.folder, parent.dirId, e.path.slice(e.path.lastIndexOf('/') + 1));
    const isNew = old?.type !== 'file';
    // a changed file keeps its node, and a shortened one its name.c9s
    const record: VaultRecord = { type: 'file', node: node.node, shortened: node.shortened, ...(!isNew && old.ns ? { ns: old.ns } : {}) };
    entries[key] = record;
    if (old && old.type !== 'file') await removeNode(old);
    if (dryRun) {
      record.size = e.size;
      record.sha256 = known?.sha256 ?? '0'.repeat(64);
      stats.storedFiles++;
      stats.storedBytes += e.size;
      addEntry({ path: e.path, type: 'file', size: e.size, mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, sha256: record.sha256, holder: opts.holder });
      (old ? changes.changed : changes.added).push(e.path);
      return;
    }
    if (isNew && node.shortened) {
      await mkdir(node.node);
      await putObjects(node.objects);
      record.ns = objectSha(node.objects[0]!);
    }
    await pool.run(async () => {
      try {
        await uploadFile(e, record, old === undefined);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EIO' && code !== 'ENXIO') throw err;
        unreadable++;
        problem(`cannot read ${e.abs}: ${code}${old?.type === 'file' ? '; its last backed-up version is kept' : ''}`);
        const last = (await previousEntries()).get(e.path);
        if (old?.type === 'file' && last) {
          // the upload never replaced the old content: a put is whole or nothing
          entries[key] = old;
          addEntry(last);
        } else {
          delete entries[key];
          // a new long name's folder holds only name.c9s: no node for the apps, nor for the sums
          if (isNew && node.shortened) await removeTree(backend, at(node.node));
        }
      }
    });
  };

  const onSymlink = async (e: SourceEntry) => {
    const parent = top();
    const key = vaultKey(e.path);
    const old = prev[key];
    const target = e.target ?? '';
    stats.symlinks++;
    addEntry({ path: e.path, type: 'symlink', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, target });
    if (old?.type === 'symlink' && old.target === target) {
      entries[key] = old;
      return;
    }
    const node = childNode(keys, parent.folder, parent.dirId, e.path.slice(e.path.lastIndexOf('/') + 1));
    const link = symlinkNodeObjects(keys, COMBO, node, target);
    // a changed link keeps its node, and a shortened one its name.c9s
    const names = old?.type === 'symlink' ? [] : node.objects;
    const ns = names[0] ? objectSha(names[0]) : old?.type === 'symlink' ? old.ns : undefined;
    entries[key] = { type: 'symlink', node: node.node, shortened: node.shortened, target, ct: objectSha(link[0]!), ...(ns ? { ns } : {}) };
    (old ? changes.changed : changes.added).push(e.path);
    if (old && old.type !== 'symlink') await removeNode(old);
    if (old?.type !== 'symlink') await mkdir(node.node);
    await putObjects([...link, ...names]);
  };

  const onEnter = async (e: SourceEntry) => {
    const parent = top();
    const key = vaultKey(e.path);
    if (parent.skip || !claim(e)) {
      stack.push({ path: e.path, dirId: '', folder: '', names: new Set(), skip: true });
      return;
    }
    stats.dirs++;
    addEntry({ path: e.path, type: 'dir', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid });
    const old = prev[key];
    if (old?.type === 'dir' && old.dirId !== undefined) {
      entries[key] = old;
      stack.push({ path: e.path, dirId: old.dirId, folder: dirFolder(keys, COMBO, old.dirId).folder, names: new Set(), skip: false });
      return;
    }
    const node = childNode(keys, parent.folder, parent.dirId, e.path.slice(e.path.lastIndexOf('/') + 1));
    const dirId = newDirId();
    const { folder, objects: own } = dirFolder(keys, COMBO, dirId);
    const ns = node.objects[0] ? objectSha(node.objects[0]) : undefined;
    entries[key] = { type: 'dir', node: node.node, shortened: node.shortened, dirId, ct: objectSha(own[0]!), ...(ns ? { ns } : {}) };
    (old ? changes.changed : changes.added).push(e.path);
    if (old) await removeNode(old);
    await mkdir(node.node);
    await mkdir(folder);
    await putObjects([...dirNodeObjects(node, dirId), ...node.objects, ...own]);
    stack.push({ path: e.path, dirId, folder, names: new Set(), skip: false });
  };

  for await (const ev of walkSource(opts.source.paths, new Excluder(opts.source.exclude))) {
    const skipping = top().skip;
    switch (ev.kind) {
      case 'missing-root':
        rootsMissing.push(ev.abs);
        break;
      case 'skipped':
        if (!skipping) problem(`skipped ${ev.abs}: ${ev.reason} (add it to source.exclude to silence this)`);
        break;
      case 'error':
        if (skipping) break;
        unreadable++;
        problem(`cannot read ${ev.abs}: ${ev.error.code ?? ev.error.message}; its last backed-up state is kept`);
        await carryOver(ev.path);
        break;
      case 'enter':
        await onEnter(ev.entry);
        break;
      case 'leave':
        stack.pop();
        break;
      case 'entry':
        if (skipping || !claim(ev.entry)) break;
        if (ev.entry.type === 'symlink') await onSymlink(ev.entry);
        else await onFile(ev.entry);
        break;
    }
  }
  if (opts.extra) {
    // only the vault's root is left on the stack once the walk is over
    if (rootDir.names.has(vaultKey(opts.extra.dir.path))) {
      throw new CerberusError('CONFIG', `the source has its own ${opts.extra.dir.path} at the top, where the database dumps go`, {
        hint: `rename it, or leave it out with source.exclude`,
      });
    }
    await onEnter(opts.extra.dir);
    for (const f of opts.extra.files) await onFile(f, true);
    stack.pop();
  }
  await pool.drain();
  // the dumps' spool files are no source files: the next run must not know them
  for (const f of opts.extra?.files ?? []) hashes.delete(f.abs);

  // what is gone: children before parents, and nothing twice (a folder's removal covers its nodes)
  const gone = Object.entries(prev)
    .filter(([k]) => k !== '' && !entries[k])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  opts.beforeDeletes?.({
    gone: gone.map(([path, r]) => ({ path, type: r.type })),
    previousFiles: Object.values(prev).filter((r) => r.type === 'file').length,
    rootsMissing,
  });
  const goneDirs = new Set(gone.filter(([, r]) => r.type === 'dir').map(([k]) => k));
  for (const [k, r] of gone) {
    changes.deleted.push(k);
    stats.deleted++;
    if (dryRun) continue;
    if (!goneDirs.has(parentOf(k))) {
      const folder = nodeFolderOf(r);
      if (folder) await pool.run(() => removeTree(backend, at(folder)));
      else await pool.run(() => backend.remove(at(r.node)));
    }
    if (r.type === 'dir' && r.dirId !== undefined) {
      const { folder } = dirFolder(keys, COMBO, r.dirId);
      await pool.run(() => removeTree(backend, at(folder)));
    }
  }
  await pool.drain();
  reporter.endProgress();

  // the state's records say which objects the vault holds: what was removed is in none
  const state: VaultState = { entries };
  collectAllOver(FULL_COLLECTION_HEAP);
  return { state, entries: manifest, hashes, changes, stats, problems, unreadable, rootsMissing };
}

