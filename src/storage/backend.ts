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

/** A source for `put` that can be read again from the start, so a failed upload can be retried. */
export type BodySource = () => Readable;

export interface ByteRange {
  start: number;
  /** inclusive */
  end?: number;
}

/**
 * The few verbs every storage backend implements. Paths are '/'-separated and relative to
 * the backend's root. Retry, limits and logging are wrappers around this, not part of it.
 */
export interface Backend {
  readonly description: string;
  readonly capabilities: Capabilities;
  put(path: string, body: BodySource, size: number): Promise<void>;
  get(path: string, range?: ByteRange): Promise<Readable>;
  /** undefined when nothing is there */
  stat(path: string): Promise<ObjectInfo | undefined>;
  /** direct children; an absent directory lists as empty */
  list(dir: string): Promise<ObjectInfo[]>;
  /** removes a file, or an empty directory; absent is not an error */
  remove(path: string): Promise<void>;
  mkdir(path: string): Promise<void>;
  move?(from: string, to: string): Promise<void>;
  copy?(from: string, to: string): Promise<void>;
}

export function joinPath(...parts: string[]): string {
  return parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p !== '' && p !== '.')
    .join('/');
}

/** Removes a directory tree through the interface: files first, then folders, deepest first. */
export async function removeTree(backend: Backend, dir: string): Promise<void> {
  for (const entry of await backend.list(dir)) {
    const p = joinPath(dir, entry.name);
    if (entry.isDir) await removeTree(backend, p);
    else await backend.remove(p);
  }
  await backend.remove(dir);
}
