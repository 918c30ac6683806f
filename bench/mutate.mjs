#!/usr/bin/env node
// The seeded change between two backups of bench/compare.sh, and its undo.
//
//   node bench/mutate.mjs apply <corpus> <side> [seed]
//   node bench/mutate.mjs revert <corpus> <side>
//
// apply: changes 1 % of the files (at least one) and adds 0.5 % new ones (at least one). The
// same corpus and seed give the same change, so every tool sees the same. Changed files:
// text files (.txt .md .csv .eml) get 200-2,000 bytes of lines appended, the others 4-64 KiB
// overwritten in place at a seeded offset (as an editor saving a document rewrites part of
// it); each gets a new modification time (2026-01-15 plus a few seconds). Files of 64 MiB
// and more are never changed. One file of 1-20 MiB (else 100 KB-1 MiB, else any) whose path
// needs no quoting in a glob is always among the changed ones: the single-file restore.
// New files: 70 % text of 1-32 KiB, 30 % PDF-like of 100 KB-5 MB, most in existing folders,
// some in a new folder "Neu 2026/Eingang März". Originals are copied to <side> first, with
// what revert needs in <side>/state.json.
//
// Prints "changed N files (X MiB)", "added N files (X MiB) ..." and "single <path>" (relative
// to the corpus). revert puts the originals back (contents, mode, times), removes what was
// added (and the new folders), restores the folders' times and removes <side>.
import fs from 'node:fs';
import path from 'node:path';
import { createCipheriv, createHash } from 'node:crypto';

const KiB = 1024;
const MiB = 1024 * KiB;
const TEXT_EXT = new Set(['txt', 'md', 'csv', 'eml']);
const WORDS = 'Nachtrag Termin verschoben bitte prüfen Betrag Übersicht März erledigt offen Rückfrage danke update see attached réunion 会議 συνάντηση счёт ✓'.split(' ');
const CHANGED_MTIME = Date.UTC(2026, 0, 15, 10) / 1000;

function prng(seedText) {
  // xorshift128+ on two 64-bit BigInt words seeded from sha256: deterministic everywhere
  const h = createHash('sha256').update(`mutate:${seedText}`).digest();
  let s0 = h.readBigUInt64LE(0) || 1n;
  let s1 = h.readBigUInt64LE(8) || 2n;
  const MASK = (1n << 64n) - 1n;
  const next = () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x = (x ^ (x << 23n)) & MASK;
    s1 = x ^ y ^ (x >> 17n) ^ (y >> 26n);
    return (s1 + y) & MASK;
  };
  const rand = () => Number(next() >> 11n) / 2 ** 53;
  const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));
  const pick = (list) => list[Math.floor(rand() * list.length)];
  return { rand, int, pick };
}

function walk(root) {
  const files = [];
  const dirs = [];
  const rec = (rel) => {
    for (const e of fs.readdirSync(rel ? path.join(root, rel) : root, { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        dirs.push(p);
        rec(p);
      } else if (e.isFile()) {
        files.push({ path: p, size: fs.statSync(path.join(root, p)).size });
      }
    }
  };
  rec('');
  const byPath = (a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0);
  return { files: files.sort(byPath), dirs: dirs.sort() };
}

function textLines(r, bytes) {
  let s = '';
  while (Buffer.byteLength(s) < bytes) {
    const n = r.int(4, 12);
    const words = [];
    for (let i = 0; i < n; i++) words.push(r.pick(WORDS));
    s += `${words.join(' ')}.\n`;
  }
  return Buffer.from(s);
}

function keystream(seed, n, len) {
  const key = createHash('sha256').update(`mutate-data:${seed}`).digest().subarray(0, 16);
  const iv = Buffer.alloc(16);
  iv.writeUInt32BE(n, 0);
  return createCipheriv('aes-128-ctr', key, iv).update(Buffer.alloc(len));
}

const times = (st) => ({ atime: st.atimeMs / 1000, mtime: st.mtimeMs / 1000 });
const ext = (p) => path.posix.extname(p).slice(1).toLowerCase();
// a path a --path / --include glob takes literally: letters, digits, space, . _ - /
const globSafe = (p) => /^[\p{L}\p{N} ._/-]+$/u.test(p);

function apply(corpus, side, seed) {
  if (fs.existsSync(path.join(side, 'state.json'))) throw new Error(`${side} holds an earlier change: revert it first`);
  const r = prng(seed);
  const { files, dirs } = walk(corpus);
  const nChange = Math.max(1, Math.round(files.length * 0.01));
  const nAdd = Math.max(1, Math.round(files.length * 0.005));

  // the single-file restore's file, then the rest of the changed ones
  const tiers = [
    (f) => f.size >= MiB && f.size <= 20 * MiB && globSafe(f.path),
    (f) => f.size >= 100_000 && f.size <= 20 * MiB && globSafe(f.path),
    (f) => f.size > 0 && globSafe(f.path),
    (f) => f.size > 0,
  ];
  const tier = tiers.map((t) => files.filter(t)).find((l) => l.length > 0);
  if (!tier) throw new Error(`${corpus} has no file to change`);
  const single = r.pick(tier);
  const chosen = new Set([single.path]);
  const candidates = files.filter((f) => f.size < 64 * MiB && f.path !== single.path);
  const changed = [single];
  while (changed.length < nChange && candidates.length > 0) {
    const i = r.int(0, candidates.length - 1);
    const f = candidates[i];
    candidates.splice(i, 1);
    if (chosen.has(f.path)) continue;
    chosen.add(f.path);
    changed.push(f);
  }

  // the new files and the folders they go to
  const NEW_DIR = 'Neu 2026/Eingang März';
  const added = [];
  const existing = new Set(files.map((f) => f.path));
  for (let i = 0; i < nAdd; i++) {
    const inNew = dirs.length === 0 || r.rand() < 0.2;
    const folder = inNew ? NEW_DIR : r.pick(dirs);
    const text = r.rand() < 0.7;
    const e = text ? 'txt' : 'pdf';
    const size = text ? r.int(1 * KiB, 32 * KiB) : r.int(100_000, 5_000_000);
    let p = `${folder}/Neu ${i + 1} ${text ? 'Notiz' : 'Scan Übersicht'}.${e}`.normalize('NFC');
    while (existing.has(p)) p = p.replace(/\.(\w+)$/, ' neu.$1');
    existing.add(p);
    added.push({ path: p, size, text });
  }
  const newDirs = [];
  if (added.some((a) => a.path.startsWith(`${NEW_DIR}/`))) {
    for (let d = NEW_DIR; d !== '.'; d = path.posix.dirname(d)) if (!dirs.includes(d)) newDirs.unshift(d);
  }
  // folders whose times adding files (or folders) changes
  const touched = new Set(['']);
  for (const a of added) touched.add(path.posix.dirname(a.path));
  for (const d of newDirs) touched.add(path.posix.dirname(d) === '.' ? '' : path.posix.dirname(d));
  const dirTimes = [...touched]
    .filter((d) => !newDirs.includes(d))
    .map((d) => ({ path: d, ...times(fs.statSync(path.join(corpus, d))) }));

  // originals first, then the state, then the change
  fs.mkdirSync(path.join(side, 'orig'), { recursive: true });
  const state = { changed: [], added: added.map((a) => a.path), newDirs, dirTimes };
  changed.forEach((f, i) => {
    const abs = path.join(corpus, f.path);
    const st = fs.statSync(abs);
    const copy = path.join(side, 'orig', String(i));
    fs.copyFileSync(abs, copy);
    state.changed.push({ path: f.path, copy, mode: st.mode & 0o7777, ...times(st) });
  });
  fs.writeFileSync(path.join(side, 'state.json'), JSON.stringify(state, null, 1));

  let changedBytes = 0;
  changed.forEach((f, i) => {
    const abs = path.join(corpus, f.path);
    if (TEXT_EXT.has(ext(f.path))) {
      const more = textLines(r, r.int(200, 2000));
      fs.appendFileSync(abs, more);
      changedBytes += more.length;
    } else {
      const len = Math.min(f.size, r.int(4 * KiB, 64 * KiB));
      const at = r.int(0, f.size - len);
      const fd = fs.openSync(abs, 'r+');
      try {
        fs.writeSync(fd, keystream(seed, i, len), 0, len, at);
      } finally {
        fs.closeSync(fd);
      }
      changedBytes += len;
    }
    fs.utimesSync(abs, CHANGED_MTIME + i, CHANGED_MTIME + i);
  });
  for (const d of newDirs) fs.mkdirSync(path.join(corpus, d), { mode: 0o755 });
  let addedBytes = 0;
  added.forEach((a, i) => {
    const abs = path.join(corpus, a.path);
    let data;
    if (a.text) {
      data = textLines(r, a.size);
    } else {
      data = keystream(seed, 1_000_000 + i, a.size);
      Buffer.from('%PDF-1.7\n').copy(data);
      Buffer.from('\n%%EOF\n').copy(data, a.size - 7);
    }
    fs.writeFileSync(abs, data, { mode: 0o644 });
    fs.utimesSync(abs, CHANGED_MTIME + 10_000 + i, CHANGED_MTIME + 10_000 + i);
    addedBytes += data.length;
  });
  for (const d of [...newDirs].reverse()) fs.utimesSync(path.join(corpus, d), CHANGED_MTIME, CHANGED_MTIME);

  const mib = (b) => (b / MiB).toFixed(1);
  console.log(`changed ${changed.length} of ${files.length} files (${mib(changed.reduce((a, f) => a + f.size, 0))} MiB of files, ${mib(changedBytes)} MiB of it new)`);
  console.log(`added ${added.length} files (${mib(addedBytes)} MiB)${newDirs.length ? `, ${added.filter((a) => a.path.startsWith(`${NEW_DIR}/`)).length} of them in the new folder "${NEW_DIR}"` : ''}`);
  console.log(`single ${single.path}`);
}

function revert(corpus, side) {
  const file = path.join(side, 'state.json');
  if (!fs.existsSync(file)) {
    fs.rmSync(side, { recursive: true, force: true });
    return;
  }
  const state = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const a of state.added) fs.rmSync(path.join(corpus, a), { force: true });
  for (const d of [...state.newDirs].reverse()) fs.rmSync(path.join(corpus, d), { recursive: true, force: true });
  for (const c of state.changed) {
    const abs = path.join(corpus, c.path);
    fs.copyFileSync(c.copy, abs);
    fs.chmodSync(abs, c.mode);
    fs.utimesSync(abs, c.atime, c.mtime);
  }
  for (const d of state.dirTimes) fs.utimesSync(path.join(corpus, d.path), d.atime, d.mtime);
  fs.rmSync(side, { recursive: true, force: true });
}

const [cmd, corpus, side, seed = 'cerberus-bench'] = process.argv.slice(2);
if (!corpus || !side || (cmd !== 'apply' && cmd !== 'revert')) {
  console.error('usage: node bench/mutate.mjs apply <corpus> <side> [seed]\n       node bench/mutate.mjs revert <corpus> <side>');
  process.exit(2);
}
try {
  if (cmd === 'apply') apply(corpus, side, seed);
  else revert(corpus, side);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
}
