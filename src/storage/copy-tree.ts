import { CerberusError } from '../errors.js';
import { joinPath, removeTree, type Backend, type RequestOptions } from './backend.js';
import { FolderCopyRefusedError, StorageError } from './errors.js';
import { isRetryable } from './retry.js';

export interface CopyFolderOptions {
  /** file copies in flight at once when copying file by file; 8 when unset */
  parallel?: number;
  /** after each file copied file by file, with the count so far; a one-step copy reports nothing */
  onFile?: (n: number) => void;
  signal?: AbortSignal;
}

/**
 * Copies the folder `from` to `to`, which must not exist, without the bytes passing through
 * here: in one server-side step where the backend can (copyTree), else file by file (copy).
 * A one-step copy the server refuses, or that fails on the way, is cleaned up and done file
 * by file. Says which way it went. After a failure `to` may hold part of the copy.
 */
export async function copyFolder(backend: Backend, from: string, to: string, opts: CopyFolderOptions = {}): Promise<'tree' | 'files'> {
  const src = joinPath(from);
  const dst = joinPath(to);
  const what = `${backend.description}: copy ${src || '/'} to ${dst || '/'}`;
  if (!backend.copyTree && !backend.copy) {
    // callers check capabilities.serverSideCopy first; this is the backstop
    throw new StorageError(`${what}: this backend has no server-side copy`, { retryable: false });
  }
  if (src === '' || dst === src || dst.startsWith(`${src}/`)) throw new CerberusError('INTERNAL', `${what}: a folder cannot be copied into itself`);
  const ro: RequestOptions = opts.signal ? { signal: opts.signal } : {};

  const source = await backend.stat(src, ro);
  if (!source?.isDir) {
    throw new StorageError(`${what}: ${src} ${source ? 'is not a folder' : 'not found'}`, { retryable: false, notFound: !source });
  }
  // checked here and not left to the backend: the fallback below must never remove what was there before
  if (await backend.stat(dst, ro)) throw new StorageError(`${what}: ${dst} exists`, { retryable: false });

  if (backend.copyTree) {
    try {
      await backend.copyTree(src, dst, ro);
      return 'tree';
    } catch (err) {
      // anything else (gone, exists, no space, no access) would fail file by file too
      const fallBack = backend.copy && !opts.signal?.aborted && (err instanceof FolderCopyRefusedError || isRetryable(err));
      if (!fallBack) throw err;
      try {
        await removeTree(backend, dst);
      } catch (cleanup) {
        throw new StorageError(`${what}: the one-step copy failed (${messageOf(err)}), and its partial result could not be removed: ${messageOf(cleanup)}`, {
          retryable: false,
          cause: err,
        });
      }
    }
  }
  await copyFiles(backend, src, dst, Math.max(1, Math.floor(opts.parallel ?? 8)), opts.onFile, ro);
  return 'files';
}

/** Depth-first, one folder's listing at a time, up to `parallel` copies in flight. */
async function copyFiles(
  backend: Backend,
  src: string,
  dst: string,
  parallel: number,
  onFile: ((n: number) => void) | undefined,
  ro: RequestOptions,
): Promise<void> {
  const copy = backend.copy!.bind(backend);
  const running = new Set<Promise<void>>();
  let failure: { err: unknown } | undefined;
  let copied = 0;
  const start = async (from: string, to: string) => {
    while (running.size >= parallel) await Promise.race(running);
    if (failure) return;
    const p: Promise<void> = copy(from, to, ro)
      .then(
        () => onFile?.(++copied),
        (err: unknown) => void (failure ??= { err }),
      )
      .finally(() => running.delete(p));
    running.add(p);
  };

  try {
    // S3 has no folders and makes nothing here; the others need them, empty ones too
    await backend.mkdir(dst, ro);
    const pending = [''];
    for (let rel = pending.pop(); rel !== undefined && !failure; rel = pending.pop()) {
      for (const e of await backend.list(joinPath(src, rel), ro)) {
        if (failure) break;
        const child = joinPath(rel, e.name);
        if (e.isDir) {
          await backend.mkdir(joinPath(dst, child), ro);
          pending.push(child);
        } else {
          await start(joinPath(src, child), joinPath(dst, child));
        }
      }
    }
  } finally {
    // never return with copies still writing into `to`
    await Promise.all(running);
  }
  if (failure) throw failure.err;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
