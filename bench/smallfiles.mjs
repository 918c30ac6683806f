#!/usr/bin/env node
// A tree of many small files, fast: for the no-change `sync up` case of bench/vault.sh.
//
//   node bench/smallfiles.mjs <dir> [count] [seed]
//
// count files (default 50000) of 1-8 KiB, 100 to a folder, folders two deep
// (`NN/MMM/`); names, sizes and times from a seeded PRNG, contents from an AES-128-CTR
// keystream, as in bench/corpus.mjs. Writes with bounded parallelism (no fsync: a bench
// corpus, not data to keep), about 10 s for 50,000 files here.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createCipheriv, createHash } from 'node:crypto';

const [dir, countArg = '50000', seed = 'cerberus-bench'] = process.argv.slice(2);
if (!dir) {
  console.error('usage: node bench/smallfiles.mjs <dir> [count] [seed]');
  process.exit(2);
}
const count = Number(countArg);
if (!Number.isInteger(count) || count < 1) throw new Error(`not a count: ${countArg}`);

let state = createHash('sha256').update(`small:${seed}`).digest().readUInt32LE(0) || 1;
const rand = () => {
  // xorshift32: plenty for sizes and times
  state ^= state << 13;
  state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5;
  state >>>= 0;
  return state / 2 ** 32;
};
const key = createHash('sha256').update(`data:${seed}`).digest().subarray(0, 16);
const zeros = Buffer.alloc(8192);
const PER_DIR = 100;
const t0 = Date.now();
await fsp.rm(dir, { recursive: true, force: true });
const files = [];
for (let i = 0; i < count; i++) {
  const d = Math.floor(i / PER_DIR);
  files.push({
    rel: path.join(String(Math.floor(d / 50)).padStart(2, '0'), String(d % 50).padStart(3, '0'), `doc-${String(i).padStart(6, '0')}.txt`),
    size: 1024 + Math.floor(rand() * 7 * 1024),
    mtime: Date.UTC(2020, 0, 1) / 1000 + Math.floor(rand() * 5 * 365 * 86400),
  });
}
const dirs = [...new Set(files.map((f) => path.dirname(f.rel)))];
for (const d of dirs) await fsp.mkdir(path.join(dir, d), { recursive: true });
let next = 0;
let bytes = 0;
async function worker() {
  while (next < files.length) {
    const i = next++;
    const f = files[i];
    const iv = Buffer.alloc(16);
    iv.writeUInt32BE(i, 0);
    const data = createCipheriv('aes-128-ctr', key, iv).update(zeros.subarray(0, f.size));
    const abs = path.join(dir, f.rel);
    await fsp.writeFile(abs, data, { mode: 0o644 });
    await fsp.utimes(abs, f.mtime, f.mtime);
    bytes += f.size;
  }
}
await Promise.all(Array.from({ length: 16 }, worker));
console.log(`small files ${dir}: ${count} files in ${dirs.length} folders, ${bytes} bytes, seed ${JSON.stringify(seed)}, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
