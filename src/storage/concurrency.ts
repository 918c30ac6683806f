import type { Readable } from 'node:stream';
import type { BodySource, RequestOptions } from './backend.js';
import type { Layer, Next, Request } from './layer.js';

/** Puts below this size skip the queue: lock heartbeats and small metadata must not wait behind volumes. */
export const BULK_BYTES = 1 << 20;

/**
 * At most `limit` transfers in flight: puts of bulk size, gets and folder copies, a get
 * holding its slot until its body is read or dropped. Listing and other small calls are not queued.
 */
export class ConcurrencyLayer implements Layer {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T> {
    const bulk = req.verb === 'get' || req.verb === 'copyTree' || (req.verb === 'put' && (req.size ?? 0) >= BULK_BYTES);
    if (!bulk) return next(opts, body ? { body } : {});
    await this.acquire(opts.signal);
    let held = true;
    const release = () => {
      if (!held) return;
      held = false;
      this.active--;
      this.waiting.shift()?.();
    };
    try {
      const result = await next(opts, body ? { body } : {});
      if (req.verb === 'get') {
        const stream = result as unknown as Readable;
        stream.once('close', release);
        if (stream.destroyed) release();
        return result;
      }
      release();
      return result;
    } catch (err) {
      release();
      throw err;
    }
  }

  private acquire(signal?: AbortSignal): Promise<void> {
    // 'abort' does not fire again for a signal already aborted: the caller would wait for a slot it no longer wants
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal?.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiting.push(go);
    });
  }
}
