import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';

/**
 * mkdir -p without Node's `recursive`, which spins forever where mkdir answers ENOENT under a
 * parent that exists (anywhere in /proc). A second ENOENT here is final.
 */
export async function makeDirs(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && (await fsp.stat(dir)).isDirectory()) return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw err;
  }
  await makeDirs(path.dirname(dir));
  await fsp.mkdir(dir).catch(async (err: unknown) => {
    // another writer made it meanwhile
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || !(await fsp.stat(dir)).isDirectory()) throw err;
  });
}

/** sha256 of a stream, in bounded memory. */
export async function sha256OfStream(stream: AsyncIterable<unknown>): Promise<string> {
  const h = createHash('sha256');
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

/** sha256 of a file, read in 1 MiB pieces. */
export function sha256OfFile(file: string): Promise<string> {
  return sha256OfStream(fs.createReadStream(file, { highWaterMark: 1 << 20 }));
}
