/**
 * The S3 source against a real s3rver: the shared conformance suite (the tree uploaded, empty
 * folders as folder markers), paginated listings, an object and a folder of the same name,
 * a missing bucket, and, through the fault proxy, a body cut short and a server that goes away.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Excluder } from '../../src/engine/walk.js';
import { CerberusError } from '../../src/errors.js';
import { openRemoteSource, walkRemote, type S3SourceConfig } from '../../src/sources/index.js';
import { tempDir } from '../helpers/cli.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { freePort } from '../helpers/servers.js';
import { remoteSourceConformance } from './conformance.js';

function clientFor(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
}

/** Uploads a local folder under `prefix`; an empty folder becomes a folder marker (`dir/`), as consoles make them. */
async function upload(client: S3Client, bucket: string, dir: string, prefix: string): Promise<void> {
  const walk = async (rel: string): Promise<void> => {
    const entries = await fsp.readdir(path.join(dir, rel), { withFileTypes: true });
    if (entries.length === 0) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${rel}/`, Body: Buffer.alloc(0), ContentLength: 0 }));
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(r);
      else await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}/${r}`, Body: await fsp.readFile(path.join(dir, r)) }));
    }
  };
  await walk('');
}

let conformanceServer: S3Server | undefined;

remoteSourceConformance({
  name: 's3 (s3rver)',
  keepsMtime: false,
  async setup() {
    const server = (conformanceServer = await startS3rver({ bucket: 'sources' }));
    const dir = await tempDir('cerberus-s3src-');
    const config: S3SourceConfig = {
      type: 's3', endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, bucket: server.bucket, prefix: 'site/www', accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey,
    };
    return {
      dir,
      publish: () => upload(clientFor(server), server.bucket, dir, 'site/www'),
      config,
      // s3rver checks the access key id only (it does not verify V4 signatures): both are wrong
      wrongLogin: { ...config, accessKeyId: 'AKIAWRONGWRONG', secretAccessKey: 'not-the-secret-42' },
      wrongSecret: 'not-the-secret-42',
      missingRoot: { ...config, prefix: 'site/nothing-here' },
    };
  },
  teardown: async () => conformanceServer?.stop(),
});

function bigBody(mib: number): { body: Buffer; hash: string } {
  const body = Buffer.alloc(mib << 20);
  for (let i = 0; i < mib; i++) body.fill(i % 251, i << 20, (i + 1) << 20).writeUInt32BE(i, i << 20);
  return { body, hash: createHash('sha256').update(body).digest('hex') };
}

async function hashOf(stream: Readable): Promise<{ hash: string; size: number }> {
  const h = createHash('sha256');
  let size = 0;
  for await (const c of stream) {
    h.update(c as Buffer);
    size += (c as Buffer).length;
  }
  return { hash: h.digest('hex'), size };
}

describe('s3 source (s3rver)', () => {
  let server: S3Server;
  let proxy: FaultProxy;
  let config: S3SourceConfig;
  let bigHash: string;
  const BIG_MIB = 30;

  beforeAll(async () => {
    server = await startS3rver({ bucket: 'src' });
    const client = clientFor(server);
    const big = bigBody(BIG_MIB);
    bigHash = big.hash;
    const put = (Key: string, body: Buffer | string) => {
      const Body = Buffer.from(body);
      return client.send(new PutObjectCommand({ Bucket: server.bucket, Key, Body, ContentLength: Body.length }));
    };
    await put('big.bin', big.body);
    for (let i = 0; i < 7; i++) await put(`many/f${i}.txt`, `file ${i}`);
    for (let i = 0; i < 3; i++) await put(`many/d${i}/x`, 'x');
    await put('many/d1/', '');
    // an object and keys under the same name
    await put('clash', 'object');
    await put('clash/inside.txt', 'inside');
    proxy = await startFaultProxy(server.endpoint);
    config = { type: 's3', endpoint: proxy.url, region: 'us-east-1', forcePathStyle: true, bucket: server.bucket, prefix: '', accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  }, 60_000);
  afterAll(async () => {
    await proxy?.stop();
    await server?.stop();
  });

  it('lists page by page as in one go, folder markers not files', async () => {
    const paged = openRemoteSource({ ...config, prefix: 'many' }, { s3: { pageSize: 2 } });
    const whole = openRemoteSource({ ...config, prefix: 'many' });
    const names = async (s: typeof paged) => (await s.list(s.root)).map((e) => `${e.type} ${e.name}`).sort();
    expect(await names(paged)).toEqual(await names(whole));
    expect(await names(whole)).toEqual([
      'dir d0', 'dir d1', 'dir d2', ...Array.from({ length: 7 }, (_, i) => `file f${i}.txt`),
    ]);
    expect((await whole.list('/many/d1')).map((e) => e.name)).toEqual(['x']);
  });

  it('walks the whole bucket from its root; of an object and a folder of the same name, the folder', async () => {
    const source = openRemoteSource(config);
    const shape: string[] = [];
    for await (const e of walkRemote(source, new Excluder(['many']))) {
      shape.push(e.kind === 'enter' || e.kind === 'leave' || e.kind === 'entry' ? `${e.kind} ${e.entry.abs}` : `${e.kind} ${'path' in e ? e.path : ''}`);
    }
    expect(source.root).toBe('/');
    expect(shape).toEqual(['entry /big.bin', 'enter /clash', 'entry /clash/inside.txt', 'leave /clash', 'skipped clash']);
  });

  it('fails a refused signature at once with SOURCE, as S3 answers a wrong secret', async () => {
    const tried: string[] = [];
    const source = openRemoteSource({ ...config, secretAccessKey: 'not-the-secret-42' }, { baseDelayMs: 10, onRetry: (w) => tried.push(w) });
    const xml = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error>';
    proxy.faults.push({ kind: 'status', status: 403, headers: { 'content-type': 'application/xml' }, body: xml });
    const err = await source.connect().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).message).toMatch(/refused the login for access key S3RVER \(SignatureDoesNotMatch\); check accessKeyId and secretAccessKey/);
    expect((err as CerberusError).message).not.toContain('not-the-secret-42');
    expect(tried).toEqual([]);
  });

  it('fails a missing bucket with SOURCE saying so', async () => {
    const err = await openRemoteSource({ ...config, bucket: 'no-such-bucket' }).connect().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).message).toMatch(/bucket no-such-bucket does not exist/);
  });

  it('goes on reading across a body cut short and a 503, byte-exact', async () => {
    const retries: string[] = [];
    const source = openRemoteSource(config, { baseDelayMs: 20, onRetry: (what, n, err) => retries.push(`${what} #${n}: ${err.message}`) });
    await source.connect();
    proxy.requests.length = 0;
    proxy.faults.push({ kind: 'truncate-response', afterBytes: 5 << 20, method: 'GET', path: /big\.bin/ });
    proxy.faults.push({ kind: 'status', status: 503, method: 'GET', path: /big\.bin/ });
    const got = await hashOf(await source.read('/big.bin', 0));
    expect(got.size).toBe(BIG_MIB << 20);
    expect(got.hash).toBe(bigHash);
    expect(retries.length, retries.join('\n')).toBe(2);
    expect(proxy.requests.filter((r) => /big\.bin/.test(r.path)).map((r) => r.fault ?? r.status)).toEqual(['truncate-response', 'status', 206]);
    await source.close();
  });

  it('fails with SOURCE after the attempts when the server is gone', async () => {
    const down = openRemoteSource({ ...config, endpoint: `http://127.0.0.1:${await freePort()}` }, { attempts: 3, baseDelayMs: 10 });
    const err = await down.connect().then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).message).toMatch(/after 3 attempts/);
    expect((err as CerberusError).message).toMatch(/ECONNREFUSED/);

    const reading = openRemoteSource(config, { attempts: 3, baseDelayMs: 10 });
    const stream = await reading.read('/big.bin', 0);
    const it = stream[Symbol.asyncIterator]();
    await it.next();
    await proxy.stop();
    const readErr = await (async () => {
      for (let r = await it.next(); !r.done; r = await it.next());
    })().then(() => undefined, (e: unknown) => e);
    expect(readErr).toBeInstanceOf(CerberusError);
    expect((readErr as CerberusError).message).toMatch(/read \/big\.bin failed after 3 attempts/);
  });
});
