import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Minimatch } from 'minimatch';

/**
 * Walks the source in a fixed order (names sorted), yielding directories on entry and on
 * leave so a caller can decide about a directory after seeing what is below it. Symlinks
 * are never followed.
 */

export interface SourceEntry {
  /** '/'-separated path in the backup; the single root's contents sit at the top */
  path: string;
  abs: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
  mode: number;
  uid: number;
  gid: number;
  target?: string;
}

export type WalkEvent =
  | { kind: 'enter'; entry: SourceEntry }
  | { kind: 'leave'; entry: SourceEntry }
  | { kind: 'entry'; entry: SourceEntry }
  | { kind: 'skipped'; path: string; abs: string; reason: string }
  /** only with `reportExcluded`: what source.exclude left out (a folder stands for all below it) */
  | { kind: 'excluded'; path: string; abs: string }
  | { kind: 'error'; path: string; abs: string; error: NodeJS.ErrnoException }
  | { kind: 'missing-root'; abs: string };

/** Reserved at the top of every archive for cerberus's own files. */
export const RESERVED_DIR = '.cerberus';

export class Excluder {
  private readonly rel: Minimatch[] = [];
  private readonly abs: Minimatch[] = [];
  constructor(patterns: string[]) {
    for (const p of patterns) {
      if (p.startsWith('/')) this.abs.push(new Minimatch(p, { dot: true }));
      else this.rel.push(new Minimatch(p, { dot: true, matchBase: !p.includes('/') }));
    }
  }
  excludes(rel: string, abs: string): boolean {
    return this.rel.some((m) => m.match(rel)) || this.abs.some((m) => m.match(abs));
  }
}

function toEntry(rel: string, abs: string, st: import('node:fs').BigIntStats): SourceEntry | string {
  const base = {
    path: rel,
    abs,
    size: 0,
    mtimeNs: st.mtimeNs.toString(),
    ctimeNs: st.ctimeNs.toString(),
    ino: `${st.dev}:${st.ino}`,
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
  };
  if (st.isFile()) return { ...base, type: 'file', size: Number(st.size) };
  if (st.isDirectory()) return { ...base, type: 'dir' };
  if (st.isSymbolicLink()) return { ...base, type: 'symlink' };
  if (st.isSocket()) return 'socket';
  if (st.isFIFO()) return 'FIFO';
  if (st.isBlockDevice() || st.isCharacterDevice()) return 'device';
  return 'unknown file type';
}

/**
 * A path every walk leaves out, and what it says instead: cerberus's reserved folder is skipped,
 * an excluded path reported only when asked ('silent' otherwise); undefined for a path it takes.
 */
export function passOver(rel: string, abs: string, exclude: Excluder, opts: WalkOptions): WalkEvent | 'silent' | undefined {
  if (rel === RESERVED_DIR) return { kind: 'skipped', path: rel, abs, reason: `${RESERVED_DIR} at the top of the source is reserved for cerberus` };
  if (exclude.excludes(rel, abs)) return opts.reportExcluded ? { kind: 'excluded', path: rel, abs } : 'silent';
  return undefined;
}

export async function statEntry(rel: string, abs: string): Promise<SourceEntry | string> {
  const st = await fsp.lstat(abs, { bigint: true });
  const e = toEntry(rel, abs, st);
  if (typeof e !== 'string' && e.type === 'symlink') e.target = await fsp.readlink(abs);
  return e;
}

/**
 * The same, synchronously: the walk stats every entry of the source, and through the thread
 * pool each lstat costs tens of times what the call itself does (50,000 files: seconds).
 */
function statEntrySync(rel: string, abs: string): SourceEntry | string {
  const st = fs.lstatSync(abs, { bigint: true });
  const e = toEntry(rel, abs, st);
  if (typeof e !== 'string' && e.type === 'symlink') e.target = fs.readlinkSync(abs);
  return e;
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export interface WalkOptions {
  /** yield `excluded` events (the yearly export must tell 7-Zip what to leave out) */
  reportExcluded?: boolean;
}

export async function* walkSource(roots: string[], exclude: Excluder, opts: WalkOptions = {}): AsyncGenerator<WalkEvent> {
  const single = roots.length === 1;
  for (const root of roots) {
    let top: SourceEntry | string;
    try {
      top = await statEntry(single ? '' : path.basename(root), root);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        yield { kind: 'missing-root', abs: root };
        continue;
      }
      yield { kind: 'error', path: single ? '' : path.basename(root), abs: root, error: err as NodeJS.ErrnoException };
      continue;
    }
    if (typeof top === 'string') {
      yield { kind: 'skipped', path: path.basename(root), abs: root, reason: top };
      continue;
    }
    if (top.type !== 'dir') {
      top.path = path.basename(root);
      yield { kind: 'entry', entry: top };
      continue;
    }
    yield* walkDir(top, single, exclude, opts);
  }
}

async function* walkDir(dir: SourceEntry, isRoot: boolean, exclude: Excluder, opts: WalkOptions): AsyncGenerator<WalkEvent> {
  if (!isRoot) yield { kind: 'enter', entry: dir };
  let names: string[];
  try {
    // synchronously, as the lstat calls below: a round trip through the thread pool per
    // folder left the main thread idle for a quarter of a no-change run
    names = fs.readdirSync(dir.abs).sort(byName);
  } catch (err) {
    // a folder deleted while we walk is simply gone, as a file would be
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      yield { kind: 'error', path: dir.path, abs: dir.abs, error: err as NodeJS.ErrnoException };
    }
    names = [];
  }
  for (const name of names) {
    const rel = dir.path === '' ? name : `${dir.path}/${name}`;
    const abs = path.join(dir.abs, name);
    const over = passOver(rel, abs, exclude, opts);
    if (over) {
      if (over !== 'silent') yield over;
      continue;
    }
    let e: SourceEntry | string;
    try {
      e = statEntrySync(rel, abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted while we walked
      yield { kind: 'error', path: rel, abs, error: err as NodeJS.ErrnoException };
      continue;
    }
    if (typeof e === 'string') yield { kind: 'skipped', path: rel, abs, reason: e };
    else if (e.type === 'dir') yield* walkDir(e, false, exclude, opts);
    else yield { kind: 'entry', entry: e };
  }
  if (!isRoot) yield { kind: 'leave', entry: dir };
}
