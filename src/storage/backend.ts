import fs from 'node:fs';
import type { Readable } from 'node:stream';

/** What a backend can do, declared rather than guessed. */
export interface Capabilities {
  /** a put is visible whole or not at all */
  atomicPut: boolean;
  move: boolean;
  serverSideCopy: boolean;
  hardLink: boolean;
  maxObjectSize: number;
}

export interface ObjectInfo {
  name: string;
  size: number;
  isDir: boolean;
}

/**
 * A source for `put` that can be read again from the start, so a failed upload can be retried.
 * `file`, when set, says the body is exactly that local file: a backend on this machine may
 * copy it without reading it through (the local one copies in the kernel). A layer that
 * changes the bytes' pace or content wraps the body in a new function, which drops the hint.
 */
export type BodySource = (() => Readable) & { readonly file?: string };

/** A body that is a local file, read in 1 MiB pieces, with the hint that it is one. */
export function fileBody(file: string): BodySource {
  return Object.assign(() => fs.createReadStream(file, { highWaterMark: 1 << 20 }), { file });
}

export interface ByteRange {
  start: number;
  /** inclusive */
  end?: number;
}

/** Per-call options. A backend must stop the request when the signal aborts. */
export interface RequestOptions {
  signal?: AbortSignal;
  /** called whenever bytes move inside a verb (e.g. a read-back check), so idle timeouts measure silence, not total time */
  progress?: () => void;
  /**
   * put: the object need not be durable when the put returns, only after the next `flush`.
   * For many small objects written before one commit marker (a vault generation), one flush
   * costs far less than a sync per object. Backends without `flush` are durable at once.
   */
  deferSync?: boolean;
  /**
   * put: the path lies in a folder nothing reads until it is committed (a generation's
   * `.incomplete-` folder, removed whole when a run dies), so a backend may write the object
   * in place rather than by temp file and rename. Never into an existing file: that may be a
   * hard link shared with a committed generation.
   */
  unpublished?: boolean;
  /**
   * put with a file body (`fileBody`): the caller gives the file up and will only remove it, so
   * a backend on the same file system may hard-link it into place rather than copy its bytes.
   * Only for the file's one destination: two targets linked to one inode share their blocks.
   */
  handOver?: boolean;
}

/**
 * The few verbs every storage backend implements. Paths are '/'-separated and relative to
 * the backend's root. Retry, limits and logging are wrappers around this, not part of it.
 */
export interface Backend {
  readonly description: string;
  readonly capabilities: Capabilities;
  /** whole or not at all where capabilities.atomicPut; `size` is exact and sent up front */
  put(path: string, body: BodySource, size: number, opts?: RequestOptions): Promise<void>;
  /** a missing object rejects with code NOT_FOUND */
  get(path: string, range?: ByteRange, opts?: RequestOptions): Promise<Readable>;
  /** undefined when nothing is there */
  stat(path: string, opts?: RequestOptions): Promise<ObjectInfo | undefined>;
  /** direct children, sorted by name; an absent directory lists as empty */
  list(dir: string, opts?: RequestOptions): Promise<ObjectInfo[]>;
  /** removes a file, or an empty directory; absent is not an error */
  remove(path: string, opts?: RequestOptions): Promise<void>;
  /** creates the folder and its parents; existing is not an error */
  mkdir(path: string, opts?: RequestOptions): Promise<void>;
  /** renames a file or a whole folder; fails when `to` exists */
  move?(from: string, to: string, opts?: RequestOptions): Promise<void>;
  /** copies one file on the server side */
  copy?(from: string, to: string, opts?: RequestOptions): Promise<void>;
  /**
   * copies a whole folder in one server-side operation; fails when `to` exists, creates its
   * parents. A server that will not rejects with FolderCopyRefusedError. See copyFolder.
   */
  copyTree?(from: string, to: string, opts?: RequestOptions): Promise<void>;
  /** removes a folder and all in it in one step (a local disk: symlinks and read-only folders too); absent is not an error */
  removeTree?(dir: string, opts?: RequestOptions): Promise<void>;
  /** makes every put made with `deferSync` (and every copyTree) durable; call before a commit marker */
  flush?(opts?: RequestOptions): Promise<void>;
}

export function joinPath(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p !== '' && p !== '.')
    .join('/');
}

/** Removes a directory tree through the interface: files first, then folders, deepest first. */
export async function removeTree(backend: Backend, dir: string): Promise<void> {
  if (backend.removeTree) return backend.removeTree(dir);
  for (const entry of await backend.list(dir)) {
    const p = joinPath(dir, entry.name);
    if (entry.isDir) await removeTree(backend, p);
    else await backend.remove(p);
  }
  await backend.remove(dir);
}
