/**
 * An application's uploads for the object-storage worker's tests: files with several versions
 * in s3rver, the rows that record them (ObjectStorageFiles, ObjectStorageDeleteLog) for SQLite
 * or PostgreSQL, and what the worker must make of them.
 *
 * As with a versioned S3 bucket, the object at a file's Path holds its newest version, and each
 * version's signed URL reaches that version for good (here: an older one's own key under
 * `history/`). So a row whose URL is absent or expired can be fetched from the storage only
 * while it is the newest version: the tests give such URLs to newest versions only, unless
 * they mean to fail.
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createCipheriv, createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { openSqlite } from '../../src/worker/sqlite.js';
import { ROOT } from './cli.js';
import type { S3Server } from './s3rver.js';
import type { SignedUrlServer } from './signed-urls.js';

/** ok: a valid URL; none: NULL; stale: its own parameters say it expired; refused: the server says so (skew) */
export type UrlKind = 'ok' | 'none' | 'stale' | 'refused';

export interface Upload {
  id: number;
  name: string;
  path: string;
  version: number;
  content: Buffer;
  hash: string;
  url: string | null;
  urlKind: UrlKind;
  createdAt: Date;
  /** the newest version of its file */
  newest: boolean;
}

export interface DeleteEntry {
  id: number;
  fileId: number;
  deletedAt: Date;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Seeded bytes: the same plan gives the same content. */
function bytes(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n));
}

/**
 * `versions[i]` versions of file i, uploaded in rounds (every file's v1, then v2s, …), Ids
 * from 1, CreatedAt spread over the hour before `until`. Half the contents are text (gzip
 * shrinks them), half random bytes.
 */
export function planUploads(versions: readonly number[], opts: { until: Date; seed?: string; pathOf?: (i: number) => string }): Upload[] {
  const seed = opts.seed ?? 'uploads';
  const pathOf = opts.pathOf ?? ((i: number) => `/cars/id-${i}/${['thumbnail.png', 'invoice.pdf', 'notes.txt', 'photo.jpeg'][i % 4]}`);
  const max = Math.max(...versions);
  const total = versions.reduce((a, b) => a + b, 0);
  const out: Upload[] = [];
  for (let v = 1; v <= max; v++) {
    versions.forEach((n, i) => {
      if (v > n) return;
      const size = 64 + (createHash('md5').update(`${seed}/${i}/${v}`).digest().readUInt16BE(0) % 3000);
      const content = i % 2 === 0 ? Buffer.from(`file ${i} version ${v} `.repeat(Math.ceil(size / 20)).slice(0, size)) : bytes(`${seed}/${i}/${v}`, size);
      const id = out.length + 1;
      const path = pathOf(i);
      out.push({
        id,
        name: path.split('/').pop()!,
        path,
        version: v,
        content,
        hash: sha256(content),
        url: null,
        urlKind: 'ok',
        createdAt: new Date(opts.until.getTime() - 3600_000 + Math.floor((id / total) * 3000_000)),
        newest: v === n,
      });
    });
  }
  return out;
}

/** Puts each file's newest version at its Path and every older one at history/<path>/v<n>; signs each row's URL as its kind says. */
export async function putUploads(s3: S3Server, urls: SignedUrlServer, uploads: Upload[], kindOf: (u: Upload) => UrlKind): Promise<void> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  const puts: Array<{ key: string; body: Buffer }> = [];
  for (const u of uploads) {
    // the newest version's URL reaches the object at its Path, an older one its own copy
    const history = u.newest ? u.path.replace(/^\/+/, '') : `history${u.path}/v${u.version}`;
    puts.push({ key: history, body: u.content });
    u.urlKind = kindOf(u);
    u.url =
      u.urlKind === 'none' ? null
      : u.urlKind === 'stale' ? urls.url(history, { at: new Date(Date.now() - 7200_000), expiresIn: 600 })
      : u.urlKind === 'refused' ? urls.url(history, { expiresIn: 300 })
      : urls.url(history, { expiresIn: 7 * 86400 });
  }
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < puts.length) {
        const p = puts[next++]!;
        await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: p.key, Body: p.body }));
      }
    }),
  );
  client.destroy();
}

/** Replaces the object at a file's Path (to break a hash, or to mend it). */
export async function putObject(s3: S3Server, path: string, body: Buffer): Promise<void> {
  const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  await client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: path.replace(/^\/+/, ''), Body: body }));
  client.destroy();
}

const q = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** The rows as PostgreSQL INSERTs (Ids given, the sequences moved past them). */
export function postgresInserts(uploads: readonly Upload[], deletes: readonly DeleteEntry[] = []): string {
  const files = uploads.map((u) => `(${u.id}, ${q(u.name)}, ${q(u.path)}, 's3', ${u.version}, ${q(u.hash)}, ${u.url === null ? 'NULL' : q(u.url)}, ${q(u.createdAt.toISOString())})`);
  const lines = [];
  if (files.length > 0) lines.push(`INSERT INTO "ObjectStorageFiles" ("Id", "Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt") VALUES\n${files.join(',\n')};`);
  if (deletes.length > 0) lines.push(`INSERT INTO "ObjectStorageDeleteLog" ("Id", "FileId", "DeletedAt") VALUES ${deletes.map((d) => `(${d.id}, ${d.fileId}, ${q(d.deletedAt.toISOString())})`).join(', ')};`);
  lines.push(`SELECT setval(pg_get_serial_sequence('"ObjectStorageFiles"', 'Id'), (SELECT coalesce(max("Id"), 1) FROM "ObjectStorageFiles"));`);
  lines.push(`SELECT setval(pg_get_serial_sequence('"ObjectStorageDeleteLog"', 'Id'), (SELECT coalesce(max("Id"), 1) FROM "ObjectStorageDeleteLog"));`);
  return lines.join('\n');
}

/** What the worker must write for an upload: `<bucket>/<path without extension>/v<n>.gzip[.gpg]`. */
export function copyKey(bucket: string, u: Pick<Upload, 'path' | 'version'>, encrypted = false): string {
  const parts = u.path.split('/').filter((s) => s !== '');
  const last = parts.pop()!;
  const dot = last.lastIndexOf('.');
  return [bucket, ...parts, dot > 0 ? last.slice(0, dot) : last, `v${u.version}.gzip${encrypted ? '.gpg' : ''}`].join('/');
}

/** The application's SQLite database: the contract's tables (sql/), then the rows. Appends when it exists. */
export function writeSqliteApp(file: string, uploads: readonly Upload[], deletes: readonly DeleteEntry[] = []): void {
  const db = openSqlite(file);
  try {
    db.exec(fs.readFileSync(path.join(ROOT, 'sql/object-storage-contract.sqlite.sql'), 'utf8'));
    db.transaction(() => {
      const add = db.prepare('INSERT INTO "ObjectStorageFiles" ("Id", "Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt") VALUES (?, ?, ?, \'s3\', ?, ?, ?, ?)');
      for (const u of uploads) add.run(u.id, u.name, u.path, u.version, u.hash, u.url, u.createdAt.toISOString());
      const del = db.prepare('INSERT INTO "ObjectStorageDeleteLog" ("Id", "FileId", "DeletedAt") VALUES (?, ?, ?)');
      for (const d of deletes) del.run(d.id, d.fileId, d.deletedAt.toISOString());
    });
  } finally {
    db.close();
  }
}
