import { CerberusError } from '../errors.js';
import { passOver, type Excluder, type SourceEntry, type WalkEvent, type WalkOptions } from '../engine/walk.js';
import { joinRemote, type RemoteEntry, type RemoteSource } from './types.js';

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Walks a remote source as walkSource walks a single local root: the same events in the same
 * order (names sorted, folders entered and left, the root's contents at the top), so the
 * engine cannot tell them apart. `abs` is the path on the server (S3: '/' + key).
 *
 * A folder the server will not list is an 'error' event and the walk goes on; a source that
 * fails as a whole (refused login, unreachable after the retries) throws: walking on would only
 * fail again for every folder.
 */
export async function* walkRemote(source: RemoteSource, exclude: Excluder, opts: WalkOptions = {}): AsyncGenerator<WalkEvent> {
  const root = source.root;
  let top: RemoteEntry[];
  try {
    top = await source.list(root);
  } catch (err) {
    if (err instanceof CerberusError) throw err;
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      yield { kind: 'missing-root', abs: root };
      return;
    }
    yield { kind: 'error', path: '', abs: root, error: err as NodeJS.ErrnoException };
    return;
  }
  yield* walkDir(source, { path: '', abs: root }, top, exclude, opts);
}

async function* walkDir(
  source: RemoteSource,
  dir: { path: string; abs: string },
  listed: RemoteEntry[] | undefined,
  exclude: Excluder,
  opts: WalkOptions,
): AsyncGenerator<WalkEvent> {
  let entries = listed;
  if (!entries) {
    try {
      entries = await source.list(dir.abs);
    } catch (err) {
      if (err instanceof CerberusError) throw err;
      // a folder deleted while we walk is simply gone, as a file would be
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') yield { kind: 'error', path: dir.path, abs: dir.abs, error: err as NodeJS.ErrnoException };
      entries = [];
    }
  }
  const sorted = [...entries].sort((a, b) => byName(a.name, b.name) || (a.type === 'dir' ? -1 : b.type === 'dir' ? 1 : 0));
  let previous: string | undefined;
  for (const e of sorted) {
    const rel = dir.path === '' ? e.name : `${dir.path}/${e.name}`;
    const abs = joinRemote(dir.abs, e.name);
    if (e.name === '' || e.name === '.' || e.name === '..' || e.name.includes('/')) {
      yield { kind: 'skipped', path: rel, abs, reason: `${JSON.stringify(e.name)} is not a usable file name` };
      continue;
    }
    // S3 can hold an object `a` beside keys under `a/`; a tree has room for one: the folder, sorted first
    if (e.name === previous) {
      yield { kind: 'skipped', path: rel, abs, reason: 'a folder of the same name is already there' };
      continue;
    }
    previous = e.name;
    const over = passOver(rel, abs, exclude, opts);
    if (over) {
      if (over !== 'silent') yield over;
      continue;
    }
    if (e.type === 'other') {
      yield { kind: 'skipped', path: rel, abs, reason: 'not a file, folder or symlink' };
      continue;
    }
    const entry = toEntry(rel, abs, e, e.type);
    if (e.type === 'dir') {
      yield { kind: 'enter', entry };
      yield* walkDir(source, entry, undefined, exclude, opts);
      yield { kind: 'leave', entry };
    } else {
      yield { kind: 'entry', entry };
    }
  }
}

function toEntry(rel: string, abs: string, e: RemoteEntry, type: SourceEntry['type']): SourceEntry {
  const ns = String(BigInt(Math.trunc(e.mtimeMs)) * 1_000_000n);
  const entry: SourceEntry = {
    path: rel,
    abs,
    type,
    size: type === 'file' ? e.size : 0,
    mtimeNs: ns,
    ctimeNs: ns,
    ino: '',
    mode: e.mode ?? (type === 'dir' ? 0o755 : type === 'file' ? 0o644 : 0o777),
    uid: 0,
    gid: 0,
  };
  if (type === 'symlink' && e.target !== undefined) entry.target = e.target;
  return entry;
}
