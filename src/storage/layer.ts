import { pipeline, type Duplex, type Readable } from 'node:stream';
import type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo, RequestOptions } from './backend.js';

export type Verb = 'put' | 'get' | 'stat' | 'list' | 'remove' | 'mkdir' | 'move' | 'copy' | 'copyTree' | 'removeTree' | 'flush';

/** One call as a layer sees it. */
export interface Request {
  verb: Verb;
  path: string;
  /** move, copy and copyTree */
  to?: string;
  /** put */
  size?: number;
  /** get */
  range?: ByteRange;
}

/** What a layer may change about the call it passes down. */
export interface Override {
  /** put: the body to send instead */
  body?: BodySource;
  /** get: the range to ask for instead */
  range?: ByteRange;
}

/** Performs the call below this layer. */
export type Next<T> = (opts: RequestOptions, override?: Override) => Promise<T>;

/**
 * Behaviour shared by all backends (retry, timeouts, limits, logging), written once against
 * a single entry point instead of once per verb. For a put, `body` is the upload's source;
 * for a get, the result is the body stream.
 */
export interface Layer {
  call<T>(req: Request, opts: RequestOptions, next: Next<T>, body?: BodySource): Promise<T>;
}

/** A backend with one layer around another backend. */
export class LayeredBackend implements Backend {
  readonly description: string;
  readonly capabilities: Capabilities;
  readonly move?: (from: string, to: string, opts?: RequestOptions) => Promise<void>;
  readonly copy?: (from: string, to: string, opts?: RequestOptions) => Promise<void>;
  readonly copyTree?: (from: string, to: string, opts?: RequestOptions) => Promise<void>;
  readonly removeTree?: (dir: string, opts?: RequestOptions) => Promise<void>;
  readonly flush?: (opts?: RequestOptions) => Promise<void>;

  constructor(
    private readonly inner: Backend,
    private readonly layer: Layer,
  ) {
    this.description = inner.description;
    this.capabilities = inner.capabilities;
    if (inner.move) {
      const move = inner.move.bind(inner);
      this.move = (from, to, opts) => this.layer.call<void>({ verb: 'move', path: from, to }, opts ?? {}, (o) => move(from, to, o));
    }
    if (inner.copy) {
      const copy = inner.copy.bind(inner);
      this.copy = (from, to, opts) => this.layer.call<void>({ verb: 'copy', path: from, to }, opts ?? {}, (o) => copy(from, to, o));
    }
    if (inner.copyTree) {
      const copyTree = inner.copyTree.bind(inner);
      this.copyTree = (from, to, opts) => this.layer.call<void>({ verb: 'copyTree', path: from, to }, opts ?? {}, (o) => copyTree(from, to, o));
    }
    if (inner.removeTree) {
      const removeTree = inner.removeTree.bind(inner);
      this.removeTree = (dir, opts) => this.layer.call<void>({ verb: 'removeTree', path: dir }, opts ?? {}, (o) => removeTree(dir, o));
    }
    if (inner.flush) {
      const flush = inner.flush.bind(inner);
      this.flush = (opts) => this.layer.call<void>({ verb: 'flush', path: '' }, opts ?? {}, (o) => flush(o));
    }
  }

  put(path: string, body: BodySource, size: number, opts?: RequestOptions): Promise<void> {
    return this.layer.call<void>({ verb: 'put', path, size }, opts ?? {}, (o, x) => this.inner.put(path, x?.body ?? body, size, o), body);
  }

  get(path: string, range?: ByteRange, opts?: RequestOptions): Promise<Readable> {
    const req: Request = range ? { verb: 'get', path, range } : { verb: 'get', path };
    return this.layer.call<Readable>(req, opts ?? {}, (o, x) => this.inner.get(path, x?.range ?? range, o));
  }

  stat(path: string, opts?: RequestOptions): Promise<ObjectInfo | undefined> {
    return this.layer.call<ObjectInfo | undefined>({ verb: 'stat', path }, opts ?? {}, (o) => this.inner.stat(path, o));
  }

  list(dir: string, opts?: RequestOptions): Promise<ObjectInfo[]> {
    return this.layer.call<ObjectInfo[]>({ verb: 'list', path: dir }, opts ?? {}, (o) => this.inner.list(dir, o));
  }

  remove(path: string, opts?: RequestOptions): Promise<void> {
    return this.layer.call<void>({ verb: 'remove', path }, opts ?? {}, (o) => this.inner.remove(path, o));
  }

  mkdir(path: string, opts?: RequestOptions): Promise<void> {
    return this.layer.call<void>({ verb: 'mkdir', path }, opts ?? {}, (o) => this.inner.mkdir(path, o));
  }
}

/** Names a call in logs and errors: `put generations/x (12 MiB)`. */
export function describeRequest(req: Request): string {
  return req.to ? `${req.verb} ${req.path} → ${req.to}` : `${req.verb} ${req.path}`;
}

/**
 * `source` piped into `through` as one stream. Unlike a bare `pipe`, a failing source fails
 * `through` (else the put waits forever and the error goes unhandled), and a `through` that
 * is destroyed (a backend dropping a body) closes `source` (else every retry leaks a file).
 */
export function pipeThrough<T extends Duplex>(source: Readable, through: T): T {
  pipeline(source, through, () => undefined);
  return through;
}
