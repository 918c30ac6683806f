import { Readable } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type * as openpgp from 'openpgp';
import { openpgpLib } from './lib.js';
import { CerberusError } from '../../errors.js';

/** Who can open a message: public keys, or a symmetric passphrase. */
export type Sealing = { keys: openpgp.PublicKey[] } | { passphrase: string };
export type Opening = { key: openpgp.PrivateKey } | { passphrase: string };
export type Compression = 'none' | 'zlib';

// SEIPD v1 (no AEAD) and v4 keys: what GnuPG 2.2 in Debian stable reads.
const baseConfig = { aeadProtect: false, v6Keys: false } as const;

function sealOptions(sealing: Sealing) {
  return 'keys' in sealing ? { encryptionKeys: sealing.keys } : { passwords: [sealing.passphrase] };
}

function compressionConfig(pgp: typeof openpgp, c: Compression) {
  return {
    ...baseConfig,
    preferredCompressionAlgorithm: c === 'zlib' ? pgp.enums.compression.zlib : pgp.enums.compression.uncompressed,
  };
}

/** What encryptStream hands openpgp.js at a time; see inBlocks. */
const ENCRYPT_BLOCK = 1 << 20;

/**
 * Regroups a byte stream into blocks of exactly `size` bytes (the last may be shorter).
 * openpgp.js writes one partial-length packet per chunk it is given, sized to the largest
 * power of two that fits, so the uneven chunks of a tar stream (512-byte headers, 64 KiB
 * reads) became many small packets, and every reader of the archive then handled 7 times as
 * many chunks (each costing several web-stream objects). Whole blocks give 1 MiB packets.
 */
async function* inBlocks(input: AsyncIterable<Uint8Array | string>, size: number): AsyncGenerator<Buffer> {
  let block = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const c of input) {
    const chunk = Buffer.isBuffer(c) ? c : typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(size - filled, chunk.length - off);
      chunk.copy(block, filled, off, off + n);
      filled += n;
      off += n;
      if (filled === size) {
        yield block;
        block = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield block.subarray(0, filled);
}

/** Encrypts a byte stream as one OpenPGP message, streaming with bounded memory. */
export async function encryptStream(input: Readable, sealing: Sealing, compression: Compression): Promise<Readable> {
  const pgp = await openpgpLib();
  const blocks = Readable.from(inBlocks(input, ENCRYPT_BLOCK), { objectMode: false });
  const message = await pgp.createMessage({
    binary: Readable.toWeb(blocks) as unknown as ReadableStream<Uint8Array>,
    format: 'binary',
  });
  const out = await pgp.encrypt({
    message,
    ...sealOptions(sealing),
    format: 'binary',
    config: compressionConfig(pgp, compression),
  });
  return Readable.fromWeb(out as unknown as WebReadableStream<Uint8Array>);
}

export async function encryptBuffer(data: Uint8Array, sealing: Sealing, compression: Compression): Promise<Uint8Array> {
  const pgp = await openpgpLib();
  const message = await pgp.createMessage({ binary: data, format: 'binary' });
  return pgp.encrypt({ message, ...sealOptions(sealing), format: 'binary', config: compressionConfig(pgp, compression) });
}

function openOptions(opening: Opening) {
  return 'key' in opening ? { decryptionKeys: opening.key } : { passwords: [opening.passphrase] };
}

/** Maps openpgp.js failures to errors a user can act on. */
export function decryptionError(err: unknown, what: string): CerberusError {
  const msg = err instanceof Error ? err.message : String(err);
  if (/session key|no (decryption|matching) key|Error decrypting message: (Session|No)/i.test(msg)) {
    return new CerberusError('KEY', `cannot decrypt ${what}: the key or passphrase does not open it`, {
      hint: 'use the private key whose public key the repository was made for (see cerberus.json)',
    });
  }
  if (/Modification detected|MDC|integrity|Unexpected end|packet|Malformed|Unsupported|Unknown|checksum/i.test(msg)) {
    return new CerberusError('INTEGRITY', `${what} is damaged: ${msg}`, {
      hint: 'restore from another target or an older restore point; run `cerberus verify`',
    });
  }
  return new CerberusError('INTEGRITY', `cannot decrypt ${what}: ${msg}`);
}

/** Decrypts a small message whole: integrity is checked before anything is returned. */
export async function decryptBuffer(data: Uint8Array, opening: Opening, what: string): Promise<Uint8Array> {
  const pgp = await openpgpLib();
  try {
    const message = await pgp.readMessage({ binaryMessage: data });
    const { data: out } = await pgp.decrypt({ message, ...openOptions(opening), format: 'binary', config: baseConfig });
    return out;
  } catch (err) {
    throw decryptionError(err, what);
  }
}

/**
 * Decrypts a stream. Plaintext is released before the final integrity check (otherwise the
 * whole message would be buffered); callers must treat output as provisional until the stream
 * ends without error, and check every file's own sha256.
 */
export async function decryptStream(input: Readable, opening: Opening, what: string): Promise<Readable> {
  const pgp = await openpgpLib();
  try {
    const message = await pgp.readMessage({
      binaryMessage: Readable.toWeb(input) as unknown as ReadableStream<Uint8Array>,
    });
    const { data } = await pgp.decrypt({
      message,
      ...openOptions(opening),
      format: 'binary',
      config: { ...baseConfig, allowUnauthenticatedStream: true },
    });
    const out = Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>);
    const mapped = new Readable({ read() {} });
    out.on('data', (c: Uint8Array) => {
      if (!mapped.push(c)) out.pause();
    });
    mapped._read = () => out.resume();
    out.on('end', () => mapped.push(null));
    out.on('error', (err) => mapped.destroy(decryptionError(err, what)));
    mapped.on('close', () => out.destroy());
    return mapped;
  } catch (err) {
    throw decryptionError(err, what);
  }
}
