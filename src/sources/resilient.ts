import { PassThrough, type Readable } from 'node:stream';
import { CerberusError } from '../errors.js';
import { networkCode } from '../storage/index.js';
import type { RemoteEntry, RemoteSource } from './types.js';

export interface ResilientOptions {
  /** tries per operation, the first included (default 5) */
  attempts?: number;
  /** the first pause; doubles each time, at most 30 s (default 500 ms) */
  baseDelayMs?: number;
  /** told before each pause, e.g. to log "list /a failed (ECONNRESET); retry 2 of 5" */
  onRetry?: (what: string, attempt: number, err: Error) => void;
  sleep?: (ms: number) => Promise<void>;
}

const MAX_DELAY_MS = 30_000;

/**
 * The same source, riding out a connection that breaks: on a failure the source calls
 * transient (a reset, a timeout, a server restarting) it closes, connects again and repeats the
 * operation, with a doubling pause between tries. A refused login and every other failure pass
 * at once. A read that breaks mid-file goes on from the byte it reached, so the reader sees one
 * unbroken stream; the tries count again from the first whenever bytes came through.
 */
export function resilient(source: RemoteSource, opts: ResilientOptions = {}): RemoteSource {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const base = opts.baseDelayMs ?? 500;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const transient = (err: unknown) => !(err instanceof CerberusError) && (source.transient ? source.transient(err) : networkCode(err) !== undefined);
  let connected = false;

  /** `op` until it succeeds, fails for good, or has used `attempts` tries counting from `used`. */
  async function retrying<T>(what: string, op: () => Promise<T>, used = 0): Promise<T> {
    for (let attempt = used + 1; ; attempt++) {
      try {
        if (!connected) {
          await source.connect();
          connected = true;
        }
        return await op();
      } catch (err) {
        if (!transient(err)) throw connected ? err : unreachable(source, what, err, attempt, false);
        connected = false;
        await source.close().catch(() => undefined);
        if (attempt >= attempts) throw unreachable(source, what, err, attempt, true);
        opts.onRetry?.(what, attempt, asError(err));
        await sleep(Math.min(MAX_DELAY_MS, base * 2 ** (attempt - 1)));
      }
    }
  }

  function read(file: string, offset: number): Promise<Readable> {
    return retrying(`read ${file}`, () => source.read(file, offset)).then((first) => {
      const out = new PassThrough({ highWaterMark: first.readableHighWaterMark });
      let current = first;
      let reached = offset;
      /** failures since bytes last came through */
      let failures = 0;
      out.on('drain', () => current.resume());
      // a reader that stops early must not leave the transfer running
      out.once('close', () => current.destroy());
      const pump = (stream: Readable) => {
        current = stream;
        let moved = false;
        stream.on('data', (chunk: Buffer) => {
          reached += chunk.length;
          moved = true;
          if (!out.write(chunk)) stream.pause();
        });
        stream.once('end', () => out.end());
        stream.once('error', (err) => {
          stream.removeAllListeners('data');
          if (out.destroyed) return;
          if (!transient(err)) return void out.destroy(err);
          failures = moved ? 1 : failures + 1;
          connected = false;
          const what = `read ${file}`;
          void source
            .close()
            .catch(() => undefined)
            .then(async () => {
              if (failures >= attempts) throw unreachable(source, what, err, failures, true);
              opts.onRetry?.(what, failures, err);
              await sleep(Math.min(MAX_DELAY_MS, base * 2 ** (failures - 1)));
              // a reader that left during the pause needs no new transfer
              if (out.destroyed) return undefined;
              return retrying(what, () => source.read(file, reached), failures);
            })
            .then(
              (next) => {
                if (!next) return;
                if (out.destroyed) next.destroy();
                else pump(next);
              },
              (e: unknown) => out.destroy(asError(e)),
            );
        });
      };
      pump(first);
      return out;
    });
  }

  const wrapped: RemoteSource = {
    label: source.label,
    root: source.root,
    get hostKeySeen() {
      return source.hostKeySeen;
    },
    connect: () => retrying('connect', async () => undefined),
    list: (dir: string): Promise<RemoteEntry[]> => retrying(`list ${dir}`, () => source.list(dir)),
    read,
    async close() {
      connected = false;
      await source.close();
    },
    transient,
  };
  return wrapped;
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** The failure that ends the tries, one line: what, where, why, and what to do. */
function unreachable(source: RemoteSource, what: string, err: unknown, attempts: number, transient: boolean): unknown {
  if (err instanceof CerberusError) return err;
  const e = err as { message?: unknown; code?: unknown };
  const why = `${typeof e?.message === 'string' ? e.message : String(err)}${typeof e?.code === 'string' || typeof e?.code === 'number' ? ` [${String(e.code)}]` : ''}`;
  const oneLine = why.replace(/\s+/g, ' ').trim();
  if (transient) {
    return new CerberusError('SOURCE', `${source.label}: ${what} failed after ${attempts} attempts: ${oneLine}`, {
      hint: 'check that the server is up and reachable; the next run tries again',
      cause: err,
    });
  }
  // never reached the server, or it answered the login with something unexpected
  return new CerberusError('SOURCE', `${source.label}: cannot connect: ${oneLine}`, { hint: 'check host, port and the network', cause: err });
}
