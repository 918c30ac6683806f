/**
 * An HTTP proxy on 127.0.0.1 that breaks requests on demand, for integration tests that put it
 * between cerberus and a real server (Apache WebDAV, s3rver): connection resets in the middle
 * of an upload, error statuses, stalls, short and corrupted downloads.
 *
 * Usage: `const proxy = await startFaultProxy(server.url)`, point the target at `proxy.url`,
 * push faults onto `proxy.faults`, read what happened in `proxy.requests`, `proxy.stop()`.
 *
 * - `upstream` may carry a path (`http://127.0.0.1:8080/dav`): `url` then has the same path, so
 *   it replaces the server's URL as is. Paths are forwarded unchanged.
 * - Transparent otherwise: bodies stream both ways, every header goes through as the client sent
 *   it (raw, duplicates and case kept) except the hop-by-hop ones (Connection, Keep-Alive,
 *   Proxy-Connection, Expect; the proxy answers `Expect: 100-continue` itself).
 * - Host is forwarded UNCHANGED (`127.0.0.1:<proxy port>`), because an AWS SigV4 signature covers
 *   the Host the client signed; s3rver checks the signature against the Host it receives and
 *   does not care which port that names. (Rewriting Host would break every signed request.)
 * - Destination (WebDAV MOVE/COPY) naming the proxy, by its own origin or by the request's Host,
 *   is rewritten to the upstream origin, the rest of the value byte for byte. Apache only
 *   compares the Destination's scheme with its own, so either origin would do; the rewrite keeps
 *   servers that compare host and port working too.
 */
import http from 'node:http';
import type net from 'node:net';
import { Transform } from 'node:stream';

export type FaultKind =
  /** forwards the request body to upstream, then after `afterBytes` body bytes (as decoded, i.e. what upstream sees) resets the client's connection (RST) and drops the upstream request; a body no longer than that goes through whole */
  | { kind: 'reset-mid-body'; afterBytes: number }
  /** answers directly, after reading the request body, without forwarding; e.g. 503, or 429 with `{ 'Retry-After': '1' }` */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** reads the request, never answers: the client has to give up */
  | { kind: 'stall' }
  /** forwards, passes the upstream headers (Content-Length too) and `afterBytes` of the body, then closes the connection: a short body; a body no longer than that goes through whole */
  | { kind: 'truncate-response'; afterBytes: number }
  /** forwards, inverting every byte of the response body, or only the one at `offset`; same length, same headers */
  | { kind: 'alter-response'; offset?: number }
  /** closes the connection as soon as the request's headers are in */
  | { kind: 'refuse' };

export type Fault = FaultKind & {
  /** only this method (any case); any method when absent */
  method?: string;
  /** only requests whose target (path and query, as sent) matches; any when absent */
  path?: RegExp;
  /** how many more matching requests meet this fault: 1 when absent, Infinity for all. Counted down in place; the fault leaves `faults` at 0 */
  times?: number;
};

export interface ProxiedRequest {
  method: string;
  /** path and query, as sent */
  path: string;
  /** the status the client was sent; absent when it got none */
  status?: number;
  /** the fault this request met */
  fault?: FaultKind['kind'];
}

export interface FaultProxy {
  /** the proxy's origin, plus the upstream URL's path if it had one */
  url: string;
  port: number;
  /** the first fault matching a request applies to it; push onto this at any time */
  faults: Fault[];
  /** every request, in order of arrival */
  requests: ProxiedRequest[];
  /** closes the proxy and every connection through it, stalled ones too */
  stop(): Promise<void>;
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'expect']);

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const up = new URL(upstream);
  if (up.protocol !== 'http:') throw new Error(`fault proxy: only http upstreams, not ${upstream}`);
  const faults: Fault[] = [];
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<net.Socket>();
  const outgoing = new Set<http.ClientRequest>();
  // no pooling upstream: stop() then has nothing idle to hunt down
  const agent = new http.Agent({ keepAlive: false });
  let proxyHost = '';

  const take = (method: string, target: string): Fault | undefined => {
    const i = faults.findIndex((f) => {
      if (f.method && f.method.toUpperCase() !== method.toUpperCase()) return false;
      if (f.path) {
        f.path.lastIndex = 0; // a /g regex would otherwise match every other time
        if (!f.path.test(target)) return false;
      }
      return (f.times ?? 1) > 0;
    });
    const fault = faults[i];
    if (!fault) return undefined;
    fault.times = (fault.times ?? 1) - 1;
    if (fault.times <= 0) faults.splice(i, 1);
    return fault;
  };

  const rewriteDestination = (value: string, host: string | undefined): string => {
    const m = /^https?:\/\/([^/?#]+)/i.exec(value);
    if (!m?.[1]) return value; // a bare path names the same server whichever origin it is on
    const named = m[1].toLowerCase();
    if (named !== proxyHost && named !== host?.toLowerCase()) return value;
    return up.origin + value.slice(m[0].length);
  };

  const forward = (req: http.IncomingMessage, res: http.ServerResponse, entry: ProxiedRequest, fault: FaultKind | undefined) => {
    const headers: string[] = [];
    const raw = req.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i]!;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower)) continue;
      headers.push(name, lower === 'destination' ? rewriteDestination(raw[i + 1]!, req.headers.host) : raw[i + 1]!);
    }
    let cut = false;
    const upReq = http.request({ host: up.hostname, port: up.port || 80, method: req.method, path: req.url, headers, agent });
    outgoing.add(upReq);
    upReq.once('close', () => outgoing.delete(upReq));
    upReq.on('error', (err) => {
      if (cut || res.destroyed) return;
      if (res.headersSent) {
        res.destroy();
        return;
      }
      entry.status = 502;
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`fault proxy: upstream failed: ${err.message}`);
    });
    // the client left: so does the upstream request (unless a fault is finishing it its own way)
    const drop = () => {
      if (!cut) upReq.destroy();
    };
    req.on('error', drop);
    res.on('close', () => {
      if (!res.writableFinished) drop();
    });

    if (fault?.kind === 'reset-mid-body') {
      let seen = 0;
      const onData = (chunk: Buffer) => {
        const room = fault.afterBytes - seen;
        if (chunk.length < room) {
          seen += chunk.length;
          if (!upReq.write(chunk)) {
            req.pause();
            upReq.once('drain', () => req.resume());
          }
          return;
        }
        cut = true;
        req.off('data', onData);
        req.pause();
        // upstream gets exactly afterBytes, then a closed connection, as after a real reset
        upReq.write(chunk.subarray(0, room), () => upReq.destroy());
        req.socket.resetAndDestroy();
      };
      req.on('data', onData);
      req.on('end', () => {
        if (!cut) upReq.end();
      });
    } else {
      req.pipe(upReq);
    }

    upReq.on('response', (upRes) => {
      entry.status = upRes.statusCode;
      const out: string[] = [];
      for (let i = 0; i + 1 < upRes.rawHeaders.length; i += 2) {
        if (!HOP_BY_HOP.has(upRes.rawHeaders[i]!.toLowerCase())) out.push(upRes.rawHeaders[i]!, upRes.rawHeaders[i + 1]!);
      }
      res.writeHead(upRes.statusCode ?? 502, upRes.statusMessage, out);
      upRes.on('error', () => {
        if (!cut) res.destroy();
      });

      if (fault?.kind === 'truncate-response') {
        const socket = res.socket;
        // end(), not destroy(): what was written still reaches the client, then the close
        const hangUp = () => socket?.end(() => socket.destroy());
        let sent = 0;
        const onData = (chunk: Buffer) => {
          const room = fault.afterBytes - sent;
          if (chunk.length < room) {
            sent += chunk.length;
            if (!res.write(chunk)) {
              upRes.pause();
              res.once('drain', () => upRes.resume());
            }
            return;
          }
          cut = true;
          upRes.off('data', onData);
          upRes.destroy();
          upReq.destroy();
          if (room > 0) res.write(chunk.subarray(0, room), hangUp);
          else {
            res.flushHeaders();
            hangUp();
          }
        };
        upRes.on('data', onData);
        upRes.on('end', () => {
          if (!cut) res.end();
        });
        return;
      }
      if (fault?.kind === 'alter-response') {
        upRes.pipe(alter(fault.offset)).pipe(res);
        return;
      }
      upRes.pipe(res);
    });
  };

  const server = http.createServer((req, res) => {
    const entry: ProxiedRequest = { method: req.method ?? 'GET', path: req.url ?? '/' };
    requests.push(entry);
    const fault = take(entry.method, entry.path);
    if (fault) entry.fault = fault.kind;
    req.on('error', () => undefined);
    switch (fault?.kind) {
      case 'refuse':
        req.socket.destroy();
        return;
      case 'stall':
        req.resume();
        return;
      case 'status': {
        const body = fault.body ?? `fault proxy: ${fault.status}\n`;
        // read the whole body first: answering mid-upload would make the client see a reset, not the status
        req.resume();
        req.once('end', () => {
          entry.status = fault.status;
          res.writeHead(fault.status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...fault.headers });
          res.end(body);
        });
        return;
      }
      default:
        forward(req, res, entry, fault);
    }
  });
  // longer than any test: the client's keep-alive socket must not close under it between requests
  server.keepAliveTimeout = 120_000;
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket) => socket.destroy());

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as net.AddressInfo;
  proxyHost = `127.0.0.1:${port}`;
  const prefix = up.pathname === '/' ? '' : up.pathname.replace(/\/$/, '');

  return {
    url: `http://${proxyHost}${prefix}`,
    port,
    faults,
    requests,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const r of outgoing) r.destroy();
      for (const s of sockets) s.destroy();
      await closed;
      agent.destroy();
    },
  };
}

/** inverts every byte, or only the one at `offset` of the whole body */
function alter(offset: number | undefined): Transform {
  let at = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      const out = Buffer.from(chunk);
      if (offset === undefined) for (let i = 0; i < out.length; i++) out[i] = out[i]! ^ 0xff;
      else if (offset >= at && offset < at + out.length) out[offset - at] = out[offset - at]! ^ 0xff;
      at += out.length;
      cb(null, out);
    },
  });
}
