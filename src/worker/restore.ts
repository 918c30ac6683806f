import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pipeline as pipelineAsync } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { CerberusError, ioError } from '../errors.js';
import { decryptStream, type Opening } from '../formats/openpgp/message.js';
import { hashTap, makeDirs } from '../fsutil.js';
import type { OpenTarget } from '../storage/index.js';
import { openAppDatabase, type FileRow } from './app-db.js';
import type { WorkerConfig } from './config.js';
import { objectStem, parseCopyName } from './layout.js';

export interface RestoreOptions {
  fileId: number;
  /** default: the newest version with a copy on the target */
  version?: number;
  /** absolute; a folder that exists receives the file under its own name */
  to: string;
  overwrite: boolean;
  /** asked for only when the copy is encrypted */
  opening: () => Promise<Opening>;
  open: OpenTarget;
}

export interface RestoreResult {
  fileId: number;
  path: string;
  version: number;
  /** the copy's path on the target */
  key: string;
  bytes: number;
  to: string;
}

/**
 * One copy back from the target: the file named by a row of ObjectStorageFiles, in its newest
 * stored version or the one asked for, decrypted when it is a .gzip.gpg, unzipped, its sha-256
 * checked against the application's Hash for that version, and only then given its name.
 * (By hand: `gpg -d v3.gzip.gpg | gunzip > file`.)
 */
export async function restoreCopy(cfg: WorkerConfig, opts: RestoreOptions): Promise<RestoreResult> {
  const app = await openAppDatabase(cfg.database);
  let row: FileRow | undefined;
  let versions: FileRow[];
  try {
    row = (await app.filesByIds([opts.fileId]))[0];
    if (!row) throw new CerberusError('NOT_FOUND', `ObjectStorageFiles has no row with Id ${opts.fileId}`, { hint: 'give the Id of any row of the file (any of its versions)' });
    versions = await app.fileVersions(row.storage, row.path);
  } finally {
    await app.close();
  }
  const storage = cfg.storages.get(row.storage);
  if (!storage) throw new CerberusError('CONFIG', `row ${row.id} is in storage ${JSON.stringify(row.storage)}, which worker.storages does not name`, { hint: 'add it to worker.storages (its bucket names the folder of the copies)' });
  const stem = objectStem(storage.bucket, row.path);
  const target = opts.open(cfg.target);
  const copies = (await target.list(stem))
    .filter((e) => !e.isDir)
    .flatMap((e) => {
      const c = parseCopyName(e.name);
      return c ? [{ ...c, name: e.name }] : [];
    })
    // a plain copy first where both exist: it needs no key
    .sort((a, b) => b.version - a.version || Number(a.encrypted) - Number(b.encrypted));
  const version = opts.version ?? copies[0]?.version;
  const copy = copies.find((c) => c.version === version);
  if (version === undefined || !copy) {
    const stored = [...new Set(copies.map((c) => c.version))].sort((a, b) => a - b);
    throw new CerberusError('NOT_FOUND', `target ${cfg.target.name} holds ${version === undefined ? 'no copy' : `no copy of version ${version}`} of ${row.path} (in ${stem}/)${stored.length > 0 ? `; stored versions: ${stored.join(', ')}` : ''}`, {
      hint: stored.length > 0 ? 'pick one of those with --version' : 'has the worker run since the file was uploaded? (cerberus worker health)',
    });
  }
  const hash = versions.filter((v) => v.version === version).at(-1)?.hash.toLowerCase();
  if (hash === undefined) {
    throw new CerberusError('INTEGRITY', `no row of ObjectStorageFiles holds version ${version} of ${row.path}, so the copy's sha-256 cannot be checked`, { hint: `by hand: gunzip < ${copy.name}` });
  }

  let dest = opts.to;
  if (fs.statSync(dest, { throwIfNoEntry: false })?.isDirectory()) dest = path.join(dest, path.posix.basename(row.path));
  if (!opts.overwrite && fs.existsSync(dest)) throw new CerberusError('USAGE', `${dest} exists`, { hint: 'pass --overwrite to replace it, or another --to' });
  const key = `${stem}/${copy.name}`;
  const opening = copy.encrypted ? await opts.opening() : undefined;

  const dir = path.dirname(dest);
  await makeDirs(dir).catch((err: unknown) => {
    throw ioError(err, `cannot create ${dir}`);
  });
  const tmp = path.join(dir, `.${path.basename(dest)}.cerberus-${randomBytes(4).toString('hex')}`);
  const sha = createHash('sha256');
  let bytes = 0;
  const tap = hashTap(sha, (n) => (bytes += n));
  try {
    const stored = await target.get(key);
    const gzip = opening ? await decryptStream(stored, opening, key) : stored;
    await pipelineAsync(gzip, createGunzip(), tap, fs.createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    const got = sha.digest('hex');
    if (got !== hash) throw new CerberusError('INTEGRITY', `${key} gives content with sha-256 ${got}, but version ${version} of ${row.path} has ${hash}`, { hint: 'the copy is damaged; try another version' });
    const fh = await fsp.open(tmp, 'r+');
    await fh.sync().finally(() => fh.close());
    await fsp.chmod(tmp, 0o644);
    await fsp.rename(tmp, dest);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    if (err instanceof CerberusError) throw err;
    if ((err as { code?: unknown }).code === 'Z_DATA_ERROR' || /incorrect header check|unexpected end/i.test((err as Error).message)) {
      throw new CerberusError('INTEGRITY', `${key} is not a whole gzip stream: ${(err as Error).message}`, { hint: 'the copy is damaged; try another version' });
    }
    throw ioError(err, `cannot restore ${key} to ${dest}`);
  }
  return { fileId: row.id, path: row.path, version, key, bytes, to: dest };
}
