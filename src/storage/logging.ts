import type { BodySource, RequestOptions } from './backend.js';
import { describeRequest, type Layer, type Next, type Request } from './layer.js';

/** One debug line per storage call, with its outcome and time: what `CERBERUS_DEBUG=1` shows. */
export class LoggingLayer implements Layer {
  constructor(
    private readonly target: string,
    private readonly debug: (message: string) => void,
  ) {}

  async call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T> {
    const started = Date.now();
    const what = `${this.target}: ${describeRequest(req)}${req.size !== undefined ? ` (${req.size} bytes)` : ''}`;
    try {
      const result = await next(opts, body ? { body } : {});
      this.debug(`${what}: ok in ${Date.now() - started} ms`);
      return result;
    } catch (err) {
      this.debug(`${what}: failed in ${Date.now() - started} ms: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
  }
}
