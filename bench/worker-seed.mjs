// Seeds the object-storage worker's benchmark: COUNT small objects in an S3 bucket (s3rver) and
// the application's SQLite database that records them, as the contract in sql/ describes, each
// row with a signed download URL (S3 query-string authentication, which s3rver checks).
//
//   node bench/worker-seed.mjs '{"endpoint":"http://127.0.0.1:PORT","bucket":"app","db":"app.db",
//                               "count":10000,"seed":"cerberus-bench","accessKeyId":"S3RVER"}'
// The secret access key comes from S3_SECRET. Prints one line: objects, bytes, seconds.
import { createHash, createHmac, createCipheriv } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { S3Client, PutObjectCommand } from '@aws-sdk/client-s3';

const opts = JSON.parse(process.argv[2] ?? '{}');
const secret = process.env.S3_SECRET;
if (!secret) throw new Error('S3_SECRET is not set');
const { endpoint, bucket, db, count, seed, accessKeyId } = opts;
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

// a seeded keystream: the same objects for the same seed
const key = createHash('sha256').update(String(seed)).digest();
const stream = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
const random = (n) => stream.update(Buffer.alloc(n));
const words = ['Rechnung', 'facture', 'invoice', 'photo', 'car', 'Übersicht', 'contrat', 'report', '報告'];

/** 1-64 KiB, skewed small; a third of them compressible text, as thumbnails and documents mix */
function content(i) {
  const size = 1024 + (random(4).readUInt32BE(0) % 16) ** 2 * 256;
  if (i % 3 !== 0) return random(size);
  const lines = [];
  let n = 0;
  while (n < size) {
    const line = `${i} ${words[(i + n) % words.length]} ${n}\n`;
    lines.push(line);
    n += Buffer.byteLength(line);
  }
  return Buffer.from(lines.join('')).subarray(0, size);
}

/** S3 query-string authentication (signature version 2): what s3rver verifies for a GET */
function signedUrl(objectKey, expires) {
  const resource = `/${bucket}/${objectKey}`;
  const signature = createHmac('sha1', secret).update(`GET\n\n\n${expires}\n${resource}`).digest('base64');
  const q = new URLSearchParams({ AWSAccessKeyId: accessKeyId, Expires: String(expires), Signature: signature });
  return `${endpoint}${resource}?${q}`;
}

function openDatabase(file) {
  const require = createRequire(import.meta.url);
  try {
    const { DatabaseSync } = require('node:sqlite');
    return new DatabaseSync(file);
  } catch {
    const Database = require('better-sqlite3');
    return new Database(file);
  }
}

const started = Date.now();
const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey: secret } });
fs.rmSync(db, { force: true });
const database = openDatabase(db);
database.exec(fs.readFileSync(path.join(root, 'sql/object-storage-contract.sqlite.sql'), 'utf8'));
const insert = database.prepare(
  'INSERT INTO "ObjectStorageFiles" ("Name", "Path", "Storage", "Version", "Hash", "SignedDownloadUrl", "CreatedAt") VALUES (?, ?, ?, ?, ?, ?, ?)',
);
const expires = Math.floor(Date.now() / 1000) + 24 * 3600;
const createdAt = new Date(Date.now() - 60_000).toISOString();

let next = 0;
let bytes = 0;
const rows = [];
async function uploader() {
  while (next < count) {
    const i = next++;
    const body = content(i);
    const objectKey = `cars/${i % 97}/id-${i}/${i % 2 ? 'thumbnail.png' : 'document.pdf'}`;
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: body }));
    bytes += body.length;
    rows[i] = [path.posix.basename(objectKey), `/${objectKey}`, 's3', 1, createHash('sha256').update(body).digest('hex'), signedUrl(objectKey, expires), createdAt];
  }
}
await Promise.all(Array.from({ length: 16 }, uploader));
database.exec('BEGIN');
for (const row of rows) insert.run(...row);
database.exec('COMMIT');
database.close();
s3.destroy();
console.log(`${count} objects, ${bytes} bytes, seeded in ${((Date.now() - started) / 1000).toFixed(1)} s`);
