import { createHash, randomBytes, type Hash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { Readable, pipeline } from 'node:stream';
import type { WebDAVClient, WebDAVClientOptions } from 'webdav';
import type { WebdavTargetConfig } from '../config/types.js';
import { CerberusError } from '../errors.js';
import type { Backend, BodySource, ByteRange, Capabilities, ObjectInfo, RequestOptions } from './backend.js';
import { FolderCopyRefusedError, StorageError, connectionHint, httpStorageError, networkCode } from './errors.js';
import { sizedBody, type Window } from './sized.js';

const TMP_PREFIX = '.tmp-';
/** how servers say no to a COPY of a collection: forbidden, not allowed or implemented, another server (502), or some members failed (207) */
const FOLDER_COPY_REFUSED = new Set([207, 403, 405, 501, 502]);
/** cleanup after a failure may not use the caller's signal, which may be why it failed */
const CLEANUP_TIMEOUT_MS = 10_000;

/** What the webdav package resolves with: node-fetch's Response, whose body is a Node stream. */
interface FetchResponse {
  status: number;
  headers: { get(name: string): string | null };
  body: Readable | null;
  text(): Promise<string>;
}

interface PropEntry {
  /** decoded path segments of the href */
  segments: string[];
  /** -1 when the server did not say */
  size: number;
  isDir: boolean;
}

interface Send {
  method: string;
  url: string;
  headers?: Record<string, string>;
  data?: Readable;
  signal?: AbortSignal | undefined;
}

type WebdavPackage = typeof import('webdav');
/** The package is loaded on first use: a job without WebDAV targets starts about 0.25 s sooner. */
const loadWebdav = (): Promise<WebdavPackage> => import('webdav');

/**
 * A folder on a WebDAV server (RFC 4918): upload to a temp name, MOVE into place, check the
 * stored size (or read it back). Only the raw verbs; retries, timeouts and limits wrap it.
 */
export class WebdavBackend implements Backend {
  readonly capabilities: Capabilities = {
    atomicPut: true,
    move: true,
    serverSideCopy: true,
    hardLink: false,
    maxObjectSize: Number.MAX_SAFE_INTEGER,
  };
  readonly description: string;
  private readonly clientOptions: WebDAVClientOptions;
  private clientInstance: WebDAVClient | undefined;
  /** absolute, percent-encoded, no trailing '/' */
  private readonly rootUrl: string;
  /** the part of rootUrl that must already exist on the server */
  private readonly baseUrl: string;
  private readonly rootSegments: string[];
  /** folders known to exist, so a vault's thousands of small puts skip a MKCOL each */
  private readonly knownDirs = new Set<string>();

  constructor(private readonly cfg: WebdavTargetConfig) {
    const base = new URL(cfg.url);
    const username = cfg.username ?? (base.username ? decodeURIComponent(base.username) : undefined);
    const password = cfg.password ?? (base.password ? decodeURIComponent(base.password) : undefined);
    // node-fetch refuses URLs with credentials, and they must never reach a message
    base.username = '';
    base.password = '';
    this.baseUrl = `${base.origin}${base.pathname.replace(/\/+$/, '')}`;
    this.rootSegments = segments(cfg.path);
    this.rootUrl = [this.baseUrl, ...this.rootSegments.map(encodeURIComponent)].join('/');
    this.description = `webdav:${this.baseUrl}/${cfg.path.replace(/^\/+/, '')}`;
    const headers: Record<string, string> = {};
    if (username !== undefined || password !== undefined) {
      // UTF-8, as servers compare it; the package's own Basic header is Latin-1 only
      headers.Authorization = `Basic ${Buffer.from(`${username ?? ''}:${password ?? ''}`, 'utf8').toString('base64')}`;
    }
    this.clientOptions = {
      headers,
      httpAgent: new http.Agent({ keepAlive: true }),
      httpsAgent: new https.Agent({ keepAlive: true }),
    };
  }

  private async client(): Promise<WebDAVClient> {
    const { createClient } = await loadWebdav();
    this.clientInstance ??= createClient(this.rootUrl, this.clientOptions);
    return this.clientInstance;
  }

  async put(p: string, body: BodySource, size: number, opts: RequestOptions = {}): Promise<void> {
    const segs = segments(p);
    const name = segs.pop();
    if (name === undefined) throw new CerberusError('INTERNAL', `cannot put to the root of ${this.description}`);
    const dir = segs.join('/');
    const tmp = [...segs, `${TMP_PREFIX}${randomBytes(6).toString('hex')}-${name}`].join('/');
    const what = `put ${p}`;
    if (!this.knownDirs.has(dir)) {
      await this.mkdir(dir, opts);
      this.knownDirs.add(dir);
    }

    const hash = this.cfg.verify === 'readback' ? createHash('sha256') : undefined;
    try {
      await this.upload(what, tmp, body, size, hash, opts.signal);
      await this.command(what, { method: 'MOVE', url: this.url(tmp), headers: { Destination: this.url(p), Overwrite: 'T' }, signal: opts.signal });
    } catch (err) {
      await this.discard(tmp);
      throw err;
    }

    const stored = await this.statPath(what, p, opts.signal);
    let wrong: string | undefined;
    if (!stored || stored.isDir || stored.size !== size) {
      wrong = `the server holds ${stored ? (stored.isDir ? 'a folder' : `${stored.size} bytes`) : 'nothing'} after an upload of ${size} bytes`;
    } else if (hash) {
      const sent = hash.digest('hex');
      const got = await this.digest(p, opts);
      if (got.hex !== sent || got.bytes !== size) wrong = 'the server stored different bytes than were sent (the sha256 of the read-back differs)';
    }
    if (wrong !== undefined) {
      // a put is whole or not at all: bad bytes must not stay under the final name
      await this.discard(p);
      throw new StorageError(`target ${this.cfg.name}: ${what}: ${wrong}`, { retryable: true });
    }
  }

  async get(p: string, range?: ByteRange, opts: RequestOptions = {}): Promise<Readable> {
    const what = `get ${p}`;
    const headers: Record<string, string> = { 'Accept-Encoding': 'identity' };
    const start = range?.start ?? 0;
    const end = range?.end;
    if (start > 0 || end !== undefined) headers.Range = `bytes=${start}-${end ?? ''}`;
    let res: FetchResponse;
    try {
      res = await this.send(what, { method: 'GET', url: this.url(p), headers, signal: opts.signal });
    } catch (err) {
      // beyond the end: as a local file read there, nothing
      if (headers.Range && err instanceof StorageError && err.status === 416) return Readable.from([]);
      throw err;
    }
    if (res.status === 206) {
      const given = /^bytes (\d+)-/.exec(res.headers.get('content-range') ?? '');
      if (!given || Number(given[1]) !== start) {
        res.body?.destroy();
        throw new StorageError(`target ${this.cfg.name}: ${what}: asked for bytes ${start}-, got ${res.headers.get('content-range') ?? 'no Content-Range'}`, {
          retryable: false,
        });
      }
    }
    const raw = res.body ?? Readable.from([]);
    const encoded = res.headers.get('content-encoding');
    const declared = Number(res.headers.get('content-length') ?? NaN);
    const expected = Number.isSafeInteger(declared) && (!encoded || encoded === 'identity') ? declared : undefined;
    // a server that ignores Range sends it all: cut the range out here
    const skip = res.status === 206 ? 0 : start;
    const take = res.status === 206 || end === undefined ? undefined : end - start + 1;
    return bodyStream(
      raw,
      expected,
      take === undefined ? { skip } : { skip, limit: take },
      (got) => new StorageError(`target ${this.cfg.name}: ${what}: the body ended after ${got} of ${expected} bytes`, { retryable: true }),
      (err) => this.failure(what, err, opts.signal),
    );
  }

  async stat(p: string, opts: RequestOptions = {}): Promise<ObjectInfo | undefined> {
    return this.statPath(`stat ${p}`, p, opts.signal);
  }

  async list(dir: string, opts: RequestOptions = {}): Promise<ObjectInfo[]> {
    const entries = await this.children(`list ${dir}`, dir, true, opts.signal);
    if (!entries) return [];
    return entries.children.filter((e) => !e.name.startsWith(TMP_PREFIX)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  async remove(p: string, opts: RequestOptions = {}): Promise<void> {
    this.forgetDirs(p);
    const what = `remove ${p}`;
    // DELETE of a collection takes everything in it: look first
    const found = await this.children(what, p, false, opts.signal);
    if (!found) return;
    if (found.self.isDir) {
      const kept = found.children.filter((e) => !e.name.startsWith(TMP_PREFIX));
      if (kept.length > 0) {
        throw new StorageError(`target ${this.cfg.name}: ${what}: the folder is not empty (${kept.length} entries, e.g. ${kept[0]!.name})`, {
          retryable: false,
        });
      }
      for (const leftover of found.children) await this.deleteUrl(what, this.url(`${p}/${leftover.name}`, leftover.isDir), opts.signal);
    }
    await this.deleteUrl(what, this.url(p, found.self.isDir), opts.signal);
  }

  async mkdir(p: string, opts: RequestOptions = {}): Promise<void> {
    await this.mkcol(`mkdir ${p}`, [...this.rootSegments, ...segments(p)], opts.signal);
  }

  private forgetDirs(p: string): void {
    const key = segments(p).join('/');
    for (const d of this.knownDirs) if (d === key || d.startsWith(key + '/') || key === '') this.knownDirs.delete(d);
  }

  async move(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    this.forgetDirs(from);
    await this.transfer('MOVE', `move ${from} → ${to}`, from, to, opts.signal);
  }

  async copy(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    await this.transfer('COPY', `copy ${from} → ${to}`, from, to, opts.signal);
  }

  async copyTree(from: string, to: string, opts: RequestOptions = {}): Promise<void> {
    const what = `copy folder ${from} → ${to}`;
    const dest = segments(to);
    if (dest.length === 0) throw new CerberusError('INTERNAL', `cannot copy a folder onto the root of ${this.description}`);
    await this.mkcol(what, [...this.rootSegments, ...dest.slice(0, -1)], opts.signal);
    try {
      await this.command(what, {
        method: 'COPY',
        url: this.url(from, true),
        headers: { Destination: this.url(to, true), Overwrite: 'F', Depth: 'infinity' },
        signal: opts.signal,
      });
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      if (err.status === 412) throw new StorageError(`target ${this.cfg.name}: ${what}: ${to} exists`, { retryable: false, status: 412, cause: err });
      if (err.status !== undefined && FOLDER_COPY_REFUSED.has(err.status)) {
        throw new FolderCopyRefusedError(`target ${this.cfg.name}: ${what}: the server does not copy whole folders (HTTP ${err.status})`, {
          status: err.status,
          cause: err,
        });
      }
      throw err;
    }
  }

  private async transfer(method: 'MOVE' | 'COPY', what: string, from: string, to: string, signal: AbortSignal | undefined): Promise<void> {
    const parent = segments(to).slice(0, -1);
    await this.mkcol(what, [...this.rootSegments, ...parent], signal);
    const headers: Record<string, string> = { Destination: this.url(to), Overwrite: 'F' };
    // a file only: a COPY of a collection would otherwise be Depth infinity
    if (method === 'COPY') headers.Depth = '0';
    try {
      await this.command(what, { method, url: this.url(from), headers, signal });
    } catch (err) {
      if (err instanceof StorageError && err.status === 412) {
        throw new StorageError(`target ${this.cfg.name}: ${what}: ${to} exists`, { retryable: false, status: 412, cause: err });
      }
      throw err;
    }
  }

  /** MKCOL of `absSegs` (relative to cfg.url), creating missing ancestors on a 409. */
  private async mkcol(what: string, absSegs: string[], signal: AbortSignal | undefined): Promise<void> {
    if (absSegs.length === 0) return;
    const url = `${[this.baseUrl, ...absSegs.map(encodeURIComponent)].join('/')}/`;
    try {
      await this.command(what, { method: 'MKCOL', url, signal });
    } catch (err) {
      if (!(err instanceof StorageError)) throw err;
      if (err.status === 405) return; // something is there already
      // Apache answers 403 to the loser of two MKCOLs racing for one folder
      if (err.status === 403 && (await this.propfind(what, url, '0', signal).catch(() => undefined))?.[0]?.isDir) return;
      if (err.status !== 409) throw err;
      await this.mkcol(what, absSegs.slice(0, -1), signal);
      try {
        await this.command(what, { method: 'MKCOL', url, signal });
      } catch (again) {
        // another writer made it meanwhile
        if (!(again instanceof StorageError && again.status === 405)) throw again;
      }
    }
  }

  private async upload(what: string, tmp: string, body: BodySource, size: number, hash: Hash | undefined, signal: AbortSignal | undefined): Promise<void> {
    let bodyFailure: unknown;
    const fail = (msg: string) => {
      const err = new StorageError(`target ${this.cfg.name}: ${what}: ${msg}`, { retryable: false });
      bodyFailure ??= err;
      return err;
    };
    const guard = sizedBody(
      size,
      (sent) => fail(sent > size ? `the body is longer than the ${size} bytes announced` : `the body gave ${sent} of the ${size} bytes announced`),
      hash ? { onChunk: (chunk) => hash.update(chunk) } : {},
    );
    const src = body();
    src.once('error', (err) => (bodyFailure ??= err));
    pipeline(src, guard, () => undefined);
    try {
      // the package sends a stream chunked unless Content-Length is given in the headers
      await this.command(what, {
        method: 'PUT',
        url: this.url(tmp),
        headers: { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' },
        data: guard,
        signal,
      });
    } catch (err) {
      if (bodyFailure !== undefined && !signal?.aborted) throw bodyFailure;
      throw err;
    } finally {
      guard.destroy();
      src.destroy();
    }
  }

  private async digest(p: string, opts: RequestOptions): Promise<{ hex: string; bytes: number }> {
    const h = createHash('sha256');
    let bytes = 0;
    for await (const chunk of await this.get(p, undefined, opts.signal ? { signal: opts.signal } : {})) {
      h.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      // the upload is long done: without this an idle timeout would cut a slow read-back short
      opts.progress?.();
    }
    return { hex: h.digest('hex'), bytes };
  }

  private async statPath(what: string, p: string, signal: AbortSignal | undefined): Promise<ObjectInfo | undefined> {
    const self = (await this.propfind(what, this.url(p), '0', signal))?.[0];
    if (!self) return undefined;
    return { name: segments(p).at(-1) ?? '', size: self.size, isDir: self.isDir };
  }

  /** the entry at `p` and its direct children; undefined when nothing is there */
  private async children(
    what: string,
    p: string,
    collection: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ self: ObjectInfo; children: ObjectInfo[] } | undefined> {
    const url = this.url(p, collection);
    const entries = await this.propfind(what, url, '1', signal);
    if (!entries) return undefined;
    const own = pathSegments(new URL(url).pathname);
    const info = (e: PropEntry): ObjectInfo => ({ name: e.segments.at(-1) ?? '', size: e.size, isDir: e.isDir });
    // the href names the folder itself; failing that (a rewriting proxy), the shortest one does
    const selfEntry =
      entries.find((e) => sameSegments(e.segments, own)) ?? entries.reduce<PropEntry | undefined>((a, e) => (!a || e.segments.length < a.segments.length ? e : a), undefined);
    if (!selfEntry) return undefined;
    const self = { ...info(selfEntry), name: own.at(-1) ?? '' };
    const children = self.isDir ? entries.filter((e) => e !== selfEntry).map(info).filter((e) => e.name !== '') : [];
    return { self, children };
  }

  private async propfind(
    what: string,
    url: string,
    depth: '0' | '1',
    signal: AbortSignal | undefined,
  ): Promise<PropEntry[] | undefined> {
    let text: string;
    try {
      const res = await this.send(what, { method: 'PROPFIND', url, headers: { Depth: depth, Accept: 'application/xml, text/xml' }, signal });
      text = await res.text();
    } catch (err) {
      if (err instanceof StorageError && err.status === 404) return undefined;
      throw this.failure(what, err, signal);
    }
    let parsed: Awaited<ReturnType<WebdavPackage['parseXML']>>;
    try {
      parsed = await (await loadWebdav()).parseXML(text);
    } catch (err) {
      throw new StorageError(`target ${this.cfg.name}: ${what}: unreadable PROPFIND answer`, {
        retryable: false,
        hint: `check that the url of target ${this.cfg.name} points at a WebDAV folder`,
        cause: err,
      });
    }
    const out: PropEntry[] = [];
    for (const r of parsed.multistatus.response) {
      // no body means allprop, which servers answer in one propstat (the package keeps only the first)
      const props = 'propstat' in r ? (r.propstat?.prop as Record<string, unknown> | undefined) : undefined;
      if (!props || typeof r.href !== 'string') continue;
      const type = props.resourcetype;
      const isDir = typeof type === 'object' && type !== null && 'collection' in type;
      const size = isDir ? 0 : Number(props.getcontentlength ?? NaN);
      out.push({ segments: pathSegments(new URL(r.href, url).pathname), size: Number.isFinite(size) ? size : -1, isDir });
    }
    return out;
  }

  private async deleteUrl(what: string, url: string, signal: AbortSignal | undefined): Promise<void> {
    try {
      await this.command(what, { method: 'DELETE', url, signal });
    } catch (err) {
      if (err instanceof StorageError && err.status === 404) return;
      throw err;
    }
  }

  /** best effort, after a failure */
  private async discard(p: string): Promise<void> {
    await this.deleteUrl(`remove ${p}`, this.url(p), AbortSignal.timeout(CLEANUP_TIMEOUT_MS)).catch(() => undefined);
  }

  /**
   * A request whose answer carries nothing we need: drained, so the connection is reused. A 207
   * is how DELETE, MOVE and COPY of a folder report that some member failed.
   */
  private async command(what: string, req: Send): Promise<void> {
    const res = await this.send(what, req);
    if (res.status !== 207) {
      res.body?.resume();
      return;
    }
    const detail = await res.text().catch(() => '');
    const status = /<(?:\w+:)?status>\s*HTTP\/[\d.]+ (\d{3})/i.exec(detail)?.[1];
    throw new StorageError(`target ${this.cfg.name}: ${what}: failed in part (207 Multi-Status${status ? `, ${status} for a member` : ''})`, {
      retryable: false,
      status: 207,
    });
  }

  private async send(what: string, req: Send): Promise<FetchResponse> {
    try {
      return (await (await this.client()).customRequest('', {
        method: req.method,
        url: req.url,
        headers: req.headers ?? {},
        // typed as plain data, but the package hands a Node stream to node-fetch as is
        ...(req.data !== undefined ? { data: req.data as unknown as Record<string, unknown> } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      })) as unknown as FetchResponse;
    } catch (err) {
      throw this.failure(what, err, req.signal);
    }
  }

  /** One classification of every failure: HTTP status, network, or abort (passed on as is). */
  private failure(what: string, err: unknown, signal: AbortSignal | undefined): unknown {
    if (err instanceof CerberusError) return err;
    if (signal?.aborted) return err;
    const status = (err as { status?: unknown }).status;
    if (typeof status === 'number') {
      const res = (err as { response?: FetchResponse }).response;
      res?.body?.resume();
      return httpStorageError(this.cfg.name, what, status, { retryAfter: res?.headers.get('retry-after'), cause: err });
    }
    const code = networkCode(err);
    const hint = connectionHint(err);
    if (code) return new StorageError(`target ${this.cfg.name}: ${what}: ${code}`, { retryable: true, cause: err, ...(hint ? { hint } : {}) });
    const detail = err instanceof Error ? ((err as NodeJS.ErrnoException).code ?? err.message) : String(err);
    return new StorageError(`target ${this.cfg.name}: ${what}: ${detail}`, { retryable: false, cause: err, ...(hint ? { hint } : {}) });
  }

  private url(p: string, collection = false): string {
    const segs = segments(p);
    return [this.rootUrl, ...segs.map(encodeURIComponent)].join('/') + (collection ? '/' : '');
  }
}

function segments(p: string): string[] {
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new CerberusError('INTERNAL', `refusing storage path with '..': ${p}`);
  return parts;
}

function pathSegments(pathname: string): string[] {
  return pathname
    .split('/')
    .filter((s) => s !== '')
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
}

function sameSegments(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}

/**
 * The response body, checked against Content-Length (a cut connection must fail the read,
 * not end it) and cut to the wanted range when the server sent more. Node already fails a
 * body cut short of its Content-Length (ECONNRESET 'aborted'); the count is the second guard.
 */
function bodyStream(
  raw: Readable,
  expected: number | undefined,
  window: Window,
  short: (got: number) => Error,
  mapError: (err: unknown) => unknown,
): Readable {
  const out = sizedBody(expected, short, { window });
  raw.once('error', (err) => out.destroy(mapError(err) as Error));
  // the reader gave up: stop the download
  out.once('close', () => {
    if (!raw.readableEnded) raw.destroy();
  });
  raw.pipe(out);
  return out;
}
