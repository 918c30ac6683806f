import { Worker } from 'node:worker_threads';
import type { SpooledVolume } from '../volumes.js';
import { deserializeError, Outbox, workerModule, type SerializedError } from './workers.js';

/** What the sealing worker is started with (structured-cloned; the key never leaves the process). */
export interface WriterSetup {
  spoolDir: string;
  volumeSize: number;
  preamble: Uint8Array;
  sessionKey: Uint8Array;
  compression: 'none' | 'zlib';
  /** Int32Array over it, indexed by CONTROL */
  control: SharedArrayBuffer;
}

/** Slots of the shared control array. */
export const CONTROL = { released: 0, stop: 1 } as const;

export type ToWriter = { type: 'data'; buf: ArrayBuffer; length: number } | { type: 'end' } | { type: 'abort' };

export type FromWriter =
  | { type: 'free'; buf: ArrayBuffer }
  | { type: 'volume'; volume: SpooledVolume }
  | { type: 'done' }
  | { type: 'error'; error: SerializedError };

/** Plaintext goes to the worker in buffers of 1 MiB, at most this many at once. */
const POOL = 4;

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
  private readonly outbox: Outbox;
  private failure: Error | undefined;
  private wake: Array<() => void> = [];
  private uploading: Promise<void> = Promise.resolve();
  private finished = false;
  private readonly exited: Promise<void>;

  constructor(private readonly opts: VolumeWriterOptions) {
    const setup: WriterSetup = {
      spoolDir: opts.spoolDir,
      volumeSize: opts.volumeSize,
      preamble: opts.preamble,
      sessionKey: opts.sessionKey,
      compression: opts.compression,
      control: this.control.buffer as SharedArrayBuffer,
    };
    this.worker = new Worker(workerModule('volume-writer.worker'), { workerData: setup });
    this.exited = new Promise((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.on('message', (m: FromWriter) => this.received(m));
    this.worker.on('error', (err) => this.fail(err));
    this.worker.once('exit', () => {
      if (!this.finished) this.fail(new Error('the encryption thread stopped before the end of the data'));
    });
    this.outbox = new Outbox((buf, length) => this.send({ type: 'data', buf, length }, [buf]), 1 << 20, POOL);
  }

  private received(m: FromWriter): void {
    switch (m.type) {
      case 'free':
        this.outbox.returned(m.buf);
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
    this.wakeAll();
  }

  private wakeAll(): void {
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
    this.wakeAll();
  }

  private send(m: ToWriter, transfer: ArrayBuffer[] = []): void {
    this.worker.postMessage(m, transfer);
  }

  /** Takes a copy of `chunk`: the caller may reuse it on return. */
  write(chunk: Uint8Array): void {
    this.outbox.write(chunk);
  }

  private async until(done: () => boolean): Promise<void> {
    while (!done() && !this.failure) await new Promise<void>((resolve) => this.wake.push(resolve));
    if (this.failure) throw this.failure;
  }

  /** Resolves once the worker can take more; rejects when writing or an upload failed. */
  async ready(): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.outbox.full) await this.until(() => !this.outbox.full);
  }

  /** Ends the message; resolves with every volume once the last has been handed on. */
  async end(): Promise<SpooledVolume[]> {
    this.outbox.flush();
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
