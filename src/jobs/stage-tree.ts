import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { JobConfig } from '../config/index.js';
import { unchangedFile, type FileEntry, type Manifest, type ManifestEntry } from '../engine/manifest.js';
import { matchesStat, type HashRecord } from '../engine/state-cache.js';
import { Excluder, walkSource, type SourceEntry } from '../engine/walk.js';
import { nsSeconds, readWhole, SMALL_FILE } from '../fsutil.js';
import type { Reporter } from '../report/log.js';
import type { BackupStats } from './backup-finish.js';

/** What the tree writer needs: where to write, and what the generation before holds. */
export interface StageTreeInput {
  job: JobConfig;
  /** the new generation's `files/` folder; undefined in a dry run */
  dest: string | undefined;
  /** the previous generation's manifest and `files/` folder, to link unchanged files to */
  previous: { manifest: Manifest; files: string } | undefined;
  oldHashes: Map<string, HashRecord>;
  /** this generation's id: every file of a plain generation is its own */
  id: string;
  reporter: Reporter;
}

export interface StageTree {
  entries: ManifestEntry[];
  hashes: Map<string, HashRecord>;
  problems: string[];
  unreadable: number;
  rootsMissing: string[];
  stats: BackupStats;
  /** files hard-linked to the previous generation */
  linked: number;
}

/** Chown needs root; a stage written by another user keeps that user's ownership. */
const IS_ROOT = process.getuid?.() === 0;


/**
 * Writes the source as a plain folder tree, like `rsync --link-dest`: a file whose content and
 * metadata match the previous generation becomes a hard link to it (it costs no space and,
 * since nothing about it differs, sharing the inode changes no other generation); any other
 * file is copied and hashed in one read. Folders are made writable while filled and get their
 * own mode and time when left.
 */
export async function writeStageTree(input: StageTreeInput): Promise<StageTree> {
  const { job, dest, previous, oldHashes, id, reporter } = input;
  const prevIndex = new Map<string, ManifestEntry>((previous?.manifest.entries ?? []).map((e) => [e.path, e]));
  const out: StageTree = {
    entries: [],
    hashes: new Map(),
    problems: [],
    unreadable: 0,
    rootsMissing: [],
    stats: { files: 0, dirs: 0, symlinks: 0, bytes: 0, storedFiles: 0, storedBytes: 0, deleted: 0, changedFiles: 0, uploadedBytes: 0 },
    linked: 0,
  };
  const seen = new Set<string>();
  const problem = (msg: string) => {
    out.problems.push(msg);
    reporter.warn(msg);
  };
  const add = (e: ManifestEntry) => {
    out.entries.push(e);
    seen.add(e.path);
    if (e.type === 'file') {
      out.stats.files++;
      out.stats.bytes += e.size;
    } else if (e.type === 'dir') out.stats.dirs++;
    else out.stats.symlinks++;
  };
  const at = (rel: string) => path.join(dest!, ...rel.split('/'));
  let smallBuffer: Buffer | undefined;
  const visited = { files: 0, bytes: 0 };

  /** The previous generation's copy, linked: undefined when it cannot be (gone, too many links). */
  const linkPrevious = (p: FileEntry): FileEntry | undefined => {
    if (dest === undefined) return { ...p, holder: id };
    if (previous === undefined) return undefined;
    try {
      fs.linkSync(path.join(previous.files, ...p.path.split('/')), at(p.path));
      out.linked++;
      return { ...p, holder: id };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EMLINK' || code === 'EXDEV' || code === 'EPERM') return undefined;
      throw err;
    }
  };

  /** An unreadable path keeps what the previous generation had there (folders made, files linked). */
  const carryOver = (prefix: string) => {
    for (const e of previous?.manifest.entries ?? []) {
      if (!(e.path === prefix || e.path.startsWith(prefix + '/') || prefix === '') || seen.has(e.path)) continue;
      if (e.type === 'file') {
        const kept = linkPrevious(e);
        if (kept) add(kept);
        continue;
      }
      if (dest !== undefined) {
        if (e.type === 'dir') fs.mkdirSync(at(e.path), { recursive: true });
        else fs.symlinkSync(e.target, at(e.path));
      }
      add(e);
    }
  };

  const copyFile = async (e: SourceEntry): Promise<FileEntry | undefined> => {
    for (let attempt = 1; ; attempt++) {
      const got = await copyHashed(e, dest === undefined ? undefined : at(e.path), (smallBuffer ??= Buffer.allocUnsafe(SMALL_FILE + 1)));
      if (got === 'gone') return undefined;
      if (!got.stable && attempt < 2) continue;
      if (!got.stable) problem(`${e.abs} changed while it was read (twice); the stored copy may be inconsistent`);
      out.hashes.set(e.abs, { size: got.size, mtimeNs: got.mtimeNs, ctimeNs: got.ctimeNs, ino: e.ino, sha256: got.sha256 });
      out.stats.storedFiles++;
      out.stats.storedBytes += got.size;
      return { path: e.path, type: 'file', size: got.size, mtimeNs: got.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, sha256: got.sha256, holder: id };
    }
  };

  for await (const ev of walkSource(job.source.paths, new Excluder(job.source.exclude))) {
    switch (ev.kind) {
      case 'missing-root':
        out.rootsMissing.push(ev.abs);
        break;
      case 'skipped':
        problem(`skipped ${ev.abs}: ${ev.reason} (add it to source.exclude to silence this)`);
        break;
      case 'error':
        out.unreadable++;
        problem(`cannot read ${ev.abs}: ${ev.error.code ?? ev.error.message}; its last backed-up state is kept`);
        carryOver(ev.path);
        break;
      case 'enter':
        if (dest !== undefined) fs.mkdirSync(at(ev.entry.path), { mode: 0o700 });
        break;
      case 'leave': {
        const e = ev.entry;
        if (seen.has(e.path)) break; // carried over whole when it could not be read
        if (dest !== undefined) setMeta(at(e.path), e);
        add({ path: e.path, type: 'dir', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid });
        break;
      }
      case 'entry': {
        const e = ev.entry;
        if (e.type === 'symlink') {
          if (dest !== undefined) {
            fs.symlinkSync(e.target ?? '', at(e.path));
            setMeta(at(e.path), e);
          }
          add({ path: e.path, type: 'symlink', mtimeNs: e.mtimeNs, mode: e.mode, uid: e.uid, gid: e.gid, target: e.target ?? '' });
          break;
        }
        const p = prevIndex.get(e.path);
        const cached = oldHashes.get(e.abs);
        const known = matchesStat(cached, e) ? cached : undefined;
        visited.files++;
        visited.bytes += e.size;
        reporter.progress(visited);
        const same = unchangedFile(p, e, known?.sha256);
        if (same && known) {
          const kept = linkPrevious(same);
          if (kept) {
            out.hashes.set(e.abs, known);
            add(kept);
            break;
          }
        }
        let entry: FileEntry | undefined;
        try {
          entry = await copyFile(e);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EIO' && code !== 'ENXIO') throw err;
          out.unreadable++;
          problem(`cannot read ${e.abs}: ${code}${p?.type === 'file' ? '; its last backed-up version is kept' : ''}`);
          const kept = p?.type === 'file' ? linkPrevious(p) : undefined;
          if (kept) add(kept);
          break;
        }
        if (entry) add(entry); // else: gone while we walked
        break;
      }
    }
  }
  // the walk leaves the single root's own folder to the caller: it has no entry
  reporter.endProgress();
  out.stats.deleted = (previous?.manifest.entries ?? []).filter((e) => !seen.has(e.path)).length;
  return out;
}

/** Mode, times and (as root) owner of what was just written, the way the source has them. */
function setMeta(p: string, e: SourceEntry): void {
  if (IS_ROOT) fs.lchownSync(p, e.uid, e.gid);
  if (e.type !== 'symlink') fs.chmodSync(p, e.mode & 0o7777);
  fs.lutimesSync(p, nsSeconds(e.mtimeNs), nsSeconds(e.mtimeNs));
}

interface Copied {
  size: number;
  sha256: string;
  mtimeNs: string;
  ctimeNs: string;
  /** size and mtime held still during the read */
  stable: boolean;
}

/** Copies one source file to `dest` (when given) and hashes it, in one read. */
async function copyHashed(e: SourceEntry, dest: string | undefined, buffer: Buffer): Promise<Copied | 'gone'> {
  const read = e.size <= SMALL_FILE ? readWhole(e.abs, buffer) : 'stream';
  if (read === 'gone') return 'gone';
  if (read !== 'stream') {
    const { data, before, stable } = read;
    if (dest !== undefined) {
      // a retry after an unstable read writes again: O_TRUNC
      fs.writeFileSync(dest, data, { mode: 0o600 });
      setMeta(dest, { ...e, mtimeNs: before.mtimeNs.toString() });
    }
    return { size: data.length, sha256: createHash('sha256').update(data).digest('hex'), mtimeNs: before.mtimeNs.toString(), ctimeNs: before.ctimeNs.toString(), stable };
  }
  let src: fsp.FileHandle;
  try {
    src = await fsp.open(e.abs, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  const out = dest === undefined ? undefined : await fsp.open(dest, 'w', 0o600);
  try {
    const before = await src.stat({ bigint: true });
    const hash = createHash('sha256');
    const chunk = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      const { bytesRead } = await src.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      const part = chunk.subarray(0, bytesRead);
      hash.update(part);
      if (out) for (let off = 0; off < bytesRead; ) off += (await out.write(part, off, bytesRead - off)).bytesWritten;
      size += bytesRead;
    }
    const after = await src.stat({ bigint: true });
    const mtimeNs = before.mtimeNs.toString();
    if (out && dest !== undefined) {
      await out.close();
      setMeta(dest, { ...e, mtimeNs });
    }
    const stable = after.size === before.size && after.mtimeNs === before.mtimeNs && BigInt(size) === before.size;
    return { size, sha256: hash.digest('hex'), mtimeNs, ctimeNs: before.ctimeNs.toString(), stable };
  } finally {
    await src.close();
    await out?.close().catch(() => undefined);
  }
}

/**
 * A second name for every file of a tree (`cp -al`): folders and links made anew with their
 * mode, times and owner, files hard-linked. What it pins stays readable whatever happens to
 * the original names (a prune), and costs no space.
 */
export function linkTree(src: string, dst: string): void {
  fs.mkdirSync(dst, { mode: 0o700 });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, e.name);
    const to = path.join(dst, e.name);
    if (e.isDirectory()) linkTree(from, to);
    else if (e.isSymbolicLink()) {
      fs.symlinkSync(fs.readlinkSync(from), to);
      copyMeta(from, to);
    } else fs.linkSync(from, to);
  }
  copyMeta(src, dst);
}

function copyMeta(from: string, to: string): void {
  const st = fs.lstatSync(from, { bigint: true });
  if (IS_ROOT) fs.lchownSync(to, Number(st.uid), Number(st.gid));
  if (!st.isSymbolicLink()) fs.chmodSync(to, Number(st.mode & 0o7777n));
  fs.lutimesSync(to, nsSeconds(st.mtimeNs.toString()), nsSeconds(st.mtimeNs.toString()));
}
