/**
 * Signed download URLs, as an application hands them out, served by a local HTTP server that
 * reads the objects from s3rver: what the object-storage worker downloads from. S3's own
 * presigned URLs cannot be made to expire on cue; these can: the server has a clock of its own
 * (`skew`) and answers an expired URL as S3 does (403 AccessDenied, "Request has expired").
 *
 * A URL carries S3's v4 query parameters (X-Amz-Date, X-Amz-Expires, X-Amz-Signature), so the
 * worker reads its expiry as it would from S3; the signature is an HMAC this server checks.
 * The object comes from s3rver by a query-string-signed GET (S3's v2 form, which s3rver checks):
 * a fraction of the SDK's work, so the server keeps up with the worker's parallel downloads.
 */
import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { S3Server } from './s3rver.js';

export interface SignedUrlServer {
  /** a URL for the object at `path` (e.g. /cars/id-1/a.png) of the bucket, valid for `expiresIn` seconds from `at` (default now) */
  url(path: string, opts?: { expiresIn?: number; at?: Date }): string;
  /** moves the server's clock: a positive skew makes URLs expire early */
  skew(ms: number): void;
  /** what it answered: 200s, expired refusals, other refusals */
  readonly counts: { served: number; expired: number; refused: number };
  /** every signature it handed out: none may ever reach a log */
  readonly signatures: string[];
  stop(): Promise<void>;
}

const amzDate = (d: Date) => d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');

function s3Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/xml' });
  res.end(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`);
}

export async function startSignedUrls(s3: S3Server): Promise<SignedUrlServer> {
  const secret = randomBytes(32);
  const agent = new http.Agent({ keepAlive: true });
  /** GET of the object from s3rver, signed in its query (signature version 2) */
  const fromS3 = (key: string) => {
    const expires = String(Math.floor(Date.now() / 1000) + 600);
    const resource = `/${s3.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    const signature = createHmac('sha1', s3.secretAccessKey).update(`GET\n\n\n${expires}\n${resource}`).digest('base64');
    return `${s3.endpoint}${resource}?${new URLSearchParams({ AWSAccessKeyId: s3.accessKeyId, Expires: expires, Signature: signature })}`;
  };
  let skewMs = 0;
  const counts = { served: 0, expired: 0, refused: 0 };
  const signatures: string[] = [];
  const sign = (key: string, date: string, expires: string) => createHmac('sha256', secret).update(`${key}\n${date}\n${expires}`).digest('hex');

  const server = http.createServer((req, res) => {
    void (async () => {
      const u = new URL(req.url ?? '/', 'http://x');
      const prefix = `/${s3.bucket}/`;
      const key = decodeURIComponent(u.pathname.startsWith(prefix) ? u.pathname.slice(prefix.length) : '');
      const date = u.searchParams.get('X-Amz-Date') ?? '';
      const expires = u.searchParams.get('X-Amz-Expires') ?? '';
      if (req.method !== 'GET' || key === '' || u.searchParams.get('X-Amz-Signature') !== sign(key, date, expires)) {
        counts.refused++;
        return s3Error(res, 403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
      }
      const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date)!;
      const until = Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) + Number(expires) * 1000;
      if (Date.now() + skewMs > until) {
        counts.expired++;
        return s3Error(res, 403, 'AccessDenied', 'Request has expired');
      }
      const got = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(fromS3(key), { agent }, resolve).on('error', reject)).catch((err: Error) => err);
      if (got instanceof Error || got.statusCode !== 200) {
        counts.refused++;
        if (got instanceof Error) return s3Error(res, 500, 'InternalError', got.message);
        res.writeHead(got.statusCode ?? 500, { 'content-type': 'application/xml' });
        return void got.pipe(res);
      }
      counts.served++;
      res.writeHead(200, { 'content-type': 'application/octet-stream', ...(got.headers['content-length'] ? { 'content-length': got.headers['content-length'] } : {}) });
      got.pipe(res);
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url(path, opts = {}) {
      const key = path.replace(/^\/+/, '');
      const date = amzDate(opts.at ?? new Date());
      const expires = String(opts.expiresIn ?? 3600);
      const signature = sign(key, date, expires);
      signatures.push(signature);
      const q = new URLSearchParams({ 'X-Amz-Algorithm': 'AWS4-HMAC-SHA256', 'X-Amz-Date': date, 'X-Amz-Expires': expires, 'X-Amz-SignedHeaders': 'host', 'X-Amz-Signature': signature });
      return `http://127.0.0.1:${port}/${s3.bucket}/${key.split('/').map(encodeURIComponent).join('/')}?${q}`;
    },
    skew(ms) {
      skewMs = ms;
    },
    counts,
    signatures,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      agent.destroy();
    },
  };
}
