import { PassThrough, type Readable } from 'node:stream';
import type { BodySource, ByteRange, RequestOptions } from './backend.js';
import { StorageError, networkCode } from './errors.js';
import { describeRequest, type Layer, type Next, type Request } from './layer.js';

export interface RetryPolicy {
  /** further attempts after the first */
  retries: number;
  /** first backoff; doubles each time, with jitter */
  baseDelayMs: number;
  maxDelayMs: number;
  /** a Retry-After longer than this is not waited for */
  maxRetryAfterMs: number;
  /**
   * A get that breaks midway goes on from where it broke. Off for a local disk, whose read
   * errors are not worth a retry: there it would only cost a pass-through stream per get.
   */
  resumeGets?: boolean;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseDelayMs: 500, maxDelayMs: 30_000, maxRetryAfterMs: 10 * 60_000 };

export function isRetryable(err: unknown): boolean {
  if (err instanceof StorageError) return err.retryable;
  return networkCode(err) !== undefined;
}

/**
 * Sends a failed call again after exponential backoff with full jitter, honouring
 * Retry-After. A put starts again from the beginning of its body. A download that breaks
 * mid-stream resumes with a range request from the first byte not yet delivered.
 */
export class RetryLayer implements Layer {
  constructor(
    private readonly target: string,
    private readonly policy: RetryPolicy,
    private readonly log: (message: string) => void,
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void> = abortableSleep,
  ) {}

  async call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T> {
    if (req.verb === 'get' && this.policy.resumeGets !== false) return (await this.resumable(req, opts, next as unknown as Next<Readable>)) as unknown as T;
    // a folder copy that failed halfway leaves part of `to`, which a second try would refuse to
    // overwrite; copyFolder cleans up and copies file by file, each copy retried on its own
    if (req.verb === 'copyTree') return next(opts, {});
    return this.attempts(req, opts, () => next(opts, body ? { body } : {}));
  }

  private async attempts<T>(req: Request, opts: RequestOptions, once: () => Promise<T>, already = 0): Promise<T> {
    for (let attempt = already + 1; ; attempt++) {
      try {
        return await once();
      } catch (err) {
        if (opts.signal?.aborted || !isRetryable(err)) throw err;
        if (attempt > this.policy.retries) throw exhausted(err, attempt, this.target, req);
        const wait = this.delay(attempt, err);
        if (wait === undefined) throw exhausted(err, attempt, this.target, req);
        this.log(`target ${this.target}: ${describeRequest(req)} failed (${brief(err)}); retry ${attempt} of ${this.policy.retries} in ${(wait / 1000).toFixed(1)}s`);
        await this.sleep(wait, opts.signal);
      }
    }
  }

  /** undefined when the server asks for a longer pause than we are willing to wait */
  private delay(attempt: number, err: unknown): number | undefined {
    const backoff = Math.min(this.policy.maxDelayMs, this.policy.baseDelayMs * 2 ** (attempt - 1));
    const jittered = backoff / 2 + Math.random() * (backoff / 2);
    const after = err instanceof StorageError ? err.retryAfterMs : undefined;
    if (after === undefined) return jittered;
    if (after > this.policy.maxRetryAfterMs) return undefined;
    return Math.max(after, jittered);
  }

  private async resumable(req: Request, opts: RequestOptions, next: Next<Readable>): Promise<Readable> {
    const start = req.range?.start ?? 0;
    const end = req.range?.end;
    let delivered = 0;
    let failures = 0;
    const open = (from: number) => {
      const range: ByteRange | undefined = from === 0 && !req.range ? undefined : end === undefined ? { start: from } : { start: from, end };
      return next(opts, range ? { range } : {});
    };
    const first = await this.attempts(req, opts, () => open(start));
    const out = new PassThrough({ highWaterMark: first.readableHighWaterMark });
    let current = first;
    out.on('drain', () => current.resume());
    // a reader that stops early must not leave the connection open
    out.once('close', () => current.destroy());
    const pump = (source: Readable) => {
      current = source;
      source.on('data', (c: Buffer) => {
        delivered += c.length;
        if (!out.write(c)) source.pause();
      });
      source.once('end', () => out.end());
      source.once('error', (err) => {
        source.removeAllListeners('data');
        if (out.destroyed) return;
        if (opts.signal?.aborted || !isRetryable(err)) {
          out.destroy(err);
          return;
        }
        // only the end of the response was lost: a range from past its end would be refused
        if (end !== undefined && start + delivered > end) {
          out.end();
          return;
        }
        failures++;
        if (failures > this.policy.retries) {
          out.destroy(exhausted(err, failures, this.target, req));
          return;
        }
        const wait = this.delay(failures, err) ?? 0;
        this.log(`target ${this.target}: ${describeRequest(req)} broke after ${delivered} bytes (${brief(err)}); resuming in ${(wait / 1000).toFixed(1)}s`);
        this.sleep(wait, opts.signal)
          // a reader that left during the pause needs no new request
          .then(() => (out.destroyed ? undefined : this.attempts(req, opts, () => open(start + delivered), failures)))
          .then(
            (s) => {
              if (!s) return;
              if (out.destroyed) s.destroy();
              else pump(s);
            },
            (e: unknown) => out.destroy(e as Error),
          );
      });
    };
    pump(first);
    return out;
  }
}

function brief(err: unknown): string {
  if (err instanceof StorageError) return err.status ? `HTTP ${err.status}` : err.message.replace(/^target [^:]+: /, '');
  return networkCode(err) ?? (err instanceof Error ? err.message : String(err));
}

function exhausted(err: unknown, attempts: number, target: string, req: Request): StorageError {
  const base = err instanceof Error ? err.message : String(err);
  const message = base.startsWith(`target ${target}`) ? base : `target ${target}: ${describeRequest(req)}: ${base}`;
  return new StorageError(`${message} (gave up after ${attempts} attempts)`, {
    retryable: false,
    ...(err instanceof StorageError && err.status !== undefined ? { status: err.status } : {}),
    hint: err instanceof StorageError && err.hint ? err.hint : 'check the server and the network; the next run catches up',
    cause: err,
  });
}

function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
