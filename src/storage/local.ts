import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { makeDirs } from '../fsutil.js';
import { randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Readable } from 'node:stream';
import { CerberusError, ioError } from '../errors.js';
import { StorageError } from './errors.js';
import type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo, RequestOptions } from './backend.js';

const TMP_PREFIX = '.tmp-';
/** Deferred puts up to this size are written by synchronous calls: see putSmall. */
const SMALL_PUT = 256 * 1024;
/** deferred bytes between background syncs (see LocalBackend.deferred) */
const WRITE_BEHIND = 64 * 1024 * 1024;
const execFileP = promisify(execFile);

/** For tests: how the file system is synced, and how often in the background. */
export interface LocalBackendInternals {
  syncFileSystem?: (dir: string) => Promise<void>;
  writeBehindBytes?: number;
}

/**
 * A folder on a local or mounted disk: temp file + fsync + rename, copy by hard link. Small
 * puts made with deferSync skip the fsyncs and are made durable together by `flush`.
 */
export class LocalBackend implements Backend {
  readonly capabilities: Capabilities = {
    atomicPut: true,
    move: true,
    serverSideCopy: true,
    hardLink: true,
    maxObjectSize: Number.MAX_SAFE_INTEGER,
  };
  readonly description: string;

  constructor(
    readonly root: string,
    private readonly internals: LocalBackendInternals = {},
  ) {
    this.description = `local:${root}`;
  }

  private syncFs(): Promise<void> {
    return (this.internals.syncFileSystem ?? syncFileSystem)(this.root);
  }

  private abs(p: string): string {
    const parts = p.split('/').filter((s) => s !== '' && s !== '.');
    if (parts.includes('..')) throw new CerberusError('INTERNAL', `refusing storage path with '..': ${p}`);
    return path.join(this.root, ...parts);
  }

  /** whether `sync -f` works here: the one way from Node to syncfs(2), which flush needs */
  private flushable: Promise<boolean> | undefined;
  /** puts (or tree copies) made since the last flush that may not be on the disk yet */
  private unflushed = false;
  /** deferred bytes since the last write-behind started */
  private behindBytes = 0;
  private writeBehind: Promise<void> | undefined;
  /** a write-behind that failed: the kernel tells one syncfs, so flush must not forget it */
  private writeBehindFailure: unknown;

  private canDefer(): Promise<boolean> {
    this.flushable ??= this.syncFs().then(
      () => true,
      () => false,
    );
    return this.flushable;
  }

  async put(p: string, body: BodySource, size: number, opts: RequestOptions = {}): Promise<void> {
    // A large object syncs itself all the same: that costs little next to its bytes, and keeps
    // gigabytes of dirty pages from piling up for the flush. Without `sync -f`, everything does.
    if (opts.deferSync === true && size <= SMALL_PUT && (await this.canDefer())) {
      this.deferred(size);
      return this.putSmall(p, body, size, opts.unpublished === true);
    }
    const dest = this.abs(p);
    const tmp = opts.unpublished === true ? dest : tmpPath(dest);
    try {
      const makeFolder = () => makeDirs(path.dirname(dest));
      // a spooled volume on this file system: linked, so its bytes are written to the disk once
      const linked = body.file !== undefined && opts.handOver === true && (await linkNew(body.file, tmp, makeFolder));
      let fh = linked ? await fsp.open(tmp, 'r+') : await openNew(tmp, (f) => fsp.open(f, 'wx'), makeFolder);
      try {
        if (linked) {
          // complete already: its size and fsync below, as for a copy (which keeps its mode too)
        } else if (body.file !== undefined) {
          // copy_file_range(2): the bytes never pass through this process
          await fh.close();
          await fsp.copyFile(body.file, tmp);
          fh = await fsp.open(tmp, 'r+');
        } else {
          const source = body();
          try {
            for await (const chunk of source) {
              const buf = chunk as Buffer;
              // write(2) may take less than it was given
              for (let off = 0; off < buf.length; ) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
            }
          } finally {
            source.destroy();
          }
        }
        const st = await fh.stat();
        if (st.size !== size) throw this.wrongSize(p, st.size, size);
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (tmp !== dest) await fsp.rename(tmp, dest);
      await syncDir(path.dirname(dest));
    } catch (err) {
      await fsp.rm(tmp, { force: true }).catch(() => undefined);
      if (err instanceof CerberusError) throw err;
      throw ioError(err, `${this.description}: cannot write ${p}`);
    }
  }

  /**
   * A small deferred put by synchronous calls: open, write, close and rename are four
   * thread-pool round trips of about 100 µs each for a few KiB of work, and a vault of many
   * small files spent most of its time in them (bench/vault.sh).
   */
  private async putSmall(p: string, body: BodySource, size: number, inPlace: boolean): Promise<void> {
    const dest = this.abs(p);
    const tmp = inPlace ? dest : tmpPath(dest);
    try {
      const data = await gather(body(), size);
      if (data.length !== size) throw this.wrongSize(p, data.length, size);
      const fd = await openNew(tmp, (f) => fs.openSync(f, 'wx'), () => makeDirs(path.dirname(dest)));
      try {
        for (let off = 0; off < data.length; ) off += fs.writeSync(fd, data, off, data.length - off);
      } finally {
        fs.closeSync(fd);
      }
      if (!inPlace) fs.renameSync(tmp, dest);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      if (err instanceof CerberusError) throw err;
      throw ioError(err, `${this.description}: cannot write ${p}`);
    }
  }

  private wrongSize(p: string, got: number, size: number): CerberusError {
    return new CerberusError('STORAGE', `${this.description}: wrote ${got} bytes of ${p}, expected ${size}`);
  }

  /**
   * Deferred bytes are written out in the background every WRITE_BEHIND bytes, so the disk
   * works while the next files are encrypted, and the flush at the end waits only for the tail.
   */
  private deferred(size: number): void {
    this.unflushed = true;
    this.behindBytes += size;
    if (this.behindBytes < (this.internals.writeBehindBytes ?? WRITE_BEHIND) || this.writeBehind) return;
    this.behindBytes = 0;
    this.writeBehind = this.syncFs()
      .catch((err: unknown) => {
        this.writeBehindFailure ??= err;
      })
      .finally(() => {
        this.writeBehind = undefined;
      });
  }

  /** One syncfs for the whole file system: every deferred put and tree copy is then on the disk. */
  async flush(): Promise<void> {
    if (!this.unflushed || !(await this.canDefer())) return;
    try {
      await this.writeBehind;
      if (this.writeBehindFailure !== undefined) throw this.writeBehindFailure;
      await this.syncFs();
    } catch (err) {
      // the kernel reports a failed write-back once: a second try would wrongly succeed
      throw new StorageError(`${this.description}: cannot write the new files out to the disk: ${(err as Error).message.split('\n')[0]}`, {
        retryable: false,
        hint: 'check the disk (dmesg, free space), then run again; this run commits nothing',
        cause: err,
      });
    }
    this.unflushed = false;
  }

  async get(p: string, range?: ByteRange): Promise<Readable> {
    const file = this.abs(p);
    // open first, so a missing file fails here rather than mid-stream
    const fh = await fsp.open(file, 'r').catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new StorageError(`${this.description}: ${p} not found`, { retryable: false, notFound: true, cause: err });
      }
      throw ioError(err, `${this.description}: cannot read ${p}`);
    });
    // Reads of up to 1 MiB: a restore reads volumes of hundreds of MiB, and each read is a
    // thread-pool round trip. Each read allocates its whole buffer outside the heap, so a small
    // file gets one read of its own size and no read at the end: a vault restore's 40,000 small
    // objects had allocated 2 MiB each, and V8 ran a full collection every 64 MB of them.
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? Infinity, fs.fstatSync(fh.fd).size - 1);
    if (end < start) {
      await fh.close();
      return Readable.from([]);
    }
    return fh.createReadStream({ highWaterMark: Math.min(1 << 20, end - start + 1), start, end });
  }

  async stat(p: string): Promise<ObjectInfo | undefined> {
    try {
      const st = await fsp.stat(this.abs(p));
      return { name: path.basename(p), size: st.size, isDir: st.isDirectory() };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw ioError(err, `${this.description}: cannot stat ${p}`);
    }
  }

  async list(dir: string): Promise<ObjectInfo[]> {
    const abs = this.abs(dir);
    let entries: fs.Dirent[];
    try {
      entries = await fsp.readdir(abs, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw ioError(err, `${this.description}: cannot list ${dir}`);
    }
    const out: ObjectInfo[] = [];
    for (const e of entries) {
      if (e.name.startsWith(TMP_PREFIX)) continue; // a put in flight, or one a crash cut short
      if (e.isDirectory()) out.push({ name: e.name, size: 0, isDir: true });
      else if (e.isFile()) {
        // synchronous: a vault folder holds thousands of files, and through the thread pool
        // each stat costs several times what the call itself does
        let size: number | undefined;
        try {
          size = fs.statSync(path.join(abs, e.name)).size;
        } catch {
          // gone since readdir, as a put's temporary file renamed away
        }
        if (size !== undefined) out.push({ name: e.name, size, isDir: false });
      }
    }
    return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async remove(p: string): Promise<void> {
    const abs = this.abs(p);
    try {
      const st = await fsp.lstat(abs);
      if (st.isDirectory()) {
        for (const n of await fsp.readdir(abs)) if (n.startsWith(TMP_PREFIX)) await fsp.rm(path.join(abs, n), { force: true });
        await fsp.rmdir(abs);
      }
      else await fsp.unlink(abs);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw ioError(err, `${this.description}: cannot remove ${p}`);
    }
  }

  async removeTree(dir: string): Promise<void> {
    const abs = this.abs(dir);
    if (abs === this.root) throw new CerberusError('INTERNAL', 'refusing to remove the whole repository');
    try {
      await fsp.rm(abs, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EACCES') throw ioError(err, `${this.description}: cannot remove ${dir}`);
      // a plain stage keeps the source's read-only folders; their owner may open them again
      await makeWritable(abs);
      await fsp.rm(abs, { recursive: true, force: true }).catch((e: unknown) => {
        throw ioError(e, `${this.description}: cannot remove ${dir}`);
      });
    }
  }

  async mkdir(p: string): Promise<void> {
    await makeDirs(this.abs(p)).catch((err: unknown) => {
      throw ioError(err, `${this.description}: cannot create ${p}`);
    });
  }

  async move(from: string, to: string): Promise<void> {
    const dest = this.abs(to);
    try {
      await makeDirs(path.dirname(dest));
      if (await fsp.lstat(dest).then(() => true, () => false)) {
        throw Object.assign(new Error(`${to} exists`), { code: 'EEXIST' });
      }
      await fsp.rename(this.abs(from), dest);
      await syncDir(path.dirname(dest));
    } catch (err) {
      throw ioError(err, `${this.description}: cannot move ${from} to ${to}`);
    }
  }

  async copy(from: string, to: string): Promise<void> {
    const dest = this.abs(to);
    try {
      await makeDirs(path.dirname(dest));
      await fsp.link(this.abs(from), dest);
    } catch (err) {
      throw ioError(err, `${this.description}: cannot copy ${from} to ${to}`);
    }
  }

  /**
   * The folders made anew, every file hard-linked: instant, and no extra space. Safe because a
   * put replaces a file by rename and never writes into it, so the copies stay apart.
   */
  async copyTree(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    const src = this.abs(from);
    const dest = this.abs(to);
    const what = `${this.description}: cannot copy ${from} to ${to}`;
    const st = await fsp.lstat(src).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new StorageError(`${this.description}: copy ${from} to ${to}: ${from} not found`, { retryable: false, notFound: true, cause: err });
      }
      throw ioError(err, what);
    });
    if (!st.isDirectory()) throw new StorageError(`${this.description}: copy ${from} to ${to}: ${from} is not a folder`, { retryable: false });
    if (dest === src || dest.startsWith(src + path.sep)) {
      throw new CerberusError('INTERNAL', `${this.description}: cannot copy ${from} into itself (${to})`);
    }
    this.unflushed = true; // links and folders are made without a sync each
    try {
      await makeDirs(path.dirname(dest));
      // not makeDirs: an existing `to` must fail, and `to` is then ours to clean up
      await fsp.mkdir(dest);
    } catch (err) {
      throw ioError(err, what);
    }
    try {
      // Folders still to copy; one open directory at a time, however large the tree. Each
      // folder is copied with synchronous calls, and the event loop gets its turn between
      // folders: a vault of 45,000 files took 3.2 s by the thread pool and 1.2 s so (cp -al: 1.0 s).
      const pending = [''];
      for (let rel = pending.pop(); rel !== undefined; rel = pending.pop()) {
        await nextTurn();
        opts.signal?.throwIfAborted();
        const folder = fs.opendirSync(path.join(src, rel));
        try {
          for (let e = folder.readSync(); e !== null; e = folder.readSync()) {
            if (e.name.startsWith(TMP_PREFIX)) continue; // a put in flight: not part of the folder yet
            const child = path.join(rel, e.name);
            if (e.isDirectory()) {
              fs.mkdirSync(path.join(dest, child));
              pending.push(child);
            } else if (e.isFile()) {
              fs.linkSync(path.join(src, child), path.join(dest, child));
            } else {
              // a link would share the target between both copies, or point outside the repository
              throw new StorageError(`${this.description}: copy ${from} to ${to}: ${path.join(from, child)} is ${e.isSymbolicLink() ? 'a symbolic link' : 'not a file or folder'}`, {
                retryable: false,
                hint: 'a repository holds only files and folders; remove it',
              });
            }
          }
        } finally {
          folder.closeSync();
        }
      }
    } catch (err) {
      await fsp.rm(dest, { recursive: true, force: true }).catch(() => undefined);
      if (err instanceof CerberusError || opts.signal?.aborted) throw err;
      throw ioError(err, what);
    }
  }
}

/**
 * Opens a new file by `open` (exclusive create). The folder usually exists (a vault puts
 * thousands of files into a few folders): it is made only when the open says it is missing.
 * A file already there is unlinked first, never written into: in an unpublished folder it may
 * be a hard link to a committed generation's copy (a temp name is new anyway).
 */
async function openNew<T>(file: string, open: (f: string) => T | Promise<T>, makeFolder: () => Promise<void>): Promise<T> {
  try {
    return await open(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') await makeFolder();
    else if (code === 'EEXIST') fs.unlinkSync(file);
    else throw err;
    return open(file);
  }
}

/**
 * Hard-links `from` as the new name `file`: true when linked, false where the file systems
 * differ or refuse links (EXDEV, EPERM, EMLINK, ENOTSUP), for the caller to copy instead.
 */
async function linkNew(from: string, file: string, makeFolder: () => Promise<void>): Promise<boolean> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fsp.link(from, file);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && attempt === 0) await makeFolder();
      else if (code === 'EEXIST' && attempt === 0) fs.unlinkSync(file);
      else return false;
    }
  }
  return false;
}

function tmpPath(dest: string): string {
  return path.join(path.dirname(dest), `${TMP_PREFIX}${randomBytes(6).toString('hex')}-${path.basename(dest)}`);
}

/** coreutils' (or busybox's) `sync -f`: syncfs(2) on the file system holding `dir`. */
async function makeWritable(dir: string): Promise<void> {
  const st = await fsp.lstat(dir);
  if (!st.isDirectory()) return;
  await fsp.chmod(dir, (st.mode & 0o7777) | 0o700);
  for (const e of await fsp.readdir(dir, { withFileTypes: true })) if (e.isDirectory()) await makeWritable(path.join(dir, e.name));
}

/** syncfs(2) of the file system holding `dir`, through coreutils' `sync -f`. */
export async function syncFileSystem(dir: string): Promise<void> {
  await execFileP('sync', ['-f', dir], { timeout: 60 * 60_000 });
}

/** A body's bytes, reading at most one byte past `size` (enough to see it is too long). */
async function gather(source: Readable, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const chunk of source) {
      chunks.push(chunk as Buffer);
      n += (chunk as Buffer).length;
      if (n > size) break;
    }
  } finally {
    source.destroy();
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, n);
}

async function syncDir(dir: string): Promise<void> {
  const fh = await fsp.open(dir, 'r');
  try {
    await fh.sync();
  } catch {
    // some file systems (and Windows shares) refuse fsync on a directory; the rename still stands
  } finally {
    await fh.close();
  }
}
