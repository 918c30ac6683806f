import { Readable, Transform } from 'node:stream';
import type { BodySource, RequestOptions } from './backend.js';
import { StorageError } from './errors.js';
import { describeRequest, pipeThrough, type Layer, type Next, type Request } from './layer.js';

/**
 * Aborts a call that goes silent for `ms`: no response, no body bytes moving. Silence, not
 * total time, because a 512 MiB volume on a slow uplink may rightly take many minutes.
 * A download only counts as silent while its reader is waiting for bytes.
 */
export class TimeoutLayer implements Layer {
  /**
   * A folder copy on the server (WebDAV COPY Depth infinity) answers only when every file is
   * copied, with no progress before: gigabytes of a generation may rightly take this long.
   * So may a local flush, which writes out everything a generation left in the page cache.
   */
  static readonly TREE_COPY_MS = 30 * 60_000;

  constructor(
    private readonly target: string,
    private readonly ms: number,
  ) {}

  async call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T> {
    const ms = req.verb === 'copyTree' || req.verb === 'removeTree' || req.verb === 'flush' ? Math.max(this.ms, TimeoutLayer.TREE_COPY_MS) : this.ms;
    const controller = new AbortController();
    const timedOut = () =>
      new StorageError(`target ${this.target}: ${describeRequest(req)}: no response for ${ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)}s`}`, {
        retryable: true,
        hint: 'the server or the network stalled; raise the target\'s timeout if it is just slow',
      });
    let timer: NodeJS.Timeout | undefined;
    // once the call has returned, a late progress report must not start the clock again
    let settled = false;
    const arm = () => {
      clearTimeout(timer);
      if (!settled) timer = setTimeout(() => controller.abort(timedOut()), ms);
    };
    const signal = opts.signal ? AbortSignal.any([opts.signal, controller.signal]) : controller.signal;
    const progress = () => {
      arm();
      opts.progress?.();
    };
    const bodies: Readable[] = [];
    const watched: BodySource | undefined = body
      ? () => {
          const s = pipeThrough(body(), tick(progress));
          bodies.push(s);
          return s;
        }
      : undefined;
    // a backend that ignores the signal would otherwise keep the body's file open for good
    controller.signal.addEventListener('abort', () => bodies.forEach((s) => s.destroy(controller.signal.reason as Error)), { once: true });

    arm();
    try {
      const result = await raceAbort(next({ ...opts, signal, progress }, watched ? { body: watched } : {}), controller.signal);
      if (req.verb === 'get') return idleWatch(result as unknown as Readable, this.ms, timedOut, controller) as unknown as T;
      return result;
    } catch (err) {
      // a backend reports our abort in its own words; ours says what happened
      if (controller.signal.aborted && controller.signal.reason instanceof StorageError) throw controller.signal.reason;
      throw err;
    } finally {
      // also after a get: its body has its own watch, and a failed get must not abort later
      settled = true;
      clearTimeout(timer);
    }
  }
}

/** Rejects when the signal aborts even if the call below ignores it. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted && v instanceof Readable) v.destroy();
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

function tick(onChunk: () => void): Transform {
  return new Transform({
    transform(chunk, _enc, cb) {
      onChunk();
      cb(null, chunk);
    },
  });
}

/** Passes `source` through; fails it when its reader waits more than `ms` for the next bytes. */
function idleWatch(source: Readable, ms: number, timedOut: () => Error, controller: AbortController): Readable {
  let timer: NodeJS.Timeout | undefined;
  const out = new Readable({
    highWaterMark: source.readableHighWaterMark,
    read() {
      // the reader wants more: the source's silence counts from now
      if (!timer) {
        timer = setTimeout(() => {
          const err = timedOut();
          controller.abort(err);
          // directly, not via the source's 'error': a source may not honour destroy
          out.destroy(err);
        }, ms);
      }
      source.resume();
    },
    destroy(err, cb) {
      clearTimeout(timer);
      source.destroy(err ?? undefined);
      cb(err);
    },
  });
  source.on('data', (chunk: Buffer) => {
    clearTimeout(timer);
    timer = undefined;
    if (!out.push(chunk)) source.pause();
  });
  source.once('end', () => {
    clearTimeout(timer);
    out.push(null);
  });
  source.once('error', (err) => {
    clearTimeout(timer);
    out.destroy(err);
  });
  source.pause();
  return out;
}
