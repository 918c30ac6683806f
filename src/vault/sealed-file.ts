import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SEAL_BUFFER, SEAL_PIECE, type Digests, type FileSealer } from '../formats/cryptomator/index.js';

/**
 * A file's Cryptomator ciphertext as a stream of exactly the size the file had when it was
 * listed: read in SEAL_PIECE pieces, each into a buffer of its own that is then sealed in place. A file that shrank meanwhile is padded with zeros and one that grew is
 * cut (as ExactLength does for archives); `outcome.sourceBytes` tells the caller it moved.
 */
export interface SealedFile {
  body: Readable;
  outcome: {
    /** bytes the file really gave, one past `size` when it grew */
    sourceBytes: number;
    /** set once the last piece is sealed */
    digests?: Digests;
  };
}

export function sealedFile(abs: string, size: number, sealer: FileSealer, onRead: (bytes: number) => void): SealedFile {
  const outcome: SealedFile['outcome'] = { sourceBytes: 0 };
  async function* pieces(): AsyncGenerator<Buffer> {
    const fh = await fsp.open(abs, 'r');
    try {
      let done = 0;
      do {
        const want = Math.min(SEAL_PIECE, size - done);
        const buf = Buffer.allocUnsafeSlow(SEAL_BUFFER);
        const got = await readFull(fh, buf, want);
        outcome.sourceBytes += got;
        onRead(got);
        if (got < want) buf.fill(0, got, want);
        done += want;
        const end = done === size;
        // one byte more, to see a file that grew
        if (end) outcome.sourceBytes += await readFull(fh, Buffer.allocUnsafe(1), 1);
        const r = sealer.seal(buf, want, end);
        if (r.digests) outcome.digests = r.digests;
        if (r.ct.length > 0) yield r.ct;
      } while (done < size);
    } finally {
      await fh.close();
    }
  }
  // byte mode with the smallest mark: one piece waits for the consumer while the next is read
  return { body: Readable.from(pieces(), { objectMode: false, highWaterMark: 1 }), outcome };
}

/** Reads up to `n` bytes into the start of `buf`; fewer only at the end of the file. */
async function readFull(fh: fsp.FileHandle, buf: Buffer, n: number): Promise<number> {
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, null);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got;
}
