import { Transform, type Readable } from 'node:stream';
import type { BodySource, RequestOptions } from './backend.js';
import { pipeThrough, type Layer, type Next, type Request } from './layer.js';

/**
 * One rate for everything a target moves, uploads and downloads together, shared by all
 * transfers in flight: `bwlimit: 2MiB/s` means the uplink sees 2 MiB/s however many puts run.
 */
export class BandwidthLayer implements Layer {
  /** when the bytes handed out so far may all have passed at the configured rate */
  private nextFree = 0;
  /** a short burst is fine; it keeps the rate smooth without sleeping for every chunk */
  private readonly burstMs = 100;

  constructor(private readonly bytesPerSecond: number) {}

  async call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T> {
    if (req.verb === 'put' && body) return next(opts, { body: () => pipeThrough(body(), this.throttle()) });
    const result = await next(opts, {});
    if (req.verb === 'get') return pipeThrough(result as unknown as Readable, this.throttle()) as unknown as T;
    return result;
  }

  /** ms to wait before passing `n` more bytes */
  private reserve(n: number): number {
    const now = Date.now();
    // an idle link banks at most burstMs of credit; counting it again in the wait would double it
    this.nextFree = Math.max(this.nextFree, now - this.burstMs) + (n * 1000) / this.bytesPerSecond;
    return Math.max(0, this.nextFree - now);
  }

  private throttle(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        const wait = this.reserve(chunk.length);
        if (wait <= 0) cb(null, chunk);
        else setTimeout(() => cb(null, chunk), wait);
      },
    });
  }
}
