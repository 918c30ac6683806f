/**
 * The storage layers one at a time, around a real LocalBackend behind a backend that fails on
 * demand. Timing assertions are lower bounds only: a loaded machine may be slow, never fast.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo, RequestOptions } from '../../src/storage/backend.js';
import { BandwidthLayer } from '../../src/storage/bwlimit.js';
import { BULK_BYTES, ConcurrencyLayer } from '../../src/storage/concurrency.js';
import { StorageError, httpStorageError } from '../../src/storage/errors.js';
import { LayeredBackend, type Layer, type Verb } from '../../src/storage/layer.js';
import { LocalBackend } from '../../src/storage/local.js';
import { LoggingLayer } from '../../src/storage/logging.js';
import { RetryLayer, type RetryPolicy } from '../../src/storage/retry.js';
import { TimeoutLayer } from '../../src/storage/timeout.js';
import { errorOf } from '../helpers/errors.js';

const MiB = 1 << 20;
const TMP = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();

let root: string;
let local: LocalBackend;
let f: Faulty;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(TMP, 'cerberus-layers-'));
  local = new LocalBackend(root);
  f = new Faulty(local);
});
afterEach(async () => {
  await fsp.rm(root, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// the fault-injecting backend

type Fault =
  /** the call fails; a put first reads the start of its body, as an upload cut short would */
  | { kind: 'throw'; error: unknown }
  /** the call never answers and ignores its abort signal */
  | { kind: 'stall' }
  /** get: the stream delivers `afterBytes`, then fails */
  | { kind: 'break'; afterBytes: number; error: unknown }
  /** get: the stream delivers `afterBytes`, then neither ends nor fails */
  | { kind: 'go-silent'; afterBytes: number }
  /** put: reads `afterBytes` of the body, then stops reading and never answers */
  | { kind: 'stop-reading'; afterBytes: number }
  /** put: reads the body, then reports progress every `everyMs` for `forMs` (a read-back check) before storing */
  | { kind: 'busy'; forMs: number; everyMs: number };

class Faulty implements Backend {
  readonly description = 'faulty';
  readonly capabilities: Capabilities;
  readonly calls: Record<Verb, number> = { put: 0, get: 0, stat: 0, list: 0, remove: 0, mkdir: 0, move: 0, copy: 0, copyTree: 0, removeTree: 0, flush: 0 };
  /** the range of every get, as it reached the backend */
  readonly ranges: Array<ByteRange | undefined> = [];
  /** the first chunk of every put body, as it reached the backend */
  readonly heads: Buffer[] = [];
  /** every get stream handed out */
  readonly streams: Readable[] = [];
  /** the signal of every call */
  readonly signals: Array<AbortSignal | undefined> = [];
  /** puts and gets in progress, and the most seen at once */
  inFlight = 0;
  maxInFlight = 0;
  /** each put and get lingers this long, so that overlapping calls overlap */
  delayMs = 0;
  private readonly faults = new Map<Verb, Fault[]>();

  constructor(private readonly inner: LocalBackend) {
    this.capabilities = inner.capabilities;
  }

  /** the next `times` calls of `verb` meet `fault` */
  inject(verb: Verb, fault: Fault, times = 1): this {
    const q = this.faults.get(verb) ?? [];
    for (let i = 0; i < times; i++) q.push(fault);
    this.faults.set(verb, q);
    return this;
  }

  private take(verb: Verb, opts: RequestOptions | undefined): Fault | undefined {
    this.calls[verb]++;
    this.signals.push(opts?.signal);
    return this.faults.get(verb)?.shift();
  }

  private async busy<T>(work: () => Promise<T>): Promise<T> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.delayMs) await sleep(this.delayMs);
      return await work();
    } finally {
      this.inFlight--;
    }
  }

  async put(p: string, body: BodySource, size: number, opts?: RequestOptions): Promise<void> {
    const fault = this.take('put', opts);
    if (fault?.kind === 'stall') return never();
    await this.busy(async () => {
      const src = body();
      const it = src[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
      const first = await it.next();
      const head = first.done ? Buffer.alloc(0) : first.value;
      this.heads.push(head);
      if (fault?.kind === 'throw') {
        src.destroy();
        throw fault.error;
      }
      if (fault?.kind === 'stop-reading') {
        for (let seen = head.length; seen < fault.afterBytes; ) {
          const r = await it.next();
          if (r.done) break;
          seen += r.value.length;
        }
        return never();
      }
      const rest = async function* () {
        yield head;
        for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
      };
      if (fault?.kind === 'busy') {
        const all = await collect(Readable.from(rest()));
        for (const until = Date.now() + fault.forMs; Date.now() < until; ) {
          await sleep(fault.everyMs);
          opts?.progress?.();
        }
        return this.inner.put(p, () => Readable.from([all]), size);
      }
      return this.inner.put(p, () => Readable.from(rest()), size);
    });
  }

  async get(p: string, range?: ByteRange, opts?: RequestOptions): Promise<Readable> {
    const fault = this.take('get', opts);
    this.ranges.push(range);
    if (fault?.kind === 'stall') return never();
    if (fault?.kind === 'throw') throw fault.error;
    return this.busy(async () => {
      let out = await this.inner.get(p, range);
      if (fault?.kind === 'break' || fault?.kind === 'go-silent') {
        const data = await collect(out);
        out = serve(data.subarray(0, fault.afterBytes), fault.kind === 'break' ? { error: fault.error } : 'silent');
      }
      this.streams.push(out);
      return out;
    });
  }

  private async simple<T>(verb: Verb, opts: RequestOptions | undefined, work: () => Promise<T>): Promise<T> {
    const fault = this.take(verb, opts);
    if (fault?.kind === 'stall') return never();
    if (fault?.kind === 'throw') throw fault.error;
    return work();
  }

  stat(p: string, opts?: RequestOptions): Promise<ObjectInfo | undefined> {
    return this.simple('stat', opts, () => this.inner.stat(p));
  }
  list(dir: string, opts?: RequestOptions): Promise<ObjectInfo[]> {
    return this.simple('list', opts, () => this.inner.list(dir));
  }
  remove(p: string, opts?: RequestOptions): Promise<void> {
    return this.simple('remove', opts, () => this.inner.remove(p));
  }
  mkdir(p: string, opts?: RequestOptions): Promise<void> {
    return this.simple('mkdir', opts, () => this.inner.mkdir(p));
  }
}

function never<T>(): Promise<T> {
  return new Promise<T>(() => undefined);
}

/** `data` in small chunks; then, once the reader has taken all of it, fails or goes silent */
function serve(data: Buffer, then: { error: unknown } | 'silent'): Readable {
  let at = 0;
  return new Readable({
    highWaterMark: 16 * 1024,
    read() {
      if (at < data.length) {
        const n = Math.min(4096, data.length - at);
        this.push(data.subarray(at, at + n));
        at += n;
        return;
      }
      if (then === 'silent') return;
      // failing while bytes are still buffered would drop them, and the resume offset with them
      const fail = () => (this.readableLength === 0 ? this.destroy(then.error as Error) : setTimeout(fail, 2));
      fail();
    },
  });
}

async function collect(s: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

/** A body source over `data` that counts its calls and keeps every stream it made. */
function source(data: Buffer, chunk = 64 * 1024) {
  const streams: Readable[] = [];
  const body: BodySource = () => {
    const parts: Buffer[] = [];
    for (let i = 0; i < data.length; i += chunk) parts.push(data.subarray(i, i + chunk));
    const s = Readable.from(parts);
    streams.push(s);
    return s;
  };
  return { body, streams };
}

const reset = (what = 'read ECONNRESET') => Object.assign(new Error(what), { code: 'ECONNRESET' });
const onDisk = (p: string) => fsp.readFile(path.join(root, p));
const store = (p: string, data: Buffer) => local.put(p, () => Readable.from([data]), data.length);

/** settles within `ms`? (a check that something is still waiting, not a timing assertion) */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  await sleep(ms);
  return done;
}

/** what a promise rejects with, whatever it is */
async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

/** the error a stream fails with, and the bytes it delivered before */
async function readUntilFailure(s: Readable): Promise<{ bytes: Buffer; error: unknown }> {
  const out: Buffer[] = [];
  try {
    for await (const c of s) out.push(c as Buffer);
  } catch (error) {
    return { bytes: Buffer.concat(out), error };
  }
  throw new Error(`stream ended without failing after ${Buffer.concat(out).length} bytes`);
}

// ---------------------------------------------------------------------------------------------

describe('RetryLayer', () => {
  let waits: number[];
  let logs: string[];
  const policy: RetryPolicy = { retries: 2, baseDelayMs: 100, maxDelayMs: 150, maxRetryAfterMs: 5_000 };
  // backoff is asserted, not endured
  const fakeSleep = async (ms: number) => {
    waits.push(ms);
  };
  const retrying = (p: Partial<RetryPolicy> = {}) => new LayeredBackend(f, new RetryLayer('nas', { ...policy, ...p }, (m) => logs.push(m), fakeSleep));

  beforeEach(() => {
    waits = [];
    logs = [];
  });

  it('sends a put again from the start of its body after 503s, storing the exact bytes', async () => {
    const data = randomBytes(300_000);
    const { body, streams } = source(data);
    f.inject('put', { kind: 'throw', error: httpStorageError('nas', 'put a/b.bin', 503) }, 2);
    await retrying().put('a/b.bin', body, data.length);
    expect(streams).toHaveLength(3);
    expect(f.calls.put).toBe(3);
    expect(f.heads).toHaveLength(3);
    for (const head of f.heads) {
      expect(head.length).toBeGreaterThan(0);
      expect(head.equals(data.subarray(0, head.length))).toBe(true);
    }
    expect((await onDisk('a/b.bin')).equals(data)).toBe(true);
    // exponential with jitter: attempt n waits between half and all of min(max, base·2^(n-1))
    expect(waits).toHaveLength(2);
    expect(waits[0]).toBeGreaterThanOrEqual(50);
    expect(waits[0]).toBeLessThanOrEqual(100);
    expect(waits[1]).toBeGreaterThanOrEqual(75);
    expect(waits[1]).toBeLessThanOrEqual(150);
    expect(logs).toHaveLength(2);
    expect(logs[0]).toMatch(/^target nas: put a\/b\.bin failed \(HTTP 503\); retry 1 of 2 in/);
  });

  it('does not retry a 401', async () => {
    const data = randomBytes(1000);
    f.inject('put', { kind: 'throw', error: httpStorageError('nas', 'put x', 401) });
    const err = await errorOf(retrying().put('x', source(data).body, data.length));
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).status).toBe(401);
    expect(err.message).not.toMatch(/gave up/);
    expect(f.calls.put).toBe(1);
    expect(waits).toEqual([]);
  });

  it('gives up after retries+1 attempts with a non-retryable error that names the target', async () => {
    f.inject('stat', { kind: 'throw', error: httpStorageError('nas', 'stat a', 503) }, 5);
    const err = await errorOf(retrying().stat('a'));
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).retryable).toBe(false);
    expect((err as StorageError).status).toBe(503);
    expect(err.message).toMatch(/^target nas: .*gave up after 3 attempts/);
    expect(err.hint).toBeTruthy();
    expect(f.calls.stat).toBe(3);
    expect(waits).toHaveLength(2);
  });

  it('names the target and the call when the last error did not', async () => {
    f.inject('list', { kind: 'throw', error: reset() }, 3);
    const err = await errorOf(retrying().list('gen'));
    expect(err.message).toBe('target nas: list gen: read ECONNRESET (gave up after 3 attempts)');
    expect(f.calls.list).toBe(3);
  });

  it('waits as long as Retry-After asks', async () => {
    f.inject('mkdir', { kind: 'throw', error: httpStorageError('nas', 'mkdir d', 429, { retryAfter: '2' }) });
    f.inject('mkdir', { kind: 'throw', error: httpStorageError('nas', 'mkdir d', 503, { retryAfter: '1' }) });
    await retrying().mkdir('d');
    expect(waits).toEqual([2000, 1000]);
    expect(f.calls.mkdir).toBe(3);
    expect((await fsp.stat(path.join(root, 'd'))).isDirectory()).toBe(true);
  });

  it('does not wait for a Retry-After above maxRetryAfterMs', async () => {
    f.inject('remove', { kind: 'throw', error: httpStorageError('nas', 'remove r', 503, { retryAfter: '3600' }) });
    const err = await errorOf(retrying().remove('r'));
    expect(err.message).toMatch(/HTTP 503.*gave up after 1 attempts/);
    expect(waits).toEqual([]);
    expect(f.calls.remove).toBe(1);
  });

  it('retries network errors, also when the code is in the cause', async () => {
    await store('a', Buffer.from('x'));
    f.inject('stat', { kind: 'throw', error: reset() });
    f.inject('stat', { kind: 'throw', error: new TypeError('fetch failed', { cause: { code: 'UND_ERR_SOCKET' } }) });
    expect(await retrying().stat('a')).toMatchObject({ size: 1, isDir: false });
    expect(f.calls.stat).toBe(3);
  });

  it('does not retry errors that are not storage or network errors', async () => {
    const io = new CerberusError('IO', 'disk full');
    f.inject('put', { kind: 'throw', error: io });
    expect(await rejection(retrying().put('x', source(Buffer.from('abc')).body, 3))).toBe(io);
    f.inject('stat', { kind: 'throw', error: new StorageError('bad', { retryable: false }) });
    await errorOf(retrying().stat('x'));
    expect(f.calls.put).toBe(1);
    expect(f.calls.stat).toBe(1);
  });

  it('stops waiting when the caller aborts', async () => {
    const b = new LayeredBackend(f, new RetryLayer('nas', { ...policy, baseDelayMs: 60_000, maxDelayMs: 60_000 }, () => undefined));
    f.inject('stat', { kind: 'throw', error: httpStorageError('nas', 'stat a', 503) }, 3);
    const ac = new AbortController();
    const p = rejection(b.stat('a', { signal: ac.signal }));
    await sleep(30);
    ac.abort(new Error('user gave up'));
    expect(((await p) as Error).message).toBe('user gave up');
    expect(f.calls.stat).toBe(1);
  });

  describe('get', () => {
    const data = randomBytes(200_000);
    beforeEach(() => store('v/vol.gpg', data));

    it('resumes a broken download from the first byte not delivered', async () => {
      f.inject('get', { kind: 'break', afterBytes: 50_000, error: reset() });
      f.inject('get', { kind: 'break', afterBytes: 70_000, error: reset() });
      const got = await collect(await retrying().get('v/vol.gpg'));
      expect(got.equals(data)).toBe(true);
      expect(f.ranges).toEqual([undefined, { start: 50_000 }, { start: 120_000 }]);
      expect(logs[0]).toMatch(/broke after 50000 bytes/);
    });

    it('resumes a range request inside its range, keeping the end', async () => {
      f.inject('get', { kind: 'break', afterBytes: 30_000, error: reset() });
      const got = await collect(await retrying().get('v/vol.gpg', { start: 1000, end: 149_999 }));
      expect(got.equals(data.subarray(1000, 150_000))).toBe(true);
      expect(f.ranges).toEqual([{ start: 1000, end: 149_999 }, { start: 31_000, end: 149_999 }]);
    });

    it('resumes an open-ended range', async () => {
      f.inject('get', { kind: 'break', afterBytes: 10_000, error: reset() });
      const got = await collect(await retrying().get('v/vol.gpg', { start: 5 }));
      expect(got.equals(data.subarray(5))).toBe(true);
      expect(f.ranges).toEqual([{ start: 5 }, { start: 10_005 }]);
    });

    it('retries a get that fails before it starts', async () => {
      f.inject('get', { kind: 'throw', error: httpStorageError('nas', 'get v/vol.gpg', 502) });
      expect((await collect(await retrying().get('v/vol.gpg'))).equals(data)).toBe(true);
      expect(f.ranges).toEqual([undefined, undefined]);
    });

    it('passes a non-retryable stream error through as it is', async () => {
      const bad = new CerberusError('INTEGRITY', 'checksum mismatch');
      f.inject('get', { kind: 'break', afterBytes: 40_000, error: bad });
      const { bytes, error } = await readUntilFailure(await retrying().get('v/vol.gpg'));
      expect(error).toBe(bad);
      expect(bytes.equals(data.subarray(0, 40_000))).toBe(true);
      expect(f.calls.get).toBe(1);
    });

    it('gives up on a download that keeps breaking', async () => {
      f.inject('get', { kind: 'break', afterBytes: 1000, error: reset() }, 10);
      const { bytes, error } = await readUntilFailure(await retrying().get('v/vol.gpg'));
      expect(error).toBeInstanceOf(StorageError);
      expect((error as StorageError).retryable).toBe(false);
      expect((error as Error).message).toMatch(/^target nas: get v\/vol\.gpg: read ECONNRESET \(gave up after 3 attempts\)$/);
      expect(bytes.equals(data.subarray(0, 3000))).toBe(true);
      expect(f.calls.get).toBe(3);
    });

    it('ends a ranged download that broke after its last byte without asking past its end', async () => {
      f.inject('get', { kind: 'break', afterBytes: 100, error: reset() });
      const got = await collect(await retrying().get('v/vol.gpg', { start: 0, end: 99 }));
      expect(got.equals(data.subarray(0, 100))).toBe(true);
      expect(f.ranges).toEqual([{ start: 0, end: 99 }]);
    });

    it('without resumeGets (a local disk), still retries the open but hands over the stream below as it is', async () => {
      f.inject('get', { kind: 'throw', error: httpStorageError('nas', 'get v/vol.gpg', 502) });
      f.inject('get', { kind: 'break', afterBytes: 40_000, error: reset() });
      const s = await retrying({ resumeGets: false }).get('v/vol.gpg');
      expect(s).toBe(f.streams[f.streams.length - 1]);
      const { bytes, error } = await readUntilFailure(s);
      expect((error as NodeJS.ErrnoException).code).toBe('ECONNRESET');
      expect(bytes.equals(data.subarray(0, 40_000))).toBe(true);
      expect(f.calls.get).toBe(2);
    });

    it('destroys the download below when the reader stops early', async () => {
      const big = randomBytes(4 * MiB);
      await store('big', big);
      const s = await retrying().get('big');
      const first = await new Promise<Buffer>((resolve) => s.once('data', resolve));
      expect(first.length).toBeGreaterThan(0);
      s.destroy();
      const inner = f.streams[0]!;
      await new Promise((resolve) => (inner.closed ? resolve(undefined) : inner.once('close', resolve)));
      expect(inner.destroyed).toBe(true);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('TimeoutLayer', () => {
  const MS = 100;
  const timed = (ms = MS) => new LayeredBackend(f, new TimeoutLayer('nas', ms));
  const isTimeout = (e: unknown) => {
    expect(e).toBeInstanceOf(StorageError);
    expect((e as StorageError).retryable).toBe(true);
    expect((e as Error).message).toMatch(/^target nas: .*no response for 100 ?ms/);
  };

  it('fails a call that never answers, even when the backend ignores the signal', async () => {
    f.inject('stat', { kind: 'stall' });
    const t0 = Date.now();
    const err = await rejection(timed().stat('a'));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(MS - 5);
    isTimeout(err);
    expect((err as Error).message).toMatch(/stat a/);
    expect(f.signals[0]?.aborted).toBe(true);
  });

  it('keeps the caller\'s own abort as it is', async () => {
    f.inject('list', { kind: 'stall' });
    const ac = new AbortController();
    const p = rejection(timed().list('d', { signal: ac.signal }));
    ac.abort(new Error('stop'));
    // the backend ignores the signal, so only the layer's own timeout ends the call
    isTimeout(await p);
    expect(f.signals[0]?.aborted).toBe(true);
    expect((f.signals[0]?.reason as Error).message).toBe('stop');
  });

  it('aborts a put whose backend stops reading the body, and closes the body', async () => {
    const data = randomBytes(MiB);
    const { body, streams } = source(data, 16 * 1024);
    f.inject('put', { kind: 'stop-reading', afterBytes: 64 * 1024 });
    const t0 = Date.now();
    isTimeout(await rejection(timed().put('p', body, data.length)));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(MS - 5);
    await sleep(10);
    expect(streams[0]!.destroyed).toBe(true);
  });

  it('keeps a put alive while the backend reports progress', async () => {
    const data = randomBytes(100_000);
    // a longer timeout than elsewhere: a loaded machine must not stretch a 25 ms gap past it
    f.inject('put', { kind: 'busy', forMs: 700, everyMs: 25 });
    const t0 = Date.now();
    await timed(200).put('p', source(data).body, data.length);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(3 * 200);
    expect((await onDisk('p')).equals(data)).toBe(true);
  });

  it('fails a download whose source goes silent while the reader waits', async () => {
    const data = randomBytes(100_000);
    await store('g', data);
    f.inject('get', { kind: 'go-silent', afterBytes: 30_000 });
    const { bytes, error } = await readUntilFailure(await timed().get('g'));
    isTimeout(error);
    expect(bytes.equals(data.subarray(0, 30_000))).toBe(true);
    expect(f.streams[0]!.destroyed).toBe(true);
  });

  it('does not time out a download whose reader is slow', async () => {
    const data = randomBytes(2 * MiB);
    await store('g', data);
    const s = await timed().get('g');
    // nothing read at all for a while, then one chunk, then another long pause
    await sleep(3 * MS);
    const it = s[Symbol.asyncIterator]();
    const first = await it.next();
    const got: Buffer[] = [first.value as Buffer];
    await sleep(3 * MS);
    for (let r = await it.next(); !r.done; r = await it.next()) got.push(r.value as Buffer);
    expect(Buffer.concat(got).equals(data)).toBe(true);
  });

  it('leaves no timer behind when a get fails to open', async () => {
    const err = await errorOf(timed().get('missing'));
    expect(err.code).toBe('NOT_FOUND');
    await sleep(2 * MS);
    expect(f.signals[0]?.aborted).toBe(false);
  });

  it('feeds the retry layer: a stalled call is sent again, a silent download resumes', async () => {
    const data = randomBytes(100_000);
    await store('g', data);
    const b = new LayeredBackend(
      new LayeredBackend(f, new TimeoutLayer('nas', MS)),
      new RetryLayer('nas', { retries: 2, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 }, () => undefined),
    );
    f.inject('stat', { kind: 'stall' });
    expect(await b.stat('g')).toMatchObject({ size: data.length });
    f.inject('get', { kind: 'go-silent', afterBytes: 25_000 });
    expect((await collect(await b.get('g'))).equals(data)).toBe(true);
    expect(f.ranges).toEqual([undefined, { start: 25_000 }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('ConcurrencyLayer', () => {
  const limited = (n: number) => new LayeredBackend(f, new ConcurrencyLayer(n));

  it('runs at most `limit` bulk puts at once', async () => {
    const b = limited(2);
    f.delayMs = 40;
    const data = randomBytes(BULK_BYTES);
    await Promise.all([0, 1, 2, 3, 4].map((i) => b.put(`p${i}`, source(data).body, data.length)));
    expect(f.maxInFlight).toBe(2);
    for (const i of [0, 1, 2, 3, 4]) expect((await onDisk(`p${i}`)).equals(data)).toBe(true);
  });

  it('does not queue small puts and other small calls behind bulk ones', async () => {
    const b = limited(1);
    f.inject('put', { kind: 'stall' });
    void b.put('big', source(randomBytes(BULK_BYTES)).body, BULK_BYTES);
    await sleep(5);
    expect(f.calls.put).toBe(1);
    await b.put('lock', source(Buffer.from('heartbeat')).body, 9);
    await b.mkdir('d');
    expect(await b.list('')).toEqual([
      { name: 'd', size: 0, isDir: true },
      { name: 'lock', size: 9, isDir: false },
    ]);
  });

  it('holds a get\'s slot until its stream is read to the end or destroyed', async () => {
    const b = limited(1);
    const data = randomBytes(100_000);
    await store('g', data);
    const s1 = await b.get('g');
    const p2 = b.get('g');
    expect(await settlesWithin(p2, 50)).toBe(false);
    expect(f.calls.get).toBe(1);
    expect((await collect(s1)).equals(data)).toBe(true);
    const s2 = await p2;
    const p3 = b.get('g');
    expect(await settlesWithin(p3, 50)).toBe(false);
    s2.destroy();
    (await p3).destroy();
    expect(f.calls.get).toBe(3);
  });

  it('takes a waiter whose caller aborted out of the queue', async () => {
    const b = limited(1);
    await store('g', Buffer.from('abc'));
    const s1 = await b.get('g');
    const ac = new AbortController();
    const aborted = rejection(b.put('big', source(randomBytes(BULK_BYTES)).body, BULK_BYTES, { signal: ac.signal }));
    const p3 = b.get('g');
    ac.abort(new Error('cancelled'));
    expect(((await aborted) as Error).message).toBe('cancelled');
    s1.destroy();
    const s3 = await p3;
    s3.destroy();
    // had the aborted waiter kept a place, it would now hold the only slot forever
    (await b.get('g')).destroy();
    expect(f.calls.put).toBe(0);
    expect(f.calls.get).toBe(3);
  });

  it('does not queue a call whose signal has already aborted', async () => {
    const b = limited(1);
    await store('g', Buffer.from('abc'));
    const s1 = await b.get('g');
    const err = await rejection(b.get('g', undefined, { signal: AbortSignal.abort(new Error('too late')) }));
    expect((err as Error).message).toBe('too late');
    s1.destroy();
    (await b.get('g')).destroy();
    expect(f.calls.get).toBe(2);
  });

  it('frees the slot of a call that fails', async () => {
    const b = limited(1);
    f.inject('get', { kind: 'throw', error: httpStorageError('nas', 'get g', 500) });
    await errorOf(b.get('g'));
    await store('g', Buffer.from('abc'));
    expect((await collect(await b.get('g'))).toString()).toBe('abc');
  });
});

// ---------------------------------------------------------------------------------------------

describe('BandwidthLayer', () => {
  it('shares one rate between concurrent puts', async () => {
    const b = new LayeredBackend(f, new BandwidthLayer(4 * MiB));
    const one = randomBytes(MiB);
    const two = randomBytes(MiB);
    const t0 = Date.now();
    await Promise.all([b.put('one', source(one).body, MiB), b.put('two', source(two).body, MiB)]);
    // 2 MiB at 4 MiB/s is 500 ms, less the 100 ms burst allowance
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect((await onDisk('one')).equals(one)).toBe(true);
    expect((await onDisk('two')).equals(two)).toBe(true);
  });

  it('limits downloads too', async () => {
    const data = randomBytes(MiB);
    await store('g', data);
    const b = new LayeredBackend(f, new BandwidthLayer(4 * MiB));
    const t0 = Date.now();
    expect((await collect(await b.get('g'))).equals(data)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(120);
  });
});

// ---------------------------------------------------------------------------------------------

describe('put bodies through the stream-wrapping layers', () => {
  const layers: Array<[string, () => Layer]> = [
    ['bandwidth', () => new BandwidthLayer(100 * MiB)],
    ['timeout', () => new TimeoutLayer('nas', 60_000)],
  ];

  for (const [name, layer] of layers) {
    it(`${name}: a body that fails fails the put, promptly`, async () => {
      const b = new LayeredBackend(local, layer());
      const broken = new Error('source file vanished');
      const body: BodySource = () =>
        Readable.from(
          (async function* () {
            yield randomBytes(1000);
            throw broken;
          })(),
        );
      const err = await errorOf(b.put('x', body, 5000));
      expect(err.cause ?? err).toBe(broken);
      expect(await fsp.readdir(root)).toEqual([]);
    });

    it(`${name}: a put that fails below closes the body it opened`, async () => {
      const data = randomBytes(MiB);
      const { body, streams } = source(data, 16 * 1024);
      f.inject('put', { kind: 'throw', error: httpStorageError('nas', 'put x', 500) });
      await errorOf(new LayeredBackend(f, layer()).put('x', body, data.length));
      await sleep(10);
      expect(streams[0]!.destroyed).toBe(true);
    });
  }
});

describe('LoggingLayer', () => {
  it('writes one line per call with its outcome', async () => {
    const lines: string[] = [];
    const b = new LayeredBackend(f, new LoggingLayer('nas', (m) => lines.push(m)));
    await b.put('a', source(Buffer.from('hello')).body, 5);
    f.inject('stat', { kind: 'throw', error: httpStorageError('nas', 'stat a', 500) });
    await errorOf(b.stat('a'));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^nas: put a \(5 bytes\): ok in \d+ ms$/);
    expect(lines[1]).toMatch(/^nas: stat a: failed in \d+ ms: target nas: stat a: HTTP 500$/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('openBackend', () => {
  it('composes the layers around a local target', async () => {
    // imported here: open.ts pulls in every backend, and this file should not depend on them otherwise
    const { openBackend } = await import('../../src/storage/open.js');
    const b = openBackend({ name: 't', type: 'local', path: root, retries: 1, timeoutMs: 1000, concurrency: 2, bwlimit: undefined });
    const data = randomBytes(BULK_BYTES + 123);
    await b.put('g/1/vol.gpg', source(data).body, data.length);
    expect((await collect(await b.get('g/1/vol.gpg'))).equals(data)).toBe(true);
    expect((await collect(await b.get('g/1/vol.gpg', { start: 10, end: 19 }))).equals(data.subarray(10, 20))).toBe(true);
    expect(await b.stat('g/1/vol.gpg')).toMatchObject({ size: data.length, isDir: false });
    expect(await b.list('g')).toEqual([{ name: '1', size: 0, isDir: true }]);
    await b.move!('g/1', 'g/2');
    await b.remove('g/2/vol.gpg');
    await b.remove('g/2');
    expect(await b.list('g')).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('copyTree through the layers', () => {
  /** `local` with copyTree replaced, or removed when undefined */
  const withTree = (copyTree: Backend['copyTree']): Backend => Object.assign(Object.create(local) as LocalBackend, { copyTree });

  it('is offered only where the backend below has it', () => {
    expect(new LayeredBackend(local, new LoggingLayer('nas', () => undefined)).copyTree).toBeTypeOf('function');
    expect(new LayeredBackend(withTree(undefined), new LoggingLayer('nas', () => undefined)).copyTree).toBeUndefined();
  });

  it('gets the long folder-copy limit from the timeout layer, not the idle timeout', async () => {
    await store('g/1/v', Buffer.from('v'));
    const slow = withTree(async (from, to) => {
      await sleep(300);
      return local.copyTree(from, to);
    });
    const b = new LayeredBackend(slow, new TimeoutLayer('nas', 50));
    await b.copyTree!('g/1', 'g/2');
    expect(await fsp.readFile(path.join(root, 'g/2/v'), 'utf8')).toBe('v');
    expect(TimeoutLayer.TREE_COPY_MS).toBeGreaterThanOrEqual(30 * 60_000);
  });

  it('holds one concurrency slot while it runs', async () => {
    await store('g/1/v', Buffer.from('v'));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const b = new LayeredBackend(
      withTree(async (from, to) => {
        await gate;
        return local.copyTree(from, to);
      }),
      new ConcurrencyLayer(1),
    );
    const copying = b.copyTree!('g/1', 'g/2');
    let got = false;
    const reading = b.get('g/1/v').then((s) => {
      got = true;
      return collect(s);
    });
    await sleep(50);
    expect(got).toBe(false);
    release();
    await copying;
    expect((await reading).toString()).toBe('v');
  });

  it('writes one log line', async () => {
    await store('g/1/v', Buffer.from('v'));
    const lines: string[] = [];
    await new LayeredBackend(local, new LoggingLayer('nas', (m) => lines.push(m))).copyTree!('g/1', 'g/2');
    expect(lines).toEqual([expect.stringMatching(/^nas: copyTree g\/1 → g\/2: ok in \d+ ms$/)]);
  });
});

describe('the local-file hint of a put body', () => {
  /** Records the body each put reaches the backend with. */
  class Recording implements Backend {
    readonly description = 'recording';
    readonly capabilities = local.capabilities;
    bodies: BodySource[] = [];
    put = async (p: string, body: BodySource, size: number, opts?: RequestOptions) => {
      this.bodies.push(body);
      return local.put(p, body, size, opts);
    };
    get = (p: string, r?: ByteRange) => local.get(p, r);
    stat = (p: string) => local.stat(p);
    list = (p: string) => local.list(p);
    remove = (p: string) => local.remove(p);
    mkdir = (p: string) => local.mkdir(p);
  }

  it('passes retry, concurrency and logging, and is dropped where a layer changes the pace (bwlimit)', async () => {
    const src = path.join(root, 'src.bin');
    const data = randomBytes(300_000);
    await fsp.writeFile(src, data);
    const body = Object.assign(() => fs.createReadStream(src), { file: src });
    const plain = new Recording();
    const kept = [new RetryLayer('t', { retries: 0, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 }, () => undefined), new ConcurrencyLayer(2), new LoggingLayer('t', () => undefined)].reduceRight<Backend>(
      (inner, layer) => new LayeredBackend(inner, layer),
      plain,
    );
    await kept.put('a', body, data.length);
    expect(plain.bodies[0]!.file).toBe(src);
    const limited = new Recording();
    await new LayeredBackend(limited, new BandwidthLayer(100 * MiB)).put('b', body, data.length);
    expect(limited.bodies[0]!.file).toBeUndefined();
    for (const name of ['a', 'b']) expect((await fsp.readFile(path.join(root, name))).equals(data)).toBe(true);
  });
});
