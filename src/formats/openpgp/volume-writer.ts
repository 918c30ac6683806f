import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import type { SpooledVolume } from '../volumes.js';
import { CONTROL, deserializeError, type FromWorker, type ToWorker, type WorkerSetup } from './volume-writer-protocol.js';

/** Plaintext goes to the worker in buffers of this size, at most POOL of them at once. */
const CHUNK = 1 << 20;
const POOL = 4;

/**
 * The worker's module. Under vitest this file runs as TypeScript, which a worker thread
 * cannot load, so the built copy is used (`npm test` builds first).
 */
function workerModule(): URL {
  const here = fileURLToPath(import.meta.url);
  if (!here.endsWith('.ts')) return new URL('./volume-writer.worker.js', import.meta.url);
  const root = path.resolve(path.dirname(here), '../../..');
  return new URL(`file://${path.join(root, 'dist', path.relative(path.join(root, 'src'), path.dirname(here)), 'volume-writer.worker.js')}`);
}

export interface VolumeWriterOptions {
  spoolDir: string;
  volumeSize: number;
  /** session-key packets, written first */
  preamble: Uint8Array;
  sessionKey: Uint8Array;
  compression: 'none' | 'zlib';
  /** takes a whole volume (uploads and removes it); one at a time, in order */
  onVolume: (v: SpooledVolume) => Promise<void>;
}

/**
 * One encrypted message, cut into volumes in the spool, sealed on a worker thread (see
 * volume-writer.worker.ts). write() copies into one of a few 1 MiB buffers that travel to
 * the worker and back, so the caller may reuse its own; ready() waits while all are away.
 * Each volume goes to `onVolume` while the next is written; the worker waits before a third
 * would sit in the spool.
 */
export class VolumeWriter {
  readonly volumes: SpooledVolume[] = [];
  private readonly worker: Worker;
  private readonly control = new Int32Array(new SharedArrayBuffer(8));
  private readonly free: ArrayBuffer[] = [];
  private away = 0;
  private cur: Buffer;
  private filled = 0;
  private failure: Error | undefined;
  private wake: Array<() => void> = [];
  private uploading: Promise<void> = Promise.resolve();
  private finished = false;
  private readonly exited: Promise<void>;

  constructor(private readonly opts: VolumeWriterOptions) {
    const setup: WorkerSetup = {
      spoolDir: opts.spoolDir,
      volumeSize: opts.volumeSize,
      preamble: opts.preamble,
      sessionKey: opts.sessionKey,
      compression: opts.compression,
      control: this.control.buffer as SharedArrayBuffer,
    };
    this.worker = new Worker(workerModule(), { workerData: setup });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (m: FromWorker) => this.received(m));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.once('exit', () => {
      if (!this.finished) this.fail(new Error('the encryption thread stopped before the end of the data'));
    });
    this.cur = this.take();
  }

  private received(m: FromWorker): void {
    switch (m.type) {
      case 'free':
        this.away--;
        this.free.push(m.buf);
        break;
      case 'volume': {
        const v = m.volume;
        this.volumes.push(v);
        this.uploading = this.uploading.then(async () => {
          if (this.failure) return;
          await this.opts.onVolume(v);
          Atomics.add(this.control, CONTROL.released, 1);
          Atomics.notify(this.control, CONTROL.released);
        });
        this.uploading.catch((err: unknown) => this.fail(err instanceof Error ? err : new Error(String(err))));
        break;
      }
      case 'done':
        this.finished = true;
        break;
      case 'error':
        this.fail(deserializeError(m.error));
        break;
    }
    const waiting = this.wake;
    this.wake = [];
    for (const w of waiting) w();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    // a worker waiting for spool room wakes up and stops
    Atomics.store(this.control, CONTROL.stop, 1);
    Atomics.store(this.control, CONTROL.released, 1 << 30);
    Atomics.notify(this.control, CONTROL.released);
    const waiting = this.wake;
    this.wake = [];
    for (const w of waiting) w();
  }

  private take(): Buffer {
    return Buffer.from(this.free.pop() ?? new ArrayBuffer(CHUNK));
  }

  private send(m: ToWorker, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  private sendCurrent(): void {
    if (this.filled === 0) return;
    const buf = this.cur.buffer as ArrayBuffer;
    this.away++;
    this.send({ type: 'data', buf, length: this.filled }, [buf]);
    this.cur = this.take();
    this.filled = 0;
  }

  /** Takes a copy of `chunk`: the caller may reuse it on return. */
  write(chunk: Uint8Array): void {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(CHUNK - this.filled, chunk.length - off);
      this.cur.set(chunk.subarray(off, off + n), this.filled);
      this.filled += n;
      off += n;
      if (this.filled === CHUNK) this.sendCurrent();
    }
  }

  private async until(done: () => boolean): Promise<void> {
    while (!done() && !this.failure) await new Promise<void>((resolve) => this.wake.push(resolve));
    if (this.failure) throw this.failure;
  }

  /** Resolves once the worker can take more; rejects when writing or an upload failed. */
  async ready(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.away >= POOL) await this.until(() => this.away < POOL);
  }

  /** Ends the message; resolves with every volume once the last has been handed on. */
  async end(): Promise<SpooledVolume[]> {
    this.sendCurrent();
    this.send({ type: 'end' });
    await this.until(() => this.finished);
    await this.uploading;
    if (this.failure) throw this.failure;
    await this.worker.terminate();
    return this.volumes;
  }

  /** Stops the worker (its open volume closed) and waits for an upload in flight. */
  async abort(): Promise<void> {
    this.fail(new Error('aborted'));
    this.send({ type: 'abort' });
    await this.exited;
    await this.uploading.catch(() => undefined);
  }
}
