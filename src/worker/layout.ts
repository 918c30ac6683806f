import { CerberusError } from '../errors.js';

/**
 * Where a copy lives on the target: `<bucket>/<path without extension>/v<version>.gzip`
 * (`.gzip.gpg` when encrypted). `/cars/id-1/thumbnail.png` v1 in bucket car-erp becomes
 * `car-erp/cars/id-1/thumbnail/v1.gzip`. The name is a function of the row alone, so a
 * version is written to one place only, however often a crash makes the worker try again.
 */

export const PLAIN_SUFFIX = '.gzip';
export const ENCRYPTED_SUFFIX = '.gzip.gpg';

/**
 * The folder of a file's copies: its bucket and its path without the last extension
 * (`a.tar.gz` → `a.tar`; a dot file like `.htaccess` keeps its name). The path comes from the
 * application's table, so anything that could leave the bucket's folder is refused.
 */
export function objectStem(bucket: string, filePath: string): string {
  if (/[\u0000-\u001f\u007f]/.test(filePath)) throw new CerberusError('UNSAFE_PATH', 'the Path holds control characters');
  const parts = filePath.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new CerberusError('UNSAFE_PATH', 'the Path holds ".." (it would leave the bucket\'s folder)');
  const last = parts.pop();
  if (last === undefined) throw new CerberusError('UNSAFE_PATH', 'the Path is empty');
  const dot = last.lastIndexOf('.');
  const base = dot > 0 ? last.slice(0, dot) : last;
  return [bucket, ...parts, base].join('/');
}

export function objectKey(stem: string, version: number, encrypted: boolean): string {
  return `${stem}/v${version}${encrypted ? ENCRYPTED_SUFFIX : PLAIN_SUFFIX}`;
}

/** `v12.gzip` → 12, plain; `v3.gzip.gpg` → 3, encrypted; anything else (a temp file) → undefined. */
export function parseCopyName(name: string): { version: number; encrypted: boolean } | undefined {
  const m = /^v([1-9]\d*)(\.gzip(?:\.gpg)?)$/.exec(name);
  if (!m) return undefined;
  const version = Number(m[1]);
  return Number.isSafeInteger(version) ? { version, encrypted: m[2] === ENCRYPTED_SUFFIX } : undefined;
}
