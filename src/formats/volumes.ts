import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import { CerberusError } from '../errors.js';

/** `data.tar.gpg.0001` …; four digits keep `cat data.tar.gpg.*` in order. */
export const MAX_VOLUMES = 9999;
export const volumeName = (index: number): string => `data.tar.gpg.${String(index).padStart(4, '0')}`;
export const VOLUME_PATTERN = /^data\.tar\.gpg\.(\d{4})$/;

export interface SpooledVolume {
  index: number;
  name: string;
  file: string;
  size: number;
  sha256: string;
}

/**
 * Cuts a byte stream into volume files in a spool folder. Each full volume is handed to
 * `onVolume` (which uploads it) while the next one is written, one upload at a time: at most
 * two volumes sit on disk, and encryption does not wait for each upload.
 */
export class VolumeSink extends Writable {
  private index = 0;
  private current: { handle: fsp.FileHandle; file: string; size: number; hash: Hash } | undefined;
  readonly volumes: SpooledVolume[] = [];
  private uploading: Promise<void> = Promise.resolve();
  private failed: unknown;

  constructor(
    private readonly spoolDir: string,
    private readonly volumeSize: number,
    private readonly onVolume: (v: SpooledVolume) => Promise<void>,
  ) {
    super({ highWaterMark: 1 << 20 });
  }

  private async open(): Promise<NonNullable<VolumeSink['current']>> {
    if (this.current) return this.current;
    this.index += 1;
    if (this.index > MAX_VOLUMES) {
      throw new CerberusError('USAGE', `a generation would need more than ${MAX_VOLUMES} volumes`, {
        hint: 'raise volumeSize in the config',
      });
    }
    const file = path.join(this.spoolDir, volumeName(this.index));
    this.current = { handle: await fsp.open(file, 'w'), file, size: 0, hash: createHash('sha256') };
    return this.current;
  }

  private async closeCurrent(): Promise<void> {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    await cur.handle.close();
    const v: SpooledVolume = {
      index: this.index,
      name: volumeName(this.index),
      file: cur.file,
      size: cur.size,
      sha256: cur.hash.digest('hex'),
    };
    await this.uploading;
    this.volumes.push(v);
    this.uploading = this.onVolume(v);
    this.uploading.catch((err: unknown) => (this.failed ??= err));
  }

  /** Writes chunks in order, several per system call: the encryption hands over small length headers between its pieces. */
  private async writeChunks(chunks: Buffer[]): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    let batch: Buffer[] = [];
    let batched = 0;
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) {
        const cur = await this.open();
        const n = Math.min(chunk.length - off, this.volumeSize - cur.size - batched);
        batch.push(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
        batched += n;
        off += n;
        if (cur.size + batched >= this.volumeSize) {
          await this.flushBatch(cur, batch);
          batch = [];
          batched = 0;
          await this.closeCurrent();
        }
      }
    }
    if (batch.length > 0) await this.flushBatch(await this.open(), batch);
  }

  private async flushBatch(cur: NonNullable<VolumeSink['current']>, batch: Buffer[]): Promise<void> {
    await writeAll(cur.handle, batch);
    for (const b of batch) {
      cur.hash.update(b);
      cur.size += b.length;
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunks([chunk]).then(() => cb(), cb);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, cb: (err?: Error | null) => void): void {
    this.writeChunks(chunks.map((c) => c.chunk)).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.closeCurrent()
      .then(() => this.uploading)
      .then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const handle = this.current?.handle;
    this.current = undefined;
    // an upload still running must end before the caller cleans up after it
    Promise.allSettled([handle?.close(), this.uploading]).then(
      () => cb(err),
      () => cb(err),
    );
  }
}

/** writev(2) until every byte is written: it may take less than it was given. */
async function writeAll(handle: fsp.FileHandle, buffers: Buffer[]): Promise<void> {
  let rest = buffers.filter((b) => b.length > 0);
  while (rest.length > 0) {
    let n = (await handle.writev(rest)).bytesWritten;
    while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}
