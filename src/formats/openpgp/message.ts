import fs from 'node:fs';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { deflateSync } from 'node:zlib';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type * as openpgp from 'openpgp';
import { openpgpLib } from './lib.js';
import { CerberusError } from '../../errors.js';
import { hashTap } from '../../fsutil.js';
import { PacketFormatError } from './packet-stream.js';
import { VolumeWriter, type VolumeWriterOptions } from './volume-writer.js';
export type { VolumeWriter };
import { IntegrityError, literalPacket, newSessionKey, openStream, QuickCheckError, Sealer, sealStream, SESSION_ALGORITHM } from './seipd.js';

/** Who can open a message: public keys, or a symmetric passphrase. */
export type Sealing = { keys: openpgp.PublicKey[] } | { passphrase: string };
export type Opening = { key: openpgp.PrivateKey } | { passphrase: string };
export type Compression = 'none' | 'zlib';

// SEIPD v1 (no AEAD) and v4 keys: what GnuPG 2.2 in Debian stable reads.
const baseConfig = { aeadProtect: false, v6Keys: false } as const;

function sealOptions(sealing: Sealing) {
  return 'keys' in sealing ? { encryptionKeys: sealing.keys } : { passwords: [sealing.passphrase] };
}

/**
 * Encrypts a byte stream as one OpenPGP message, streaming with bounded memory: openpgp.js
 * makes the session-key packets, node:crypto the data (see seipd.ts).
 */
export async function encryptStream(input: Readable, sealing: Sealing, compression: Compression): Promise<Readable> {
  const { preamble, sessionKey } = await newSession(sealing);
  return sealStream(input, preamble, sessionKey, compression);
}

/** A fresh session key, and the packets that give it to the recipients (by openpgp.js). */
async function newSession(sealing: Sealing): Promise<{ preamble: Uint8Array; sessionKey: Buffer }> {
  const pgp = await openpgpLib();
  const sessionKey = newSessionKey();
  const preamble = await pgp.encryptSessionKey({ data: sessionKey, algorithm: SESSION_ALGORITHM, ...sealOptions(sealing), format: 'binary', config: baseConfig });
  return { preamble, sessionKey };
}

/**
 * An encrypted message cut into volumes in `spoolDir`, sealed on a worker thread: see
 * volume-writer.ts. The backup feeds it tar headers and file contents from its read buffers.
 */
export async function volumeWriter(opts: Omit<VolumeWriterOptions, 'preamble' | 'sessionKey'> & { sealing: Sealing }): Promise<VolumeWriter> {
  const { sealing, ...rest } = opts;
  const { preamble, sessionKey } = await newSession(sealing);
  return new VolumeWriter({ ...rest, preamble, sessionKey });
}

/** A whole message in memory, by the same path as encryptStream. */
/** Seals the file `input` into the file `output`, streamed; its size and sha256 on the way. */
export async function sealFile(input: string, output: string, sealing: Sealing, compression: Compression): Promise<{ file: string; size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  await pipeline(await encryptStream(fs.createReadStream(input), sealing, compression), hashTap(hash, (n) => (size += n)), fs.createWriteStream(output));
  return { file: output, size, sha256: hash.digest('hex') };
}

export async function encryptBuffer(data: Uint8Array, sealing: Sealing, compression: Compression): Promise<Uint8Array> {
  const { preamble, sessionKey } = await newSession(sealing);
  const out: Buffer[] = [];
  const sealer = new Sealer(preamble, sessionKey, (b) => out.push(b), compression);
  sealer.write(compression === 'zlib' ? deflateSync(literalPacket(data)) : data);
  sealer.end();
  return Buffer.concat(out);
}

function openOptions(opening: Opening) {
  return 'key' in opening ? { decryptionKeys: opening.key } : { passwords: [opening.passphrase] };
}

const wrongKey = (what: string, unsure = '') =>
  new CerberusError('KEY', `cannot decrypt ${what}: the key or passphrase does not open it${unsure}`, {
    hint: 'use the private key whose public key the repository was made for (see cerberus.json)',
  });

/**
 * Maps decryption failures to errors a user can act on. A passphrase packet (SKESK v4) carries
 * no check of its own: a wrong passphrase yields a random session key, which fails the quick
 * check, names an algorithm we hand to openpgp.js, or has the wrong length. All of that is KEY
 * for a passphrase; a public-key packet checks its session key, so there it is damage.
 */
export function decryptionError(err: unknown, what: string, passphrase?: { unchecked: boolean }): CerberusError {
  if (err instanceof CerberusError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  if (passphrase && (err instanceof QuickCheckError || passphrase.unchecked)) return wrongKey(what, ' (or its first bytes are damaged)');
  if (err instanceof IntegrityError || err instanceof PacketFormatError) {
    return new CerberusError('INTEGRITY', `${what} is damaged: ${msg}`, {
      hint: 'restore from another target or an older restore point; run `cerberus verify`',
    });
  }
  if (/session key|no (decryption|matching) key|Error decrypting message: (Session|No)/i.test(msg)) return wrongKey(what);
  if (/Modification detected|MDC|integrity|Unexpected end|packet|Malformed|Unsupported|Unknown|checksum/i.test(msg)) {
    return new CerberusError('INTEGRITY', `${what} is damaged: ${msg}`, {
      hint: 'restore from another target or an older restore point; run `cerberus verify`',
    });
  }
  return new CerberusError('INTEGRITY', `cannot decrypt ${what}: ${msg}`);
}

/** Decrypts a small message whole: integrity is checked before anything is returned. */
export async function decryptBuffer(data: Uint8Array, opening: Opening, what: string): Promise<Uint8Array> {
  const out: Buffer[] = [];
  for await (const c of await decryptStream(Readable.from([Buffer.from(data.buffer, data.byteOffset, data.byteLength)]), opening, what)) out.push(c as Buffer);
  return Buffer.concat(out);
}

/**
 * Decrypts a stream. Plaintext is released before the final integrity check (otherwise the
 * whole message would be buffered); callers must treat output as provisional until the stream
 * ends without error, and check every file's own sha256. Messages that seipd.ts does not read
 * (AEAD, other ciphers) go through openpgp.js.
 */
export async function decryptStream(input: Readable, opening: Opening, what: string): Promise<Readable> {
  const pgp = await openpgpLib();
  // set once a passphrase unlocked a session key that seipd.ts cannot quick-check
  const passphrase = 'passphrase' in opening ? { unchecked: false } : undefined;
  let opened: Awaited<ReturnType<typeof openStream>>;
  try {
    opened = await openStream(input, async (packets) => {
      const message = await pgp.readMessage({ binaryMessage: packets });
      const [key] = await pgp.decryptSessionKeys({ message, ...openOptions(opening), config: baseConfig });
      if (!key) throw new Error('Error decrypting message: Session key decryption failed.');
      return key;
    });
  } catch (err) {
    input.destroy();
    throw decryptionError(err, what, passphrase);
  }
  if ('plaintext' in opened) return mapErrors(opened.plaintext, what, input, passphrase);
  if (passphrase && opened.unlocked) passphrase.unchecked = true;
  try {
    const message = await pgp.readMessage({
      binaryMessage: Readable.toWeb(Readable.from(opened.fallback, { objectMode: false })) as unknown as ReadableStream<Uint8Array>,
    });
    const { data } = await pgp.decrypt({
      message,
      ...openOptions(opening),
      format: 'binary',
      // AEAD streams either way; SEIPD v1 with another cipher is checked whole first, because
      // openpgp.js (6.3) left streaming unchecked can hang forever on noise (a wrong passphrase)
      config: { ...baseConfig, allowUnauthenticatedStream: false },
    });
    return mapErrors(Readable.fromWeb(data as unknown as WebReadableStream<Uint8Array>), what, input, passphrase);
  } catch (err) {
    throw decryptionError(err, what, passphrase);
  }
}

/** The same stream, its failures mapped to errors a user can act on; closing it closes the input too. */
function mapErrors(out: Readable, what: string, input: Readable, passphrase: { unchecked: boolean } | undefined): Readable {
  const mapped = new Readable({ read() {} });
  out.on('data', (c: Uint8Array) => {
    if (!mapped.push(c)) out.pause();
  });
  mapped._read = () => out.resume();
  out.on('end', () => mapped.push(null));
  out.on('error', (err) => mapped.destroy(decryptionError(err, what, passphrase)));
  mapped.on('close', () => {
    out.destroy();
    input.destroy();
  });
  return mapped;
}
