import type { ListObjectsV2CommandOutput, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { Readable, Transform } from 'node:stream';
import { CerberusError } from '../errors.js';
import { networkCode, safeEndpoint } from '../storage/index.js';
import { PATH_CODES, pathError, type RemoteEntry, type RemoteSource, type S3SourceConfig } from './types.js';

/** The credentials were refused: no retry helps. */
const LOGIN_CODES = new Set(['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError', 'InvalidClientTokenId']);
const RETRY_CODES = new Set(['TimeoutError', 'RequestTimeout', 'RequestTimeTooSkewed', 'SlowDown', 'InternalError', 'ServiceUnavailable']);

type Sdk = typeof import('@aws-sdk/client-s3');

export interface S3SourceOptions {
  /** MaxKeys per ListObjectsV2 page; the server's own limit (1000) when unset (tests) */
  pageSize?: number;
}

/**
 * A folder of a bucket (S3 or compatible) as a tree: keys split at '/', folders virtual. Paths
 * are '/' + key, so the root is '/' + prefix. Keys ending in '/' are folder markers, not files.
 */
export class S3Source implements RemoteSource {
  readonly label: string;
  readonly root: string;
  private readonly clientConfig: S3ClientConfig;
  private client: S3Client | undefined;

  constructor(
    private readonly cfg: S3SourceConfig,
    private readonly opts: S3SourceOptions = {},
  ) {
    const prefix = (cfg.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.root = `/${prefix}`;
    this.label = `s3://${cfg.bucket}${prefix ? `/${prefix}` : ''}${cfg.endpoint ? ` at ${safeEndpoint(cfg.endpoint)}` : ''}`;
    this.clientConfig = {
      region: cfg.region ?? 'us-east-1',
      ...(cfg.endpoint ? { endpoint: cfg.endpoint } : {}),
      forcePathStyle: cfg.forcePathStyle ?? cfg.endpoint !== undefined,
      ...(cfg.accessKeyId ? { credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey ?? '' } } : {}),
      // resilient() retries; SDK retries underneath would multiply the attempts
      maxAttempts: 1,
      // a ranged GET has no whole-object checksum to check, and custom endpoints rarely send one
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // a connection that died silently must fail (and be resumed), not hang the backup; a reader
      // that holds the body paused longer gets it cut too, and resumed from where it was
      requestHandler: { connectionTimeout: 30_000, requestTimeout: 120_000 },
      // without a logger the SDK writes warnings to the console
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error() {} },
    };
  }

  /** No session in S3: one small listing checks the credentials and the bucket up front. */
  async connect(): Promise<void> {
    await this.send((s) => new s.ListObjectsV2Command({ Bucket: this.cfg.bucket, Prefix: this.dirPrefix(this.root), MaxKeys: 1 }), this.root);
  }

  async list(dir: string): Promise<RemoteEntry[]> {
    const prefix = this.dirPrefix(dir);
    // keyed by kind too: a bucket may hold both an object `a` and keys under `a/`
    const entries = new Map<string, RemoteEntry>();
    let marker = false;
    let token: string | undefined;
    do {
      const page = await this.send<ListObjectsV2CommandOutput>(
        (s) => new s.ListObjectsV2Command({
          Bucket: this.cfg.bucket,
          Prefix: prefix,
          Delimiter: '/',
          ...(token ? { ContinuationToken: token } : {}),
          ...(this.opts.pageSize ? { MaxKeys: this.opts.pageSize } : {}),
        }),
        dir,
      );
      for (const o of page.Contents ?? []) {
        const name = o.Key?.slice(prefix.length) ?? '';
        if (name === '') marker = true; // `dir/` itself: the folder exists, empty or not
        else if (!name.endsWith('/')) entries.set(`f:${name}`, { name, type: 'file', size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() ?? 0 });
      }
      for (const cp of page.CommonPrefixes ?? []) {
        const name = cp.Prefix?.slice(prefix.length, -1);
        if (name !== undefined) entries.set(`d:${name}`, { name, type: 'dir', size: 0, mtimeMs: 0 });
      }
      const next = page.IsTruncated ? page.NextContinuationToken : undefined;
      if (page.IsTruncated && (!next || next === token)) {
        throw new CerberusError('SOURCE', `${this.label}: listing ${dir}: the server said the listing goes on but gave no new continuation token`);
      }
      token = next;
    } while (token);
    // a folder is its keys: none under a prefix (and no marker) means no such folder, but the
    // bucket's root is there as long as the bucket is
    if (entries.size === 0 && !marker && prefix !== '') throw pathError('ENOENT', `${dir}: no such folder in bucket ${this.cfg.bucket}`);
    return [...entries.values()];
  }

  async read(file: string, offset: number): Promise<Readable> {
    const key = file.replace(/^\/+/, '');
    let res: { Body?: unknown; ContentLength?: number; ContentRange?: string };
    try {
      // no Range from 0: an empty object would answer `bytes=0-` with 416
      res = await this.send<typeof res>((s) => new s.GetObjectCommand({ Bucket: this.cfg.bucket, Key: key, ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}) }), file);
    } catch (err) {
      // from past the end: nothing left to read
      if (offset > 0 && statusOf(err) === 416) return Readable.from([]);
      throw err;
    }
    const body = res.Body instanceof Readable ? res.Body : res.Body ? Readable.fromWeb(res.Body as never) : Readable.from([]);
    // a server that ignores Range sends from 0: skip what was not asked for
    const served = /^bytes (\d+)-/.exec(res.ContentRange ?? '');
    const from = offset > 0 ? (served ? Number(served[1]) : 0) : 0;
    if (from > offset) {
      body.destroy();
      throw new CerberusError('SOURCE', `${this.label}: ${file}: asked for bytes from ${offset}, the server sent from ${from}`);
    }
    return exactly(body, offset - from, res.ContentLength, file);
  }

  async close(): Promise<void> {
    this.client?.destroy();
    this.client = undefined;
  }

  transient(err: unknown): boolean {
    if (err instanceof CerberusError) return false;
    const code = (err as { code?: unknown })?.code;
    if (typeof code === 'string' && PATH_CODES.has(code)) return false;
    const status = statusOf(err);
    if (status !== undefined && (status >= 500 || status === 408 || status === 429)) return true;
    const name = errorName(err);
    if (name !== undefined && RETRY_CODES.has(name)) return true;
    if (networkCode(err) !== undefined) return true;
    const message = err instanceof Error ? err.message : '';
    return /socket hang up|aborted|ended after|timed? ?out/i.test(message);
  }

  private dirPrefix(dir: string): string {
    const key = dir.replace(/^\/+|\/+$/g, '');
    return key === '' ? '' : `${key}/`;
  }

  /** `command` builds the SDK command once the SDK is loaded: on first use, so a job without S3 starts sooner. */
  private async send<T>(command: (sdk: Sdk) => unknown, what: string): Promise<T> {
    const sdk = await import('@aws-sdk/client-s3');
    this.client ??= new sdk.S3Client(this.clientConfig);
    const send = this.client.send as unknown as (c: unknown) => Promise<T>;
    try {
      return await send.call(this.client, command(sdk));
    } catch (err) {
      throw this.classify(err, what);
    }
  }

  private classify(err: unknown, what: string): unknown {
    const name = errorName(err);
    const status = statusOf(err);
    if (name === 'NoSuchBucket') {
      return new CerberusError('SOURCE', `${this.label}: bucket ${this.cfg.bucket} does not exist; check the bucket, endpoint and region`, { cause: err });
    }
    if ((name !== undefined && LOGIN_CODES.has(name)) || (status === 403 && name !== 'AccessDenied')) {
      const who = this.cfg.accessKeyId ? `access key ${this.cfg.accessKeyId}` : 'the AWS credentials of this machine';
      return new CerberusError('SOURCE', `${this.label}: the server refused the login for ${who} (${name ?? status}); check accessKeyId and secretAccessKey`, { cause: err });
    }
    if (name === 'AccessDenied' || status === 403) {
      return new CerberusError('SOURCE', `${this.label}: ${what}: access denied; check that the key may list and read bucket ${this.cfg.bucket}`, { cause: err });
    }
    if (name === 'NoSuchKey' || status === 404) return pathError('ENOENT', `${what}: no such object in bucket ${this.cfg.bucket}`, err);
    if (name === 'PermanentRedirect' || name === 'AuthorizationHeaderMalformed') {
      return new CerberusError('SOURCE', `${this.label}: ${name}; check the region and endpoint`, { cause: err });
    }
    return err;
  }
}

function errorName(err: unknown): string | undefined {
  const e = err as { name?: unknown; Code?: unknown } | undefined;
  return typeof e?.Code === 'string' ? e.Code : typeof e?.name === 'string' && e.name !== 'Error' ? e.name : undefined;
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return typeof s === 'number' ? s : undefined;
}

/**
 * The body less its first `skip` bytes, failing when it ends short of its Content-Length: a
 * connection cut mid-body may look like a clean end to the reader.
 */
function exactly(body: Readable, skip: number, length: number | undefined, file: string): Readable {
  let seen = 0;
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const start = Math.max(0, Math.min(chunk.length, skip - seen));
      seen += chunk.length;
      cb(null, start > 0 ? chunk.subarray(start) : chunk);
    },
    flush(cb) {
      if (length !== undefined && seen < length) cb(Object.assign(new Error(`${file}: the body ended after ${seen} of ${length} bytes`), { code: 'ECONNRESET' }));
      else cb();
    },
  });
  body.once('error', (err) => out.destroy(err));
  out.once('close', () => body.destroy());
  body.pipe(out);
  return out;
}
