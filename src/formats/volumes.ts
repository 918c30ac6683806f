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
 * `onVolume` (which uploads it) before more is accepted, so at most one volume sits on disk.
 */
export class VolumeSink extends Writable {
  private index = 0;
  private current: { handle: fsp.FileHandle; file: string; size: number; hash: Hash } | undefined;
  readonly volumes: SpooledVolume[] = [];

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
    this.volumes.push(v);
    await this.onVolume(v);
  }

  private async writeChunk(chunk: Buffer): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const cur = await this.open();
      const n = Math.min(chunk.length - off, this.volumeSize - cur.size);
      const part = chunk.subarray(off, off + n);
      await writeAll(cur.handle, part);
      cur.hash.update(part);
      cur.size += n;
      off += n;
      if (cur.size >= this.volumeSize) await this.closeCurrent();
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.writeChunk(chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.closeCurrent().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const handle = this.current?.handle;
    this.current = undefined;
    (handle ? handle.close() : Promise.resolve()).then(
      () => cb(err),
      () => cb(err),
    );
  }
}

async function writeAll(handle: fsp.FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await handle.write(buf, off, buf.length - off)).bytesWritten;
}
