#!/usr/bin/env node
// Generates a deterministic corpus of documents for the benchmarks.
//
//   node bench/corpus.mjs <dir> [size] [seed]
//
// size: bytes, or with a unit (KiB, MiB, GiB; K/M/G mean the same); default 2GiB.
// seed: any string; default "cerberus-bench". Same size and seed give the same tree,
// byte for byte, with the same modes and modification times.
//
// The mix, by bytes: ~40% a few large files (200-500 MiB), ~35% medium files (1-20 MiB),
// ~25% many small files (1-100 KiB) in nested folders. A class whose share is too small
// for even one of its files gives its share to the next smaller class, so small sizes
// (for a quick run) still work. Contents are an AES-128-CTR keystream (key from the seed,
// counter from the file's number): incompressible, as encrypted or already-compressed
// documents are, and generated at disk speed. Structure comes from a seeded PRNG.

import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createCipheriv, createHash } from 'node:crypto';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const BLOCK = MiB;

function parseSize(s) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(String(s));
  if (!m) throw new Error(`not a size: ${s} (use e.g. 2GiB, 500MiB, 1048576)`);
  const mult = { '': 1, K: KiB, M: MiB, G: GiB, T: 1024 * GiB }[m[2].toUpperCase()];
  return Math.round(Number(m[1]) * mult);
}

/** splitmix64-style PRNG on BigInt state; plenty fast for a few thousand decisions. */
function prng(seedText) {
  let state = createHash('sha256').update(`prng:${seedText}`).digest().readBigUInt64LE(0);
  const MASK = (1n << 64n) - 1n;
  const next = () => {
    state = (state + 0x9e3779b97f4a7c15n) & MASK;
    let z = state;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & MASK;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & MASK;
    return z ^ (z >> 31n);
  };
  const rand = () => Number(next() >> 11n) / 2 ** 53; // [0, 1)
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1)); // inclusive
  const pick = (list) => list[Math.floor(rand() * list.length)];
  return { rand, int, pick };
}

const TOPICS = ['invoices', 'reports', 'contracts', 'photos', 'letters', 'taxes', 'projects', 'scans', 'notes', 'archive'];
const WORDS = ['alpha', 'budget', 'client', 'draft', 'final', 'meeting', 'offer', 'plan', 'q1', 'q2', 'q3', 'q4', 'review', 'summary', 'team', 'v2'];
const SMALL_EXT = ['pdf', 'docx', 'xlsx', 'txt', 'md', 'odt', 'jpg', 'png', 'csv', 'eml'];
const MEDIUM_EXT = ['pdf', 'jpg', 'pptx', 'zip', 'tiff', 'mp3'];
const LARGE_EXT = ['mkv', 'iso', 'tar', 'vmdk'];

/** Plans the tree: the list of files (path, size) and folders, without writing anything. */
function plan(total, seed) {
  const r = prng(seed);
  const files = [];
  const dirs = new Set();
  const addDir = (d) => {
    for (let p = d; p && p !== '.'; p = path.posix.dirname(p)) dirs.add(p);
  };
  const name = (ext) => `${r.pick(WORDS)}-${r.pick(WORDS)}-${String(r.int(0, 99999)).padStart(5, '0')}.${ext}`;
  const used = new Set();
  const add = (dir, ext, size) => {
    let p;
    do p = `${dir}/${name(ext)}`;
    while (used.has(p));
    used.add(p);
    addDir(dir);
    files.push({ path: p, size });
  };

  // budgets; a class that cannot hold one file of its minimum size passes its share on
  let large = Math.floor(total * 0.4);
  let medium = Math.floor(total * 0.35);
  if (large < 200 * MiB) {
    medium += large;
    large = 0;
  }
  if (medium < 1 * MiB) medium = 0;
  let small = total - large - medium;

  // large: 200-500 MiB each
  while (large >= 200 * MiB) {
    // never leave a remainder too small for one more large file
    const size = large <= 500 * MiB ? large : Math.min(r.int(200 * MiB, 500 * MiB), large - 200 * MiB);
    add(`media/${2019 + r.int(0, 6)}`, r.pick(LARGE_EXT), size);
    large -= size;
  }
  small += large;
  // medium: 1-20 MiB
  while (medium >= 1 * MiB) {
    let size = Math.min(r.int(1 * MiB, 20 * MiB), medium);
    if (medium - size < 1 * MiB) size = medium;
    add(`${r.pick(TOPICS)}/${2019 + r.int(0, 6)}/large`, r.pick(MEDIUM_EXT), size);
    medium -= size;
  }
  small += medium;
  // small: 1-100 KiB, in folders 1-4 deep, ~40 files a folder; the last takes the rest
  let folder = '';
  let inFolder = 0;
  while (small > 0) {
    if (inFolder === 0) {
      const depth = r.int(1, 4);
      const parts = [r.pick(TOPICS), String(2019 + r.int(0, 6))];
      for (let i = 2; i < depth + 1; i++) parts.push(i === 2 ? String(r.int(1, 12)).padStart(2, '0') : `${r.pick(WORDS)}-${r.int(1, 9)}`);
      folder = parts.join('/');
      inFolder = r.int(5, 80);
    }
    let size = Math.min(r.int(1 * KiB, 100 * KiB), small);
    if (small - size < 1 * KiB) size = small;
    add(folder, r.pick(SMALL_EXT), size);
    small -= size;
    inFolder--;
  }

  // times: whole seconds in 2019-2025, files older than "now" of the benchmark
  const base = Date.UTC(2019, 0, 1) / 1000;
  const span = 6 * 365 * 86400;
  for (const f of files) {
    f.mtime = base + r.int(0, span);
    f.mode = r.rand() < 0.1 ? 0o600 : 0o644;
  }
  const dirList = [...dirs].sort().map((d) => ({ path: d, mtime: base + r.int(0, span) }));
  return { files, dirs: dirList };
}

/** Writes `size` bytes of AES-128-CTR keystream (key from the seed, counter block from n). */
async function writeFile(file, size, key, n, mode) {
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(n, 0); // high bits: file number; the low 96 bits count blocks
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const zeros = Buffer.alloc(BLOCK);
  const fh = await fsp.open(file, 'w', mode);
  try {
    for (let off = 0; off < size; off += BLOCK) {
      const n = Math.min(BLOCK, size - off);
      const chunk = cipher.update(n === BLOCK ? zeros : zeros.subarray(0, n));
      let w = 0;
      while (w < chunk.length) w += (await fh.write(chunk, w, chunk.length - w)).bytesWritten;
    }
  } finally {
    await fh.close();
  }
  await fsp.chmod(file, mode); // the umask must not change it
}

async function main() {
  const [dir, sizeArg = '2GiB', seed = 'cerberus-bench'] = process.argv.slice(2);
  if (!dir) {
    console.error('usage: node bench/corpus.mjs <dir> [size] [seed]');
    process.exit(2);
  }
  const total = parseSize(sizeArg);
  const t0 = Date.now();
  const { files, dirs } = plan(total, seed);
  await fsp.rm(dir, { recursive: true, force: true });
  await fsp.mkdir(dir, { recursive: true });
  for (const d of dirs) await fsp.mkdir(path.join(dir, d.path), { recursive: true });
  const key = createHash('sha256').update(`data:${seed}`).digest().subarray(0, 16);
  let written = 0;
  let lastReport = Date.now();
  for (let i = 0; i < files.length; i++) {
    const f = files[i];
    const abs = path.join(dir, f.path);
    await writeFile(abs, f.size, key, i, f.mode);
    await fsp.utimes(abs, f.mtime, f.mtime);
    written += f.size;
    if (process.stderr.isTTY && Date.now() - lastReport > 1000) {
      lastReport = Date.now();
      process.stderr.write(`\r${(written / MiB).toFixed(0)} / ${(total / MiB).toFixed(0)} MiB`);
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  // folder times last, deepest first: creating their contents changed them
  for (const d of [...dirs].reverse()) {
    await fsp.chmod(path.join(dir, d.path), 0o755);
    await fsp.utimes(path.join(dir, d.path), d.mtime, d.mtime);
  }
  await fsp.utimes(dir, Date.UTC(2025, 0, 1) / 1000, Date.UTC(2025, 0, 1) / 1000);

  const classes = { 'small (<1 MiB)': [0, 0], 'medium (1-20 MiB)': [0, 0], 'large (>=200 MiB)': [0, 0] };
  for (const f of files) {
    const c = f.size < MiB ? 'small (<1 MiB)' : f.size < 200 * MiB ? 'medium (1-20 MiB)' : 'large (>=200 MiB)';
    classes[c][0]++;
    classes[c][1] += f.size;
  }
  const secs = (Date.now() - t0) / 1000;
  console.log(`corpus ${dir}: ${files.length} files in ${dirs.length} folders, ${written} bytes (${(written / MiB).toFixed(1)} MiB), seed ${JSON.stringify(seed)}, ${secs.toFixed(1)} s`);
  for (const [c, [n, b]] of Object.entries(classes)) console.log(`  ${c}: ${n} files, ${(b / MiB).toFixed(1)} MiB`);
  if (written !== total) throw new Error(`internal: wrote ${written} bytes, planned ${total}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
