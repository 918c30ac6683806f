import type { CompletedPart, ListObjectsV2CommandOutput, S3Client, S3ClientConfig, StorageClass } from '@aws-sdk/client-s3';
import { Readable, pipeline } from 'node:stream';
import { CerberusError, ioError } from '../errors.js';
import { joinPath, type Backend, type BodySource, type ByteRange, type Capabilities, type ObjectInfo, type RequestOptions } from './backend.js';
import { StorageError, connectionHint, httpStorageError, networkCode } from './errors.js';
import { sizedBody, type Window } from './sized.js';
import type { S3TargetConfig } from '../config/types.js';

const GiB = 2 ** 30;
/** the largest object a single CopyObject may copy */
const MAX_COPY_SIZE = 5 * GiB;
const MAX_PARTS = 10_000;

const CREDENTIAL_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError']);
const REGION_CODES = new Set(['PermanentRedirect', 'AuthorizationHeaderMalformed', 'IllegalLocationConstraintException']);

type Sdk = typeof import('@aws-sdk/client-s3');

/** Knobs for tests, kept out of the config file. */
export interface S3BackendInternals {
  /** MaxKeys per ListObjectsV2 page; the server's own limit (1000) when unset */
  pageSize?: number;
}

/**
 * An S3 bucket (AWS or compatible) under a key prefix. Folders are virtual: a folder exists
 * while some key lies under it. No move: S3 has no atomic rename.
 */
export class S3Backend implements Backend {
  readonly capabilities: Capabilities = {
    atomicPut: true,
    move: false,
    serverSideCopy: true,
    hardLink: false,
    maxObjectSize: 5 * 1024 * GiB,
  };
  readonly description: string;
  private readonly clientConfig: S3ClientConfig;
  private client: S3Client | undefined;

  constructor(
    private readonly cfg: S3TargetConfig,
    private readonly internals: S3BackendInternals = {},
  ) {
    this.description = `s3:${cfg.endpoint ? safeEndpoint(cfg.endpoint) : 'aws'}/${cfg.bucket}${cfg.prefix ? `/${cfg.prefix}` : ''}`;
    const checksums = cfg.checksums === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
    this.clientConfig = {
      region: cfg.region,
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      forcePathStyle: cfg.forcePathStyle,
      ...(cfg.accessKeyId
        ? {
            credentials: {
              accessKeyId: cfg.accessKeyId,
              secretAccessKey: cfg.secretAccessKey ?? '',
              ...(cfg.sessionToken ? { sessionToken: cfg.sessionToken } : {}),
            },
          }
        : {}),
      // the retry layer retries; SDK retries underneath it would multiply the attempts
      maxAttempts: 1,
      requestChecksumCalculation: checksums,
      responseChecksumValidation: checksums,
      // without a logger the SDK writes warnings to the console, through our progress output
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    };
  }

  private key(p: string): string {
    if (p.split('/').includes('..')) throw new CerberusError('INTERNAL', `refusing storage path with '..': ${p}`);
    return joinPath(this.cfg.prefix, p);
  }

  /**
   * `command` builds the SDK command once the SDK is loaded: on first use, so a job without
   * S3 targets starts about 0.2 s sooner (later imports come from the module cache).
   */
  private async send<T>(command: (sdk: Sdk) => unknown, signal: AbortSignal | undefined): Promise<T> {
    const sdk = await import('@aws-sdk/client-s3');
    this.client ??= new sdk.S3Client(this.clientConfig);
    const send = this.client.send as unknown as (c: unknown, o?: { abortSignal?: AbortSignal }) => Promise<T>;
    return send.call(this.client, command(sdk), signal ? { abortSignal: signal } : {});
  }

  async put(p: string, body: BodySource, size: number, opts: RequestOptions = {}): Promise<void> {
    const key = this.key(p);
    const what = `put ${key}`;
    if (size > this.capabilities.maxObjectSize) {
      throw new StorageError(`target ${this.cfg.name}: ${what}: ${size} bytes is more than S3's 5 TiB object limit`, { retryable: false });
    }
    // a failing body must end the request; the SDK only pipes it, which leaves the request hanging
    const bodyFailed = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, bodyFailed.signal]) : bodyFailed.signal;
    let bodyError: unknown;
    const src = body();
    const sized = sizedBody(size, (got) =>
      new StorageError(`target ${this.cfg.name}: ${what}: the body gave ${got} bytes, expected ${size}`, { retryable: false }),
    );
    pipeline(src, sized, (err) => {
      if (err && !signal.aborted) {
        bodyError = err;
        bodyFailed.abort(err);
      }
    });
    try {
      if (size <= this.cfg.partSize) {
        await this.send(
          (s) => new s.PutObjectCommand({ Bucket: this.cfg.bucket, Key: key, Body: sized, ContentLength: size, ...this.storageClass() }),
          signal,
        );
      } else {
        await this.multipart(key, sized, size, signal, opts.progress);
      }
    } catch (err) {
      if (bodyError !== undefined && !opts.signal?.aborted) {
        throw bodyError instanceof CerberusError ? bodyError : ioError(bodyError, `target ${this.cfg.name}: ${what}: cannot read the data to send`);
      }
      throw this.fail(err, what, opts.signal);
    } finally {
      src.destroy();
      sized.destroy();
    }
    const stored = await this.head(key, what, opts.signal);
    if (stored.size !== size) {
      throw new StorageError(`target ${this.cfg.name}: ${what}: the server stored ${stored.size} bytes, expected ${size}`, {
        retryable: true,
        ...(stored.size > size && this.cfg.checksums === 'when_supported'
          ? { hint: `the server may have stored the checksum framing with the data; set checksums: when_required on target ${this.cfg.name}` }
          : {}),
      });
    }
  }

  /**
   * Multipart by hand rather than with lib-storage's Upload, which assembles every part in
   * memory (two in flight and one filling: 48 MiB of buffers at 16 MiB parts, near 240 MB RSS
   * for a backup on the Pi-sized budget of 200 MB; bench/upload.sh). Here each part streams
   * straight from the body with its length up front, one part at a time. A failed part fails
   * the put, and the retry layer sends the whole volume again from its spooled file.
   */
  private async multipart(key: string, body: Readable, size: number, signal: AbortSignal, progress?: () => void): Promise<void> {
    const partSize = Math.max(this.cfg.partSize, Math.ceil(size / MAX_PARTS));
    const target = { Bucket: this.cfg.bucket, Key: key };
    const created = await this.send<{ UploadId?: string }>((s) => new s.CreateMultipartUploadCommand({ ...target, ...this.storageClass() }), signal);
    const uploadId = created.UploadId;
    if (!uploadId) throw new StorageError(`target ${this.cfg.name}: put ${key}: the server gave no upload id`, { retryable: true });
    const parts: CompletedPart[] = [];
    const source = new PartSource(body);
    try {
      for (let n = 1, sent = 0; sent < size; n++) {
        const len = Math.min(partSize, size - sent);
        const res = await this.send<{ ETag?: string; ChecksumCRC32?: string }>(
          (s) => new s.UploadPartCommand({ ...target, UploadId: uploadId, PartNumber: n, Body: source.next(len, progress), ContentLength: len }),
          signal,
        );
        parts.push({ PartNumber: n, ETag: res.ETag, ...(res.ChecksumCRC32 ? { ChecksumCRC32: res.ChecksumCRC32 } : {}) });
        sent += len;
      }
      await this.send((s) => new s.CompleteMultipartUploadCommand({ ...target, UploadId: uploadId, MultipartUpload: { Parts: parts } }), signal);
    } catch (err) {
      // its own timeout: the caller's signal may be why we are here, and the parts would stay (and cost)
      await this.send((s) => new s.AbortMultipartUploadCommand({ ...target, UploadId: uploadId }), AbortSignal.timeout(this.cfg.timeoutMs || 60_000)).catch(
        () => undefined,
      );
      throw err;
    }
  }

  private storageClass(): { StorageClass?: StorageClass } {
    return this.cfg.storageClass ? { StorageClass: this.cfg.storageClass as StorageClass } : {};
  }

  async get(p: string, range?: ByteRange, opts: RequestOptions = {}): Promise<Readable> {
    const key = this.key(p);
    const what = `get ${key}`;
    let res: { Body?: unknown; ContentLength?: number; ContentRange?: string };
    try {
      res = await this.send(
        (s) => new s.GetObjectCommand({
          Bucket: this.cfg.bucket,
          Key: key,
          ...(range ? { Range: `bytes=${range.start}-${range.end ?? ''}` } : {}),
        }),
        opts.signal,
      );
    } catch (err) {
      throw this.fail(err, what, opts.signal);
    }
    const body = res.Body instanceof Readable ? res.Body : res.Body ? Readable.fromWeb(res.Body as never) : Readable.from([], { objectMode: false });
    let window: Window | undefined;
    if (range) {
      // some servers answer more than was asked (s3rver reads `bytes=0-0` as `bytes=0-`) or
      // ignore Range; the reader gets exactly the range either way
      const served = /^bytes (\d+)-/.exec(res.ContentRange ?? '');
      const from = served ? Number(served[1]) : 0;
      if (from > range.start) {
        body.destroy();
        throw new StorageError(`target ${this.cfg.name}: ${what}: asked for bytes from ${range.start}, the server sent from ${from}`, { retryable: false });
      }
      window = { skip: range.start - from, ...(range.end !== undefined ? { limit: range.end + 1 - range.start } : {}) };
    }
    return this.checked(body, res.ContentLength, window, what, opts.signal);
  }

  /** Passes a response body through; fails it when it ends short of its Content-Length. */
  private checked(body: Readable, expected: number | undefined, window: Window | undefined, what: string, signal: AbortSignal | undefined): Readable {
    const out = sizedBody(
      expected,
      (got) => new StorageError(`target ${this.cfg.name}: ${what}: the body ended after ${got} of ${expected} bytes`, { retryable: true }),
      window ? { window } : {},
    );
    // registered before pipeline's own handler, so the reader sees a classified error
    body.once('error', (err) => out.destroy(signal?.aborted ? err : this.fail(err, what, undefined)));
    const onAbort = () => out.destroy(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });
    out.once('close', () => signal?.removeEventListener('abort', onAbort));
    pipeline(body, out, () => undefined);
    return out;
  }

  async stat(p: string, opts: RequestOptions = {}): Promise<ObjectInfo | undefined> {
    const key = this.key(p);
    const rel = joinPath(p);
    const name = rel.split('/').pop() ?? '';
    if (rel !== '') {
      try {
        const { size } = await this.head(key, `stat ${key}`, opts.signal);
        return { name, size, isDir: false };
      } catch (err) {
        if (!(err instanceof CerberusError && err.code === 'NOT_FOUND')) throw err;
      }
    }
    const page = await this.listPage(dirPrefix(key), undefined, 1, false, `stat ${key}`, opts.signal);
    return (page.Contents?.length ?? 0) + (page.CommonPrefixes?.length ?? 0) > 0 ? { name, size: 0, isDir: true } : undefined;
  }

  private async head(key: string, what: string, signal: AbortSignal | undefined): Promise<{ size: number }> {
    try {
      const h = await this.send<{ ContentLength?: number }>((s) => new s.HeadObjectCommand({ Bucket: this.cfg.bucket, Key: key }), signal);
      return { size: h.ContentLength ?? 0 };
    } catch (err) {
      throw this.fail(err, what, signal);
    }
  }

  private async listPage(
    prefix: string,
    token: string | undefined,
    maxKeys: number | undefined,
    delimited: boolean,
    what: string,
    signal: AbortSignal | undefined,
  ): Promise<ListObjectsV2CommandOutput> {
    try {
      return await this.send(
        (s) => new s.ListObjectsV2Command({
          Bucket: this.cfg.bucket,
          Prefix: prefix,
          ...(delimited ? { Delimiter: '/' } : {}),
          ...(token ? { ContinuationToken: token } : {}),
          ...(maxKeys ? { MaxKeys: maxKeys } : {}),
        }),
        signal,
      );
    } catch (err) {
      throw this.fail(err, what, signal);
    }
  }

  async list(dir: string, opts: RequestOptions = {}): Promise<ObjectInfo[]> {
    const prefix = dirPrefix(this.key(dir));
    const what = `list ${prefix || '/'}`;
    // keyed by kind too: S3 may hold both a file `a` and keys under `a/`
    const entries = new Map<string, ObjectInfo>();
    let token: string | undefined;
    do {
      const page = await this.listPage(prefix, token, this.internals.pageSize, true, what, opts.signal);
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(prefix.length);
        // `dir/` itself: a folder marker some tools create
        if (name) entries.set(`f:${name}`, { name, size: o.Size ?? 0, isDir: false });
      }
      for (const cp of page.CommonPrefixes ?? []) {
        const name = cp.Prefix?.slice(prefix.length, -1);
        if (name) entries.set(`d:${name}`, { name, size: 0, isDir: true });
      }
      const next = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && (!next || next === token)) {
        throw new StorageError(`target ${this.cfg.name}: ${what}: the server said the listing goes on but gave no new continuation token`, {
          retryable: false,
        });
      }
      token = next;
    } while (token);
    return [...entries.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async remove(p: string, opts: RequestOptions = {}): Promise<void> {
    const key = this.key(p);
    // a folder is its keys; nothing to remove once they are gone
    if (joinPath(p) === '') return;
    try {
      await this.send((s) => new s.DeleteObjectCommand({ Bucket: this.cfg.bucket, Key: key }), opts.signal);
    } catch (err) {
      const e = this.fail(err, `remove ${key}`, opts.signal);
      if (!(e instanceof CerberusError && e.code === 'NOT_FOUND')) throw e;
    }
  }

  async mkdir(_p: string, _opts?: RequestOptions): Promise<void> {
    // folders are virtual: they appear with their first key
  }

  async copy(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    const src = this.key(from);
    const dst = this.key(to);
    const what = `copy ${src} to ${dst}`;
    const { size } = await this.head(src, what, opts.signal);
    if (size > MAX_COPY_SIZE) {
      throw new StorageError(`target ${this.cfg.name}: ${what}: ${size} bytes is more than the 5 GiB a single S3 copy can take`, {
        retryable: false,
        hint: 'use a volumeSize under 5GiB for S3 targets',
      });
    }
    try {
      await this.send(
        (s) => new s.CopyObjectCommand({ Bucket: this.cfg.bucket, Key: dst, CopySource: copySource(this.cfg.bucket, src), ...this.storageClass() }),
        opts.signal,
      );
    } catch (err) {
      throw this.fail(err, what, opts.signal);
    }
  }

  /** One classification of an SDK failure; an abort stays as it is, so the caller sees its own. */
  private fail(err: unknown, what: string, signal: AbortSignal | undefined): Error {
    if (signal?.aborted || err instanceof CerberusError) return err instanceof Error ? err : abortError(signal);
    const target = this.cfg.name;
    const e = err as { name?: unknown; Code?: unknown; $metadata?: { httpStatusCode?: number }; $response?: { headers?: Record<string, string> } };
    const code = typeof e.Code === 'string' ? e.Code : typeof e.name === 'string' ? e.name : undefined;
    const status = e.$metadata?.httpStatusCode;
    if (isNoSuchBucket(err)) {
      return new StorageError(`target ${target}: ${what}: bucket ${this.cfg.bucket} does not exist`, {
        retryable: false,
        status: 404,
        hint: `create the bucket ${this.cfg.bucket}, or correct the bucket of target ${target}`,
        cause: err,
      });
    }
    if (code && CREDENTIAL_CODES.has(code)) {
      return new StorageError(`target ${target}: ${what}: ${code}`, {
        retryable: false,
        ...(status !== undefined ? { status } : {}),
        hint: `check the access key, secret and permissions of target ${target} (or the AWS_* variables when the config gives none)`,
        cause: err,
      });
    }
    if (code && REGION_CODES.has(code)) {
      return new StorageError(`target ${target}: ${what}: ${code}`, {
        retryable: false,
        ...(status !== undefined ? { status } : {}),
        hint: `check the region and endpoint of target ${target}`,
        cause: err,
      });
    }
    if (code === 'NoSuchKey') return new StorageError(`target ${target}: ${what}: not found`, { retryable: false, status: 404, notFound: true, cause: err });
    const hint = connectionHint(err);
    if (networkCode(err) !== undefined || code === 'TimeoutError') {
      return new StorageError(`target ${target}: ${what}: ${networkCode(err) ?? 'timed out'}`, { retryable: true, cause: err, ...(hint ? { hint } : {}) });
    }
    if (typeof status === 'number' && status >= 300) {
      return httpStorageError(target, what, status, { retryAfter: e.$response?.headers?.['retry-after'] ?? null, cause: err });
    }
    const message = err instanceof Error ? err.message : String(err);
    return new StorageError(`target ${target}: ${what}: ${message}`, { retryable: false, cause: err, ...(hint ? { hint } : {}) });
  }
}

function isNoSuchBucket(err: unknown): boolean {
  const e = err as { name?: unknown; Code?: unknown };
  return e?.Code === 'NoSuchBucket' || e?.name === 'NoSuchBucket';
}

function dirPrefix(key: string): string {
  return key === '' ? '' : `${key}/`;
}

/**
 * x-amz-copy-source is URL-encoded `bucket/key`, '/' kept between segments. '=', ':', '@' and
 * ',' are legal in a URI path and stay literal: servers that decode the header with decodeURI
 * (s3rver) would otherwise miss every padded base64 name of a Cryptomator vault.
 */
export function copySource(bucket: string, key: string): string {
  const seg = (s: string) => encodeURIComponent(s).replace(/%(3D|3A|40|2C)/g, (m) => decodeURIComponent(m));
  return `${encodeURIComponent(bucket)}/${key.split('/').map(seg).join('/')}`;
}

/** The endpoint without user info, query or a trailing '/': for messages. */
export function safeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
  } catch {
    return '(unparsable endpoint)';
  }
}

/** Which of the bytes that arrive the reader gets: all but the first `skip`, at most `limit`. */

function abortError(signal: AbortSignal | undefined): Error {
  return Object.assign(new Error('Request aborted', { cause: signal?.reason }), { name: 'AbortError' });
}

/** Cuts one body into consecutive part streams of given lengths, without buffering a part. */
class PartSource {
  private readonly chunks: AsyncIterator<Buffer>;
  /** what the last part did not take of a chunk */
  private rest: Buffer | undefined;

  constructor(body: Readable) {
    this.chunks = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async take(): Promise<Buffer | undefined> {
    const held = this.rest;
    this.rest = undefined;
    if (held) return held;
    const r = await this.chunks.next();
    return r.done ? undefined : r.value;
  }

  next(length: number, progress?: () => void): Readable {
    let left = length;
    const source = this;
    const part = new Readable({
      read() {
        source.take().then(
          (chunk) => {
            if (!chunk) return void this.destroy(new Error(`the body ended ${left} bytes short of a part`));
            let piece = chunk;
            if (piece.length > left) {
              source.rest = piece.subarray(left);
              piece = piece.subarray(0, left);
            }
            left -= piece.length;
            progress?.();
            this.push(piece);
            if (left === 0) this.push(null);
          },
          (err: unknown) => this.destroy(err as Error),
        );
      },
    });
    // the put reports a failing body itself; the SDK may have let go of this part already
    part.on('error', () => undefined);
    return part;
  }
}
