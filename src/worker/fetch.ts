import { createHash, randomBytes } from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import path from 'node:path';
import { pipeline, Readable } from 'node:stream';
import { createGunzip, createGzip, gzipSync } from 'node:zlib';
import type { S3TargetConfig } from '../config/index.js';
import { CerberusError } from '../errors.js';
import { encryptBuffer, encryptStream, type Sealing } from '../formats/openpgp/message.js';
import { S3Source } from '../sources/s3.js';
import { fileBody, type Backend, type BodySource } from '../storage/index.js';
import type { FileRow } from './app-db.js';
import { safeSignedUrl } from './redact.js';

/** Where a row's bytes come from when its signed URL cannot give them: the bucket the Storage column names. */
export interface StorageReader {
  name: string;
  bucket: string;
  read(key: string): Promise<Readable>;
  close(): Promise<void>;
}

export function storageReader(name: string, cfg: S3TargetConfig): StorageReader {
  const source = new S3Source({
    type: 's3',
    bucket: cfg.bucket,
    prefix: cfg.prefix,
    region: cfg.region,
    forcePathStyle: cfg.forcePathStyle,
    ...(cfg.endpoint !== undefined ? { endpoint: cfg.endpoint } : {}),
    ...(cfg.accessKeyId !== undefined && cfg.secretAccessKey !== undefined ? { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey } : {}),
  });
  const prefix = cfg.prefix === '' ? '' : `${cfg.prefix}/`;
  // read() needs no listing: a key that may only GetObject is enough
  return { name, bucket: cfg.bucket, read: (key) => source.read(`/${prefix}${key}`, 0), close: () => source.close() };
}

/** The object's key in its bucket: the Path without its leading '/'. */
export const keyOfPath = (p: string) => p.replace(/^\/+/, '');

/** A download that stays silent this long is given up (and the row tried again later). */
const URL_IDLE_MS = 60_000;
/** Content up to this size is compressed (and encrypted) in one call rather than as a stream. */
export const SMALL_CONTENT = 128 * 1024;
/** Copies up to this size stay in memory on their way to the target; larger ones go through a spool file. */
export const SPOOL_IN_MEMORY = 1 << 20;

export interface Source {
  stream: Readable;
  via: 'url' | 'storage';
  /** why the URL was not used, when it was not */
  fallback?: string;
}

/**
 * The row's content: from SignedDownloadUrl, or, when the URL is absent, expired or fails,
 * straight from its storage (S3 GetObject). Messages show a URL without its query string:
 * that holds the signature.
 */
export async function openSource(row: FileRow, storage: StorageReader, signal: AbortSignal): Promise<Source> {
  let why = 'no SignedDownloadUrl';
  if (row.url !== undefined) {
    const expired = urlExpiry(row.url);
    if (expired !== undefined && expired <= Date.now()) {
      why = `the signed URL expired at ${new Date(expired).toISOString()}`;
    } else {
      const got = await download(row.url, signal);
      if ('stream' in got) return { stream: got.stream, via: 'url' };
      why = got.failed;
    }
  }
  if (signal.aborted) throw signal.reason;
  try {
    return { stream: await storage.read(keyOfPath(row.path)), via: 'storage', fallback: why };
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new CerberusError('SOURCE', `${why}, and storage ${storage.name} failed too: ${msg.split('\n')[0]}`, { cause: err });
  }
}

/** When a presigned S3 URL stops working: X-Amz-Date + X-Amz-Expires (v4) or Expires (v2). */
export function urlExpiry(url: string): number | undefined {
  let q: URLSearchParams;
  try {
    q = new URL(url).searchParams;
  } catch {
    return undefined;
  }
  const date = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(q.get('X-Amz-Date') ?? '');
  const expires = Number(q.get('X-Amz-Expires'));
  if (date && Number.isFinite(expires) && expires > 0) {
    return Date.UTC(Number(date[1]), Number(date[2]) - 1, Number(date[3]), Number(date[4]), Number(date[5]), Number(date[6])) + expires * 1000;
  }
  const v2 = Number(q.get('Expires'));
  return q.has('Expires') && Number.isFinite(v2) && v2 > 0 ? v2 * 1000 : undefined;
}

/** Connections kept open between downloads: most rows come from the same server. */
const agents = {
  // as Node's global agent: an idle connection is closed before a server's usual keep-alive timeout would
  http: new http.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 5000 }),
  https: new https.Agent({ keepAlive: true, scheduling: 'lifo', timeout: 5000 }),
};

/** A GET (following up to `redirects` redirects); node:http rather than fetch: a fraction of the work per request. */
function get(url: URL, signal: AbortSignal, redirects = 3): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') return reject(new Error(`unsupported protocol ${url.protocol}`));
    const req = (secure ? https : http).get(url, { agent: secure ? agents.https : agents.http, signal, headers: { 'accept-encoding': 'identity' } }, (res) => {
      const to = res.headers.location;
      if (res.statusCode !== undefined && [301, 302, 303, 307, 308].includes(res.statusCode) && to !== undefined && redirects > 0) {
        res.resume();
        let next: URL;
        try {
          next = new URL(to, url);
        } catch (err) {
          return reject(err);
        }
        return resolve(get(next, signal, redirects - 1));
      }
      resolve(res);
    });
    // silence on the socket, waiting for the answer or for more of the body
    req.setTimeout(URL_IDLE_MS, () => req.destroy(Object.assign(new Error(`no bytes for ${URL_IDLE_MS / 1000} s`), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
  });
}

async function download(url: string, signal: AbortSignal): Promise<{ stream: Readable } | { failed: string }> {
  const shown = safeSignedUrl(url);
  let res: http.IncomingMessage;
  try {
    res = await get(new URL(url), signal);
  } catch (err) {
    if (signal.aborted) throw signal.reason;
    const code = (err as { code?: unknown }).code;
    return { failed: `the signed URL ${shown} failed (${typeof code === 'string' ? code : (err as Error).message})` };
  }
  if (res.statusCode !== 200) {
    let body = '';
    try {
      for await (const c of res) {
        body += (c as Buffer).toString('utf8');
        if (body.length > 4096) break;
      }
    } catch {
      // the status says enough
    }
    res.destroy();
    const code = /<Code>([^<]{1,64})<\/Code>/.exec(body)?.[1];
    const expired = /Request has expired|expired/i.test(body) || res.statusCode === 410;
    return { failed: `the signed URL ${shown} answered ${res.statusCode}${code ? ` ${code}` : ''}${expired ? ' (expired)' : ''}` };
  }
  return { stream: res };
}

/** A copy ready for the target: its bytes (in memory or in a spool file) and what it took. */
export interface PreparedCopy {
  body: BodySource;
  size: number;
  /** bytes of content read */
  bytesIn: number;
  dispose(): Promise<void>;
}

/**
 * Reads the content once: sha-256 of what arrives, gzip, OpenPGP encryption when `sealing`
 * is given. Content up to SMALL_CONTENT is gathered and compressed in one call (a stream of
 * zlib and OpenPGP costs several times more per file, and most uploads are small); larger
 * content streams through into a spool file in `spoolDir`. A hash that differs from the row's
 * is an error and nothing is kept.
 */
export async function prepareCopy(source: Readable, row: FileRow, opts: { sealing: Sealing | undefined; compression: 'none' | 'zlib'; spoolDir: string }): Promise<PreparedCopy> {
  const hash = createHash('sha256');
  let bytesIn = 0;
  const chunks = source[Symbol.asyncIterator]();
  const held: Buffer[] = [];
  let ended = false;
  try {
    while (bytesIn <= SMALL_CONTENT) {
      const next = await chunks.next();
      if (next.done) {
        ended = true;
        break;
      }
      const b = next.value as Buffer;
      hash.update(b);
      bytesIn += b.length;
      held.push(b);
    }
  } catch (err) {
    source.destroy();
    throw err;
  }
  const check = () => {
    const got = hash.digest('hex');
    if (got === row.hash.toLowerCase()) return;
    throw new CerberusError('INTEGRITY', `sha-256 mismatch: the ${bytesIn} bytes read hash to ${got}, the row's Hash is ${row.hash}; nothing stored`, {
      hint: 'tried again later; fix the object in the storage or the row\'s Hash',
    });
  };
  if (ended) {
    check();
    const gz = gzipSync(Buffer.concat(held));
    const data = opts.sealing ? Buffer.from(await encryptBuffer(gz, opts.sealing, opts.compression)) : gz;
    return { body: () => Readable.from([data]), size: data.length, bytesIn, dispose: async () => undefined };
  }

  const rest = Readable.from(
    (async function* () {
      try {
        yield* held.splice(0);
        for (;;) {
          const next = await chunks.next();
          if (next.done) return;
          const b = next.value as Buffer;
          hash.update(b);
          bytesIn += b.length;
          yield b;
        }
      } finally {
        // a reader that gave up must not leave the download open
        source.destroy();
      }
    })(),
    { objectMode: false },
  );
  let failure: Error | undefined;
  const gz = pipeline(rest, createGzip(), (err) => {
    if (err) failure ??= err;
  });
  const out = opts.sealing ? await encryptStream(gz, opts.sealing, opts.compression) : gz;
  const spooled = await spool(out, opts.spoolDir).catch((err: unknown) => {
    // the sealing stream does not close what feeds it
    rest.destroy();
    throw failure ?? err;
  });
  try {
    if (failure) throw failure;
    check();
  } catch (err) {
    await spooled.dispose();
    throw err;
  }
  return { ...spooled, bytesIn };
}

async function spool(out: Readable, dir: string): Promise<Omit<PreparedCopy, 'bytesIn'>> {
  const held: Buffer[] = [];
  let size = 0;
  let file: string | undefined;
  let fh: fsp.FileHandle | undefined;
  const write = async (b: Buffer) => {
    for (let off = 0; off < b.length; ) off += (await fh!.write(b, off, b.length - off)).bytesWritten;
  };
  try {
    for await (const chunk of out) {
      const b = chunk as Buffer;
      size += b.length;
      if (fh) {
        await write(b);
        continue;
      }
      held.push(b);
      if (size > SPOOL_IN_MEMORY) {
        file = path.join(dir, `copy-${process.pid}-${randomBytes(6).toString('hex')}`);
        fh = await fsp.open(file, 'wx', 0o600);
        await write(Buffer.concat(held));
        held.length = 0;
      }
    }
    await fh?.close();
    fh = undefined;
  } catch (err) {
    out.destroy();
    await fh?.close().catch(() => undefined);
    if (file) await fsp.rm(file, { force: true });
    throw err;
  }
  if (file !== undefined) {
    const f = file;
    return { body: fileBody(f), size, dispose: () => fsp.rm(f, { force: true }) };
  }
  const data = Buffer.concat(held);
  return { body: () => Readable.from([data]), size, dispose: async () => undefined };
}

/**
 * Writes the copy under its final name, whole or not at all (every backend puts atomically;
 * one that could not gets a temporary name and a move). Where the target defers durability
 * (a local disk, small files), the caller flushes before it records the copy as stored.
 */
export async function putCopy(target: Backend, key: string, copy: PreparedCopy, signal: AbortSignal): Promise<void> {
  if (target.capabilities.atomicPut || !target.move) {
    await target.put(key, copy.body, copy.size, { signal, deferSync: true });
    return;
  }
  const tmp = `${key}.part-${randomBytes(4).toString('hex')}`;
  await target.put(tmp, copy.body, copy.size, { signal });
  await target.move(tmp, key, { signal });
}

/**
 * A copy found under its final name for a row whose attempt a crash cut short: it was put
 * whole, and only after its hash was checked, so it stands. A plain copy is read back and
 * its hash checked once more (an encrypted one would need the private key, which the
 * worker's machine does not hold). Returns its size, or undefined when it must be made again.
 */
export async function existingCopy(target: Backend, key: string, encrypted: boolean, hash: string, signal: AbortSignal): Promise<number | undefined> {
  const info = await target.stat(key, { signal });
  if (!info || info.isDir || info.size === 0) return undefined;
  if (encrypted) return info.size;
  try {
    const h = createHash('sha256');
    const plain = pipeline(await target.get(key, undefined, { signal }), createGunzip(), () => undefined);
    for await (const c of plain) h.update(c as Buffer);
    return h.digest('hex') === hash.toLowerCase() ? info.size : undefined;
  } catch {
    return undefined;
  }
}
