import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CerberusError, type ErrorCode } from '../../errors.js';

/**
 * Worker-thread plumbing (used by volume-writer.ts): where a worker's code is, how errors and
 * buffers cross to and from it (its garbage: see heap.ts).
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
