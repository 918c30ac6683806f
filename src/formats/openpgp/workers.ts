import v8 from 'node:v8';
import vm from 'node:vm';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CerberusError, type ErrorCode } from '../../errors.js';

/**
 * Worker-thread plumbing (used by volume-writer.ts): where a worker's code is, how errors and
 * buffers cross to and from it, and how it keeps its garbage small.
 */

/**
 * A worker's module, beside this file. Under vitest the sources run as TypeScript, which a
 * worker thread cannot load, so the built copy is used (`npm test` builds first).
 */
export function workerModule(name: string): URL {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return new URL(`./${name}.js`, import.meta.url);
  const root = path.resolve(path.dirname(here), '../../..');
  const dir = path.join(root, 'dist', path.relative(path.join(root, 'src'), path.dirname(here)));
  return new URL(`file://${path.join(dir, `${name}.js`)}`);
}

export interface SerializedError {
  message: string;
  /** a class to make again on the other side */
  kind: 'cerberus' | 'other';
  code?: string;
  hint?: string;
  syscall?: string;
  path?: string;
}

/** Errors cross the thread boundary as plain data; their class, code and hint must survive it. */
export function serializeError(err: unknown): SerializedError {
  if (err instanceof CerberusError) return { kind: 'cerberus', message: err.message, code: err.code, hint: err.hint };
  const e = err as NodeJS.ErrnoException;
  return {
    kind: 'other',
    message: e instanceof Error ? e.message : String(err),
    ...(e?.code ? { code: e.code } : {}),
    ...(e?.syscall ? { syscall: e.syscall } : {}),
    ...(e?.path ? { path: e.path } : {}),
  };
}

export function deserializeError(s: SerializedError): Error {
  if (s.kind === 'cerberus') return new CerberusError(s.code as ErrorCode, s.message, { hint: s.hint });
  return Object.assign(new Error(s.message), { code: s.code, syscall: s.syscall, path: s.path });
}

/**
 * Copies what it is given into a few pooled buffers of `size` bytes and sends each full one
 * away (transferred, so the copy is the only one); `returned` takes them back. The caller
 * waits while `full`.
 */
export class Outbox {
  private readonly free: ArrayBuffer[] = [];
  private away = 0;
  private cur: Buffer;
  private filled = 0;

  constructor(
    private readonly send: (buf: ArrayBuffer, length: number) => void,
    private readonly size = 1 << 20,
    private readonly pool = 4,
  ) {
    this.cur = this.take();
  }

  private take(): Buffer {
    return Buffer.from(this.free.pop() ?? new ArrayBuffer(this.size));
  }

  get full(): boolean {
    return this.away >= this.pool;
  }

  write(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(this.size - this.filled, chunk.length - off);
      this.cur.set(chunk.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === this.size) this.flush();
    }
  }

  /** Sends what the current buffer holds, if anything. */
  flush(): void {
    if (this.filled === 0) return;
    const buf = this.cur.buffer as ArrayBuffer;
    this.away++;
    this.send(buf, this.filled);
    this.cur = this.take();
    this.filled = 0;
  }

  returned(buf: ArrayBuffer): void {
    this.away--;
    this.free.push(buf);
  }
}

/**
 * For a worker thread whose garbage is mostly the cipher's fresh output buffers: V8 would
 * collect only once tens of megabytes of them had piled up, since the thread makes almost no
 * other garbage. One collection every 4 MiB kept the medium backups' peak RSS 10-15 MB lower
 * than one every 16 MiB. A young-generation collection frees those buffers (they die young)
 * in a tenth of a millisecond; a full one, needed now and then for what lived a little
 * longer, took 9 ms here, and at every 4 MiB that was a quarter of the thread's time.
 * `gc` is exposed in a new context only, not globally.
 */
export function collector(every = 4 << 20, fullEvery = 16): (bytes: number) => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('typeof gc === "function" ? gc : () => undefined') as (opts?: { type: 'minor' | 'major' }) => void;
  let since = 0;
  let count = 0;
  return (bytes) => {
    if ((since += bytes) < every) return;
    since = 0;
    gc({ type: ++count % fullEvery === 0 ? 'major' : 'minor' });
  };
}
