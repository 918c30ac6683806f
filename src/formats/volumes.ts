import fs from 'node:fs';
import path from 'node:path';
import { createHash, type Hash } from 'node:crypto';
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
 * Cuts a byte stream into volume files in a spool folder, by synchronous calls: it runs on
 * the sealing worker thread (openpgp/volume-writer.ts), where blocking is the point.
 * `opening(index)` is called before volume `index` is created and may block until the spool
 * has room; `closed` gets each volume once it is whole.
 */
export class VolumeCutter {
  private index = 0;
  private current: { fd: number; file: string; size: number; hash: Hash } | undefined;

  constructor(
    private readonly spoolDir: string,
    private readonly volumeSize: number,
    private readonly opening: (index: number) => void,
    private readonly closed: (v: SpooledVolume) => void,
  ) {}

  private open(): NonNullable<VolumeCutter['current']> {
    if (this.current) return this.current;
    const index = this.index + 1;
    if (index > MAX_VOLUMES) {
      throw new CerberusError('USAGE', `a generation would need more than ${MAX_VOLUMES} volumes`, {
        hint: 'raise volumeSize in the config',
      });
    }
    this.opening(index);
    this.index = index;
    const file = path.join(this.spoolDir, volumeName(index));
    this.current = { fd: fs.openSync(file, 'w', 0o600), file, size: 0, hash: createHash('sha256') };
    return this.current;
  }

  /** Writes the chunks in order, one writev(2) per volume they touch. */
  write(chunks: Buffer[]): void {
    let batch: Buffer[] = [];
    let batched = 0;
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.length) {
        const cur = this.open();
        const n = Math.min(chunk.length - off, this.volumeSize - cur.size - batched);
        batch.push(off === 0 && n === chunk.length ? chunk : chunk.subarray(off, off + n));
        batched += n;
        off += n;
        if (cur.size + batched >= this.volumeSize) {
          flush(cur, batch);
          batch = [];
          batched = 0;
          this.close();
        }
      }
    }
    if (batch.length > 0) flush(this.open(), batch);
  }

  /** Closes the last volume, if any bytes went into it. */
  end(): void {
    this.close();
  }

  /** Closes the open file without handing it on (the caller removes the spool). */
  abort(): void {
    const cur = this.current;
    this.current = undefined;
    if (cur) fs.closeSync(cur.fd);
  }

  private close(): void {
    const cur = this.current;
    if (!cur) return;
    this.current = undefined;
    fs.closeSync(cur.fd);
    this.closed({ index: this.index, name: volumeName(this.index), file: cur.file, size: cur.size, sha256: cur.hash.digest('hex') });
  }
}

/** writev(2) until every byte is written (it may take less than it was given), hashing them. */
function flush(cur: { fd: number; size: number; hash: Hash }, buffers: Buffer[]): void {
  let rest = buffers.filter((b) => b.length > 0);
  for (const b of rest) {
    cur.hash.update(b);
    cur.size += b.length;
  }
  while (rest.length > 0) {
    let n = fs.writevSync(cur.fd, rest);
    while (rest.length > 0 && n >= rest[0]!.length) n -= rest.shift()!.length;
    if (n > 0) rest[0] = rest[0]!.subarray(n);
  }
}
