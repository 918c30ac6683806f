import { createHash, type Hash } from 'node:crypto';
import { CLEARTEXT_CHUNK_SIZE, ciphertextSize, ContentSealer, encryptBuffer } from './content.js';
import type { CryptomatorKeys } from './masterkey.js';
import type { CipherCombo } from './vault-config.js';

/** Cleartext bytes of one piece of a streamed file: what a caller reads at a time. */
export const SEAL_PIECE = 256 * 1024;
/** The buffer a piece needs: room for its ciphertext, and for a partial chunk left from the last piece. */
export const SEAL_BUFFER = Math.max(...(['SIV_GCM', 'SIV_CTRMAC'] as const).map((c) => ciphertextSize(c, SEAL_PIECE + CLEARTEXT_CHUNK_SIZE)));

export interface Digests {
  /** hex SHA-256 of the cleartext */
  sha256: string;
  /** hex SHA-256 of the ciphertext, as it lands on the target */
  ctSha256: string;
}

/** One streamed file: its pieces in order. */
export interface FileSealer {
  /**
   * Seals the first `length` bytes of `buf` (at least SEAL_BUFFER long) in place: the result is
   * a view of `buf` holding the ciphertext of every chunk completed so far. With `end` (the last,
   * maybe empty piece) the file's digests come too.
   */
  seal(buf: Buffer, length: number, end: boolean): { ct: Buffer; digests?: Digests };
}

/**
 * Encrypts and hashes file content for a vault writer, with as little memory as it can: a
 * small file goes into the caller's reusable buffer, and a streamed file's piece is sealed over
 * its own cleartext, so a read buffer is the only allocation per piece. Hashes are taken as the
 * bytes pass: the cleartext's for the manifest, the ciphertext's for SHA256SUMS.
 *
 * Worker threads were tried for this (one per spare core): on two cores they gained nothing
 * measurable, the second core being busy with the kernel's writeback and libuv's file I/O, and
 * each cost about 60 MB. A machine with more cores and no AES or SHA instructions (a Pi 4)
 * might gain; that is for a benchmark there to show.
 */
export class SealEngine {
  /** where pieces are sealed before going back over their cleartext: the two overlap */
  private readonly scratch = Buffer.allocUnsafeSlow(SEAL_BUFFER);

  constructor(
    private readonly combo: CipherCombo,
    private readonly keys: CryptomatorKeys,
  ) {}

  /** A whole small file, its ciphertext written into `out` (at least ciphertextSize long). */
  whole(clear: Buffer, out: Buffer): Digests & { ct: Buffer } {
    if (out.length < ciphertextSize(this.combo, clear.length)) throw new RangeError(`an output buffer of ${out.length} bytes for ${clear.length} bytes of cleartext`);
    const sha256 = createHash('sha256').update(clear).digest('hex');
    const ct = encryptBuffer(this.combo, this.keys, clear, out);
    return { ct, sha256, ctSha256: createHash('sha256').update(ct).digest('hex') };
  }

  file(): FileSealer {
    const sealer = new ContentSealer(this.combo, this.keys);
    const clearHash: Hash = createHash('sha256');
    const ctHash: Hash = createHash('sha256');
    const scratch = this.scratch;
    return {
      seal(buf, length, end) {
        const clear = buf.subarray(0, length);
        clearHash.update(clear);
        // the sealer has consumed `clear` (a partial chunk is copied aside) before anything is written over it
        let filled = 0;
        const put = (ct: Buffer | undefined) => {
          if (!ct) return;
          if (filled + ct.length > buf.length) throw new RangeError(`${filled + ct.length} bytes of ciphertext for a buffer of ${buf.length}`);
          ct.copy(buf, filled);
          filled += ct.length;
        };
        put(sealer.update(clear, scratch));
        if (end) put(sealer.final(scratch));
        const ct = buf.subarray(0, filled);
        ctHash.update(ct);
        return end ? { ct, digests: { sha256: clearHash.digest('hex'), ctSha256: ctHash.digest('hex') } } : { ct };
      },
    };
  }
}
