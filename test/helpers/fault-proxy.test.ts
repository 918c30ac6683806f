/**
 * The fault proxy against a trivial upstream that records what reached it, and once against a
 * real s3rver to show that signed S3 requests survive the trip.
 */
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { startApache } from './apache.js';
import { startS3rver } from './s3rver.js';

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  /** request body bytes received so far */
  bytes: number;
  body: Buffer;
  /** the whole request body arrived */
  complete: boolean;
}

const DATA = randomBytes(100_000);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let upstream: http.Server;
let origin: string;
let seen: Seen[];
let proxy: FaultProxy;

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bytes: 0, body: Buffer.alloc(0), complete: false };
    seen.push(s);
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => {
      s.bytes += c.length;
      parts.push(c);
    });
    req.on('error', () => undefined);
    req.on('end', () => {
      s.complete = true;
      s.body = Buffer.concat(parts);
      if (req.url === '/data') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': DATA.length, 'x-upstream': 'yes' });
        res.end(DATA);
      } else if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        res.write(DATA.subarray(0, 50_000));
        setTimeout(() => res.end(DATA.subarray(50_000)), 5);
      } else {
        res.writeHead(req.method === 'PUT' ? 201 : 200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(JSON.stringify({ length: s.body.length, sha: sha(s.body) }));
      }
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(upstream.address() as net.AddressInfo).port}`;
});
afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise((resolve) => upstream.close(resolve));
});

beforeEach(async () => {
  seen = [];
  proxy = await startFaultProxy(origin);
});
afterEach(async () => {
  await proxy.stop();
});

interface Outcome {
  status?: number;
  headers?: http.IncomingHttpHeaders;
  /** what arrived of the response body, also when it then failed */
  body: Buffer;
  error?: NodeJS.ErrnoException;
}

/** One request on its own connection; never rejects, so partial outcomes can be asserted. */
function send(url: string, opts: { method?: string; headers?: Record<string, string>; body?: Buffer; timeoutMs?: number } = {}): Promise<Outcome> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let status: number | undefined;
    let headers: http.IncomingHttpHeaders | undefined;
    const done = (error?: Error) =>
      resolve({ body: Buffer.concat(parts), ...(status !== undefined ? { status, headers } : {}), ...(error ? { error } : {}) });
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      status = res.statusCode;
      headers = res.headers;
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => done());
      res.on('error', done);
    });
    req.on('error', done);
    if (opts.timeoutMs) req.setTimeout(opts.timeoutMs, () => req.destroy(Object.assign(new Error('client gave up'), { code: 'CLIENT_TIMEOUT' })));
    req.end(opts.body);
  });
}

const put = (path: string, body: Buffer, headers: Record<string, string> = {}) =>
  send(`${proxy.url}${path}`, { method: 'PUT', body, headers: { 'content-length': String(body.length), ...headers } });

describe('fault proxy, transparent', () => {
  it('streams bodies both ways and keeps the headers, Host included', async () => {
    const body = randomBytes(1 << 20);
    const r = await put('/up?x=1', body, { 'X-Custom': 'one', 'content-type': 'application/x-test' });
    expect(r.error).toBeUndefined();
    expect(r.status).toBe(201);
    expect(JSON.parse(r.body.toString())).toEqual({ length: body.length, sha: sha(body) });
    expect(r.headers?.['set-cookie']).toEqual(['a=1', 'b=2']);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'PUT', url: '/up?x=1', complete: true });
    // the Host the client used, as a SigV4 signature needs it
    expect(seen[0]!.headers.host).toBe(`127.0.0.1:${proxy.port}`);
    expect(seen[0]!.rawHeaders).toContain('X-Custom');
    expect(seen[0]!.headers['content-type']).toBe('application/x-test');
    expect(seen[0]!.headers['content-length']).toBe(String(body.length));

    const g = await send(`${proxy.url}/data`);
    expect(g.status).toBe(200);
    expect(g.headers?.['content-length']).toBe(String(DATA.length));
    expect(g.headers?.['x-upstream']).toBe('yes');
    expect(g.body.equals(DATA)).toBe(true);

    const c = await send(`${proxy.url}/chunked`);
    expect(c.body.equals(DATA)).toBe(true);

    const h = await send(`${proxy.url}/data`, { method: 'HEAD' });
    expect(h.status).toBe(200);
    expect(h.headers?.['content-length']).toBe(String(DATA.length));
    expect(h.body.length).toBe(0);

    expect(proxy.requests).toEqual([
      { method: 'PUT', path: '/up?x=1', status: 201 },
      { method: 'GET', path: '/data', status: 200 },
      { method: 'GET', path: '/chunked', status: 200 },
      { method: 'HEAD', path: '/data', status: 200 },
    ]);
  });

  it('keeps the upstream URL\'s path in its own', async () => {
    const p = await startFaultProxy(`${origin}/dav/`);
    try {
      expect(p.url).toBe(`http://127.0.0.1:${p.port}/dav`);
      expect((await send(`${p.url}/x`)).status).toBe(200);
      expect(seen[0]!.url).toBe('/dav/x');
    } finally {
      await p.stop();
    }
  });

  it('answers 502 when the upstream is down', async () => {
    const dead = http.createServer();
    await new Promise<void>((resolve) => dead.listen(0, '127.0.0.1', resolve));
    const port = (dead.address() as net.AddressInfo).port;
    await new Promise((resolve) => dead.close(resolve));
    const p = await startFaultProxy(`http://127.0.0.1:${port}`);
    try {
      expect((await send(`${p.url}/x`)).status).toBe(502);
    } finally {
      await p.stop();
    }
  });
});

describe('fault proxy, faults', () => {
  it('status: answers without forwarding, with the given headers, after reading the body', async () => {
    proxy.faults.push(
      { kind: 'status', status: 503 },
      { kind: 'status', status: 429, headers: { 'Retry-After': '7' } },
      { kind: 'status', status: 401, headers: { 'WWW-Authenticate': 'Basic realm="x"' }, body: 'no' },
    );
    const a = await put('/a', randomBytes(300_000));
    expect(a.error).toBeUndefined();
    expect(a.status).toBe(503);
    const b = await send(`${proxy.url}/b`);
    expect(b.status).toBe(429);
    expect(b.headers?.['retry-after']).toBe('7');
    const c = await send(`${proxy.url}/c`);
    expect(c.status).toBe(401);
    expect(c.headers?.['www-authenticate']).toBe('Basic realm="x"');
    expect(c.body.toString()).toBe('no');
    expect(seen).toEqual([]);
    expect(proxy.faults).toEqual([]);
    expect(proxy.requests).toEqual([
      { method: 'PUT', path: '/a', status: 503, fault: 'status' },
      { method: 'GET', path: '/b', status: 429, fault: 'status' },
      { method: 'GET', path: '/c', status: 401, fault: 'status' },
    ]);
  });

  it('matches by method and path, `times` times', async () => {
    proxy.faults.push({ kind: 'status', status: 500, method: 'put', path: /^\/vol\//g, times: 2 });
    expect((await send(`${proxy.url}/vol/1`)).status).toBe(200); // a GET
    expect((await put('/other', Buffer.from('x'))).status).toBe(201);
    expect((await put('/vol/1', Buffer.from('x'))).status).toBe(500);
    expect(proxy.faults[0]?.times).toBe(1);
    expect((await put('/vol/2', Buffer.from('x'))).status).toBe(500);
    expect(proxy.faults).toEqual([]);
    expect((await put('/vol/3', Buffer.from('x'))).status).toBe(201);
    expect(seen.map((s) => s.url)).toEqual(['/vol/1', '/other', '/vol/3']);
  });

  it('reset-mid-body: upstream gets exactly N body bytes, the client a reset', async () => {
    proxy.faults.push({ kind: 'reset-mid-body', afterBytes: 100_000 });
    const r = await put('/big', randomBytes(1 << 20));
    expect(r.status).toBeUndefined();
    expect(['ECONNRESET', 'EPIPE']).toContain(r.error?.code);
    await expect.poll(() => seen[0]?.bytes).toBe(100_000);
    await sleep(20);
    expect(seen[0]!.bytes).toBe(100_000);
    expect(seen[0]!.complete).toBe(false);
    expect(proxy.requests).toEqual([{ method: 'PUT', path: '/big', fault: 'reset-mid-body' }]);
    // the next request is unaffected
    expect((await put('/again', Buffer.from('ok'))).status).toBe(201);
  });

  it('stall: never answers, until the client gives up', async () => {
    proxy.faults.push({ kind: 'stall' });
    const t0 = Date.now();
    const r = await send(`${proxy.url}/data`, { timeoutMs: 200 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(r.error?.code).toBe('CLIENT_TIMEOUT');
    expect(r.status).toBeUndefined();
    expect(seen).toEqual([]);
    expect(proxy.requests).toEqual([{ method: 'GET', path: '/data', fault: 'stall' }]);
  });

  it('stop() closes stalled connections too', async () => {
    proxy.faults.push({ kind: 'stall' });
    const pending = send(`${proxy.url}/data`);
    await expect.poll(() => proxy.requests.length).toBe(1);
    await proxy.stop();
    expect((await pending).error).toBeDefined();
  });

  it('truncate-response: the upstream Content-Length, N body bytes, then a closed connection', async () => {
    proxy.faults.push({ kind: 'truncate-response', afterBytes: 3000 });
    const r = await send(`${proxy.url}/data`);
    expect(r.status).toBe(200);
    expect(r.headers?.['content-length']).toBe(String(DATA.length));
    expect(r.error).toBeDefined();
    expect(r.body.equals(DATA.subarray(0, 3000))).toBe(true);

    proxy.faults.push({ kind: 'truncate-response', afterBytes: 0 });
    const z = await send(`${proxy.url}/data`);
    expect(z.status).toBe(200);
    expect(z.error).toBeDefined();
    expect(z.body.length).toBe(0);

    // a chunked body fails the same way: no terminating chunk
    proxy.faults.push({ kind: 'truncate-response', afterBytes: 60_000 });
    const c = await send(`${proxy.url}/chunked`);
    expect(c.error).toBeDefined();
    expect(c.body.equals(DATA.subarray(0, 60_000))).toBe(true);
  });

  it('alter-response: same length, bytes flipped', async () => {
    proxy.faults.push({ kind: 'alter-response' }, { kind: 'alter-response', offset: 70_000 });
    const all = await send(`${proxy.url}/data`);
    expect(all.error).toBeUndefined();
    expect(all.body.length).toBe(DATA.length);
    expect(all.body.every((b, i) => b === (DATA[i]! ^ 0xff))).toBe(true);
    const one = await send(`${proxy.url}/data`);
    expect(one.body.length).toBe(DATA.length);
    const differ = [...one.body.keys()].filter((i) => one.body[i] !== DATA[i]);
    expect(differ).toEqual([70_000]);
  });

  it('refuse: closes the connection without an answer', async () => {
    proxy.faults.push({ kind: 'refuse' });
    const r = await send(`${proxy.url}/data`);
    expect(r.status).toBeUndefined();
    expect(r.error?.code).toBe('ECONNRESET');
    expect(seen).toEqual([]);
    expect(proxy.requests).toEqual([{ method: 'GET', path: '/data', fault: 'refuse' }]);
  });

  it('rewrites a Destination naming the proxy to the upstream, leaving others alone', async () => {
    const dest = async (value: string, host?: string) => {
      seen = [];
      await send(`${proxy.url}/from`, { method: 'MOVE', headers: { Destination: value, Overwrite: 'F', ...(host ? { Host: host } : {}) } });
      return seen[0]!.headers.destination;
    };
    expect(await dest(`${proxy.url}/to/a%20b?v=1`)).toBe(`${origin}/to/a%20b?v=1`);
    expect(await dest(`HTTP://127.0.0.1:${proxy.port}/x`)).toBe(`${origin}/x`);
    expect(await dest(`http://localhost:${proxy.port}/y`, `localhost:${proxy.port}`)).toBe(`${origin}/y`);
    expect(await dest('http://example.com/z')).toBe('http://example.com/z');
    expect(await dest('/relative')).toBe('/relative');
    expect(seen[0]!.headers.overwrite).toBe('F');
  });
});

/**
 * s3rver accepts any V4 signature (its V4 check is unimplemented), so a request through the
 * proxy succeeding there proves nothing: this upstream checks SigV4 itself, as AWS would.
 */
function verifySigV4(req: http.IncomingMessage, secret: string): boolean {
  const auth = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]{64})$/.exec(req.headers.authorization ?? '');
  if (!auth) return false;
  const [, , date, region, service, signed, signature] = auth as unknown as string[];
  const amzDate = String(req.headers['x-amz-date']);
  const url = new URL(req.url!, 'http://x');
  const enc = (v: string) => encodeURIComponent(v).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const query = [...url.searchParams]
    .map(([k, v]) => [enc(k), enc(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const headers = signed!
    .split(';')
    .map((h) => `${h}:${String(req.headers[h] ?? '').trim().replace(/\s+/g, ' ')}\n`)
    .join('');
  const canonical = [req.method, url.pathname, query, headers, signed, req.headers['x-amz-content-sha256']].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, `${date}/${region}/${service}/aws4_request`, sha(Buffer.from(canonical))].join('\n');
  const hmac = (key: Buffer | string, data: string) => createHmac('sha256', key).update(data).digest();
  const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, date!), region!), service!), 'aws4_request');
  return createHmac('sha256', key).update(toSign).digest('hex') === signature;
}

describe('fault proxy and S3 signatures', () => {
  const SECRET = 'S3RVER';
  let verifier: http.Server;
  let verdicts: Array<{ method: string; ok: boolean }>;
  beforeAll(async () => {
    verifier = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const ok = verifySigV4(req, SECRET);
        verdicts.push({ method: req.method!, ok });
        if (ok) res.writeHead(200, { 'content-length': 2, etag: '"x"' }).end('ok');
        else {
          res.writeHead(403, { 'content-type': 'application/xml' });
          res.end('<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>bad signature</Message></Error>');
        }
      });
    });
    await new Promise<void>((resolve) => verifier.listen(0, '127.0.0.1', resolve));
  });
  afterAll(async () => {
    verifier.closeAllConnections();
    await new Promise((resolve) => verifier.close(resolve));
  });
  beforeEach(() => {
    verdicts = [];
  });

  const s3 = (endpoint: string, secretAccessKey = SECRET) =>
    new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey }, maxAttempts: 1 });
  const outcome = (p: Promise<unknown>) =>
    p.then(
      () => 'ok',
      (e: unknown) => (e as { name?: string }).name,
    );

  it('keeps signed requests valid, and the check would catch a changed Host', async () => {
    const verifierUrl = `http://127.0.0.1:${(verifier.address() as net.AddressInfo).port}`;
    const p = await startFaultProxy(verifierUrl);
    const good = s3(p.url);
    const wrongKey = s3(p.url, 'not-the-secret');
    // signed for the proxy, then Host changed to the upstream's, as a Host-rewriting proxy would
    const hostRewritten = s3(p.url);
    hostRewritten.middlewareStack.add(
      (next) => (args) => {
        (args.request as { headers: Record<string, string> }).headers.host = new URL(verifierUrl).host;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low', name: 'rewriteHostAfterSigning' },
    );
    try {
      const Body = randomBytes(50_000);
      expect(await outcome(good.send(new PutObjectCommand({ Bucket: 'b', Key: 'g/1/vol 1.gpg', Body })))).toBe('ok');
      expect(await outcome(good.send(new GetObjectCommand({ Bucket: 'b', Key: 'g/1/vol 1.gpg', Range: 'bytes=0-1' })))).toBe('ok');
      expect(verdicts).toEqual([
        { method: 'PUT', ok: true },
        { method: 'GET', ok: true },
      ]);
      expect(await outcome(wrongKey.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })))).toBe('SignatureDoesNotMatch');
      expect(await outcome(hostRewritten.send(new GetObjectCommand({ Bucket: 'b', Key: 'k' })))).toBe('SignatureDoesNotMatch');
      expect(p.requests.map((r) => r.status)).toEqual([200, 200, 403, 403]);
    } finally {
      for (const c of [good, wrongKey, hostRewritten]) c.destroy();
      await p.stop();
    }
  });

  it('works against a real s3rver, whose answers the SDK retries', async () => {
    const server = await startS3rver();
    const p = await startFaultProxy(server.endpoint);
    const client = new S3Client({
      endpoint: p.url,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
      maxAttempts: 3,
    });
    try {
      const body = randomBytes(200_000);
      await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'g/1/vol.gpg', Body: body }));
      p.faults.push({ kind: 'status', status: 503, method: 'GET' });
      const got = await client.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'g/1/vol.gpg' }));
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
      expect(p.requests.map((r) => `${r.method} ${r.status}`)).toEqual(['PUT 200', 'GET 503', 'GET 200']);
    } finally {
      client.destroy();
      await p.stop();
      await server.stop();
    }
  });
});

describe('fault proxy with Apache WebDAV', () => {
  it('passes PUT, MOVE and COPY through, and a reset PUT leaves the old file', async () => {
    const dav = await startApache();
    const p = await startFaultProxy(dav.url);
    const auth = { Authorization: `Basic ${Buffer.from(`${dav.username}:${dav.password}`).toString('base64')}` };
    const davPut = (path: string, body: Buffer) =>
      send(`${p.url}${path}`, { method: 'PUT', body, headers: { ...auth, 'content-length': String(body.length) } });
    try {
      const one = randomBytes(300_000);
      expect((await davPut('/a.bin', one)).status).toBe(201);
      expect((await send(`${p.url}/a.bin`, { method: 'MOVE', headers: { ...auth, Destination: `${p.url}/b.bin` } })).status).toBe(201);
      expect((await send(`${p.url}/b.bin`, { method: 'COPY', headers: { ...auth, Destination: `${p.url}/c.bin` } })).status).toBe(201);
      expect((await send(`${p.url}/a.bin`, { headers: auth })).status).toBe(404);
      expect((await send(`${p.url}/c.bin`, { headers: auth })).body.equals(one)).toBe(true);

      p.faults.push({ kind: 'reset-mid-body', afterBytes: 100_000 });
      const r = await davPut('/c.bin', randomBytes(300_000));
      expect(r.error).toBeDefined();
      // Apache writes a PUT to a temporary file and renames it only once complete
      await sleep(100);
      expect((await send(`${p.url}/c.bin`, { headers: auth })).body.equals(one)).toBe(true);
    } finally {
      await p.stop();
      await dav.stop();
    }
  });
});
