import fsp from 'node:fs/promises';
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
