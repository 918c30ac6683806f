/**
 * Fetching one row: from its signed URL or its storage (s3rver), hashed, gzipped, encrypted,
 * spooled; what a URL's failure looks like in a message (never its signature).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, readPrivateKey, readPublicKeys } from '../../src/formats/openpgp/keys.js';
import { decryptStream } from '../../src/formats/openpgp/message.js';
import { LocalBackend } from '../../src/storage/index.js';
import type { FileRow } from '../../src/worker/app-db.js';
import { existingCopy, openSource, prepareCopy, putCopy, SPOOL_IN_MEMORY, storageReader, urlExpiry, type StorageReader } from '../../src/worker/fetch.js';
import { tempDir } from '../helpers/cli.js';
import { errorOf } from '../helpers/errors.js';
import { startS3rver, type S3Server } from '../helpers/s3rver.js';
import { freePort } from '../helpers/servers.js';
import { startSignedUrls, type SignedUrlServer } from '../helpers/signed-urls.js';
import { putObject, sha256 } from '../helpers/uploads.js';

let s3: S3Server;
let urls: SignedUrlServer;
let storage: StorageReader;
const content = Buffer.from('the newest thumbnail '.repeat(50));
const never = new AbortController().signal;

beforeAll(async () => {
  s3 = await startS3rver({ bucket: 'car-erp' });
  urls = await startSignedUrls(s3);
  storage = storageReader('s3', { name: 's3', type: 's3', bucket: 'car-erp', prefix: '', region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, sessionToken: undefined, checksums: 'when_required', partSize: 16 << 20, storageClass: undefined, retries: 0, timeoutMs: 10_000, concurrency: 4, bwlimit: undefined });
  await putObject(s3, '/cars/a.png', content);
  await putObject(s3, '/history/cars/a.png/v1', Buffer.from('version one'));
});
afterAll(async () => {
  await storage?.close();
  await urls?.stop();
  await s3?.stop();
});

const row = (over: Partial<FileRow> = {}): FileRow => ({ id: 1, name: 'a.png', path: '/cars/a.png', storage: 's3', version: 2, hash: sha256(content), url: undefined, createdAt: 0, ...over });
const read = async (s: Readable) => Buffer.concat(await s.toArray());

describe('where the bytes come from', () => {
  it('is the signed URL while it works, else the storage; a message shows a URL without its query', async () => {
    expect(await read((await openSource(row({ url: urls.url('history/cars/a.png/v1') }), storage, never)).stream)).toEqual(Buffer.from('version one'));
    const none = await openSource(row(), storage, never);
    expect(none).toMatchObject({ via: 'storage', fallback: 'no SignedDownloadUrl' });
    expect(await read(none.stream)).toEqual(content);

    const stale = urls.url('history/cars/a.png/v1', { at: new Date(Date.now() - 3 * 3600_000), expiresIn: 60 });
    const s = await openSource(row({ url: stale }), storage, never);
    expect(s.fallback).toMatch(/^the signed URL expired at \d{4}-/);
    await read(s.stream);

    urls.skew(3600_000);
    const refused = await openSource(row({ url: urls.url('history/cars/a.png/v1', { expiresIn: 60 }) }), storage, never).finally(() => urls.skew(0));
    expect(refused.fallback).toMatch(/^the signed URL http:\/\/127\.0\.0\.1:\d+\/car-erp\/history\/cars\/a\.png\/v1\?… answered 403 AccessDenied \(expired\)$/);
    await read(refused.stream);

    const gone = urls.url('history/cars/nothing.png/v1');
    const err = await errorOf(openSource(row({ path: '/cars/nothing.png', url: gone }), storage, never));
    expect(err.message).toMatch(/^the signed URL http:\/\/127\.0\.0\.1:\d+\/car-erp\/history\/cars\/nothing\.png\/v1\?… answered 404 NoSuchKey, and storage s3 failed too: \/cars\/nothing\.png: no such object in bucket car-erp$/);
    for (const sig of urls.signatures) expect(err.message).not.toContain(sig);

    const port = await freePort();
    const closed = await openSource(row({ url: `http://127.0.0.1:${port}/x?X-Amz-Signature=topsecret` }), storage, never);
    expect(closed.fallback).toBe(`the signed URL http://127.0.0.1:${port}/x?… failed (ECONNREFUSED)`);
  });

  it('reads the expiry S3 writes into a presigned URL', () => {
    expect(urlExpiry('https://b.s3.amazonaws.com/k?X-Amz-Date=20260301T100000Z&X-Amz-Expires=3600&X-Amz-Signature=x')).toBe(Date.parse('2026-03-01T11:00:00Z'));
    expect(urlExpiry('https://s3.example/b/k?AWSAccessKeyId=a&Expires=1772359200&Signature=x')).toBe(1772359200_000);
    expect(urlExpiry('https://cdn.example/k?token=abc')).toBeUndefined();
  });

  it('fails a download that breaks off, and keeps nothing of it', async () => {
    const server = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write('only the beginning');
      setTimeout(() => res.destroy(), 20);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const spoolDir = await tempDir('cerberus-spool-');
    try {
      const src = await openSource(row({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x` }), storage, never);
      expect(src.via).toBe('url');
      await expect(prepareCopy(src.stream, row(), { sealing: undefined, compression: 'none', spoolDir })).rejects.toThrow(/terminated|aborted|closed|socket/i);
      expect(fs.readdirSync(spoolDir)).toEqual([]);
    } finally {
      server.closeAllConnections();
      server.close();
    }
  });
});

describe('a copy', () => {
  it('is the gzip of the content, through a spool file when large, and the file goes once it is put', async () => {
    const spoolDir = await tempDir('cerberus-spool-');
    // random: its gzip is as large, past what stays in memory
    const big = randomBytes(SPOOL_IN_MEMORY + 500_000);
    const copy = await prepareCopy(Readable.from([big.subarray(0, 1000), big.subarray(1000)]), row({ hash: sha256(big) }), { sealing: undefined, compression: 'none', spoolDir });
    expect(copy.bytesIn).toBe(big.length);
    expect(fs.readdirSync(spoolDir)).toHaveLength(1);
    const target = new LocalBackend(await tempDir('cerberus-target-'));
    await putCopy(target, 'car-erp/big/v1.gzip', copy, never);
    await copy.dispose();
    expect(fs.readdirSync(spoolDir)).toEqual([]);
    // by hash: toEqual on megabytes takes seconds
    expect(sha256(gunzipSync(fs.readFileSync(path.join(target.root, 'car-erp/big/v1.gzip'))))).toBe(sha256(big));
    expect(await existingCopy(target, 'car-erp/big/v1.gzip', false, sha256(big), never)).toBe(copy.size);
    // a copy that does not give the row's content is made again
    expect(await existingCopy(target, 'car-erp/big/v1.gzip', false, sha256(Buffer.from('other')), never)).toBeUndefined();
    fs.writeFileSync(path.join(target.root, 'car-erp/big/v2.gzip'), 'not gzip');
    expect(await existingCopy(target, 'car-erp/big/v2.gzip', false, sha256(big), never)).toBeUndefined();
    expect(await existingCopy(target, 'car-erp/big/v3.gzip', false, sha256(big), never)).toBeUndefined();
  });

  it('is an OpenPGP message of the gzip when encrypted, which the private key opens', async () => {
    const dir = await tempDir('cerberus-pgp-');
    const pair = await generateKeyPair({ name: 'ops', rsa: false, passphrase: undefined });
    fs.writeFileSync(path.join(dir, 'pub.asc'), pair.publicArmored);
    fs.writeFileSync(path.join(dir, 'sec.asc'), pair.privateArmored);
    const copy = await prepareCopy(Readable.from([content]), row(), { sealing: { keys: await readPublicKeys([path.join(dir, 'pub.asc')]) }, compression: 'none', spoolDir: dir });
    const sealed = await read(copy.body());
    expect(sealed.subarray(0, 2)).not.toEqual(Buffer.from([0x1f, 0x8b]));
    const gz = await read(await decryptStream(Readable.from([sealed]), { key: await readPrivateKey(path.join(dir, 'sec.asc'), undefined) }, 'copy'));
    expect(gunzipSync(gz)).toEqual(content);
  });

  it('is refused when the content does not hash to the row\'s Hash', async () => {
    const spoolDir = await tempDir('cerberus-spool-');
    const err = await errorOf(prepareCopy(Readable.from([Buffer.alloc(SPOOL_IN_MEMORY + 10, 1)]), row(), { sealing: undefined, compression: 'none', spoolDir }));
    expect(err.code).toBe('INTEGRITY');
    expect(err.message).toMatch(/^sha-256 mismatch: the 1048586 bytes read hash to [0-9a-f]{64}, the row's Hash is [0-9a-f]{64}; nothing stored$/);
    expect(fs.readdirSync(spoolDir)).toEqual([]);
  });
});
