#!/usr/bin/env node
// Generates a deterministic corpus of documents for the benchmarks.
//
//   node bench/corpus.mjs <dir> [size] [seed]                  the mix of bench/memory.sh
//   node bench/corpus.mjs <dir> [size] [seed] <files>          the document mix, <files> files
//   node bench/corpus.mjs <dir> --preset small|medium|large [--seed S] [--size SIZE] [--files N]
//   node bench/corpus.mjs --preset-info small|medium|large     prints "<bytes> <files>"
//
// size: bytes, or with a unit (KiB, MiB, GiB; K/M/G mean the same); default 2GiB.
// seed: any string; default "cerberus-bench". Same arguments give the same tree, byte for
// byte, with the same modes and modification times.
//
// The mix of the first form (bench/memory.sh, bench/upload.sh, bench/vault.sh), by bytes:
// ~40% a few large files (200-500 MiB), ~35% medium files (1-20 MiB), ~25% many small files
// (1-100 KiB) in nested folders. A class whose share is too small for even one of its files
// gives its share to the next smaller class, so small sizes (for a quick run) still work.
//
// The document mix (a file count or a preset; bench/compare.sh), presets:
//   small   200 MiB,   5,000 files
//   medium    2 GiB,  40,000 files
//   large    10 GiB, 100,000 files
// By bytes ~25% a few large files (200-500 MiB; scaled down to size/10 .. size/6 when that is
// less, e.g. 20-33 MiB for small), ~35% PDFs and JPEG-like files (100 KB - 20 MB), ~40% the
// rest of the files: real text (.txt .md .csv .eml: seeded lines of words, compressible) and
// office-like files (.docx .xlsx .pptx .odt .ods: a zip header and random bytes). Folders
// about 20 files each, up to 6 levels, and a few chains 11-14 levels deep; names in
// several scripts (Rechnungen/Übersicht-März.pdf, 日本語/報告書.txt, Ελληνικά, emoji), in NFC,
// valid UTF-8, without '/', NUL, tabs or newlines.
//
// Contents other than text are an AES-128-CTR keystream (key from the seed, counter from the
// file's number): incompressible, as encrypted or already-compressed documents are, and
// generated at disk speed. Structure comes from a seeded PRNG.

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

// ---- the document mix --------------------------------------------------------------------

export const PRESETS = {
  small: { size: 200 * MiB, files: 5_000 },
  medium: { size: 2 * GiB, files: 40_000 },
  large: { size: 10 * GiB, files: 100_000 },
};

// Names people give their folders and files, in several scripts. All NFC, no '/', NUL, tab,
// newline; nothing that needs quoting beyond spaces, '&', '(' and ')'.
const D_TOP = ['Rechnungen', 'Verträge', 'Steuer', 'Fotos', 'Projekte', 'Korrespondenz', 'Versicherungen & Ärzte', '日本語', 'Ελληνικά', 'Документы', 'Projets été', 'Scans', 'Archiv', '📁 Familie', 'Reports', 'Schule', 'Haus', 'Bank'];
const D_SUB = [
  '2019', '2020', '2021', '2022', '2023', '2024', '2025', 'Q1', 'Q2', 'Q3', 'Q4', 'Jänner', 'Februar', 'März', 'April',
  'Mai', 'Juni', 'Entwürfe', 'alt', 'final', 'Kunde Ω', 'Übersicht', '報告', 'Σημειώσεις', 'Kopie', 'Belege', 'Ordner ✓',
  'Café', 'naïve', 'résumé', 'Zürich', 'São Paulo', '東京', '🎉 Feier', 'Kontoauszüge', 'Gehalt', 'Nebenkosten', 'Auto',
  'Garten', 'Reisen', 'Ελλάδα 2022', 'Москва', 'Überweisungen', 'Angebote', 'Lieferscheine', 'misc', 'Backup von Anna',
  'Scans 300dpi', 'Kündigungen', 'Kunden', 'Lieferanten', 'Protokolle', 'Verein', 'Ärztliche Befunde',
];
const D_DEEP = ['Unterordner', 'Entwürfe', 'alt', 'v2', 'noch älter', 'Kopie', 'Sicherung', 'tmp', 'ungeordnet', 'ältere Versionen', '子フォルダ', 'υποφάκελος', 'Ebene', 'sonstiges', 'Anhänge'];
const TEXT_STEMS = ['Notizen', 'Übersicht-März', '報告書', 'Σημειώσεις', 'Protokoll', 'Einkaufsliste', 'README', 'meeting notes', 'Brief an Müller', 'Заметки', '🎉 Einladung', 'Résumé', 'todo', 'Adressen', 'Kündigung Entwurf', 'Lebenslauf', 'Zählerstände', 'idées', 'カレンダー', 'Passwörter NICHT hier'];
const TEXT_EXT = ['txt', 'txt', 'txt', 'md', 'csv', 'eml'];
const OFFICE_STEMS = ['Angebot', 'Rechnung', 'Kalkulation', 'Präsentation', 'Bewerbung', 'Haushaltsbuch', 'Übersicht-März', 'Stundenzettel', 'Projektplan', '見積書', 'Προσφορά', 'Отчёт', 'Budget été', 'Nebenkostenabrechnung'];
const OFFICE_EXT = ['docx', 'docx', 'xlsx', 'xlsx', 'pptx', 'odt', 'ods'];
const PDF_STEMS = ['Rechnung', 'Kontoauszug', 'Scan', 'Vertrag', 'Übersicht-März', 'Steuerbescheid', 'Lohnabrechnung', 'Arztbrief', '請求書', 'Τιμολόγιο', 'Счёт', 'Police', 'Handbuch', 'Zeugnis'];
const JPG_STEMS = ['IMG', 'Foto', 'Urlaub Ελλάδα', 'Scan', '🐱 Katze', 'Hochzeit', '写真', 'Geburtstag', 'DSC', 'Ausflug Zürich'];
const HUGE_FILES = [
  ['Fotos/Videos', 'Urlaub 2023', 'mp4'],
  ['Fotos/Videos', 'Hochzeit Video', 'mkv'],
  ['Archiv/Abbilder', 'Festplatte-Abbild', 'img'],
  ['Archiv/Abbilder', 'Windows 10', 'iso'],
  ['Archiv', 'Fotos-Export', 'zip'],
  ['Archiv', 'Archiv 2019', 'tar'],
];
const TEXT_WORDS = (
  'der die und das ist nicht mit ein eine für auf bitte danke Rechnung Betrag Termin Übersicht März Grüße ' +
  'the and of to in is for that with on please invoice amount meeting summary total due date ' +
  'le la et les des pour avec été réunion montant facture ' +
  'και το της για με τιμολόγιο συνάντηση ' +
  'и в не на что счёт встреча ' +
  '会議 報告 請求書 金額 予定 ' +
  '2019 2020 2021 2022 2023 2024 12,50 € 99,00 100 42 7 Nr. Kd.-Nr. ✓ → …'
).split(' ');

const logUniform = (r, lo, hi) => Math.round(Math.exp(Math.log(lo) + r.rand() * (Math.log(hi) - Math.log(lo))));

/** Plans the document mix: folders and files (path, size, kind, mode, mtime), writes nothing. */
function planDocuments(total, count, seed) {
  const r = prng(`docs:${seed}`);
  // ---- folders
  const folders = [];
  const byPath = new Map();
  const addFolder = (parent, name) => {
    const p = parent ? `${parent.path}/${name.normalize('NFC')}` : name.normalize('NFC');
    let f = byPath.get(p);
    if (!f) {
      f = { path: p, depth: parent ? parent.depth + 1 : 1, kids: 0 };
      if (parent) parent.kids++;
      byPath.set(p, f);
      folders.push(f);
    }
    return f;
  };
  const ensurePath = (p) => p.split('/').reduce((parent, name) => addFolder(parent, name), null);
  for (const t of D_TOP) addFolder(null, t);
  const tops = [...folders];
  const nFolders = Math.max(tops.length, Math.round(count / 20));
  let first = true;
  while (folders.length < nFolders) {
    // one chain first, then about 1 in 250 new folders starts one
    if (first || r.rand() < 0.004) {
      first = false;
      // a deep chain: 11-14 levels below a top folder
      let f = r.pick(tops);
      const levels = r.int(10, 13);
      for (let i = 0; i < levels; i++) f = addFolder(f, `${r.pick(D_DEEP)} ${i + 2}`);
    } else {
      let parent = r.pick(folders);
      if (parent.depth >= 6) parent = r.pick(tops);
      addFolder(parent, r.pick(D_SUB));
    }
  }

  // ---- budgets: large 25%, PDF/JPEG 35%, the rest 40%
  const files = [];
  const used = new Set();
  const fileName = (folder, stem, ext) => {
    let base;
    const x = r.rand();
    if (x < 0.3) base = stem;
    else if (x < 0.65) base = `${stem}-${2019 + r.int(0, 6)}-${String(r.int(1, 9999)).padStart(4, '0')}`;
    else base = `${stem} ${r.int(1, 999)}`;
    let p = `${folder}/${base}.${ext}`.normalize('NFC');
    for (let k = 2; used.has(p); k++) p = `${folder}/${base} (${k}).${ext}`.normalize('NFC');
    used.add(p);
    return p;
  };
  let largeBudget = Math.floor(total * 0.25);
  let mediaBudget = Math.floor(total * 0.35);
  const largeMin = Math.min(200 * MiB, Math.floor(total / 10));
  const largeMax = Math.min(500 * MiB, Math.floor(total / 6));
  if (largeMin < 5 * MiB || largeBudget < largeMin) {
    mediaBudget += largeBudget;
    largeBudget = 0;
  }
  const MEDIA_MIN = 100_000;
  const MEDIA_MAX = 20_000_000;
  // large
  const large = [];
  while (largeBudget >= largeMin) {
    const size = largeBudget <= largeMax ? largeBudget : Math.min(r.int(largeMin, largeMax), largeBudget - largeMin);
    const [dir, stem, ext] = HUGE_FILES[large.length % HUGE_FILES.length];
    const folder = ensurePath(dir);
    large.push({ path: fileName(folder.path, stem, ext), size, kind: 'large', ext });
    largeBudget -= size;
  }
  // PDFs and JPEGs
  const media = [];
  const photoFolders = () => folders.filter((f) => f.path === 'Fotos' || f.path.startsWith('Fotos/'));
  while (mediaBudget >= MEDIA_MIN) {
    let size = Math.min(logUniform(r, MEDIA_MIN, MEDIA_MAX), mediaBudget);
    if (mediaBudget - size < MEDIA_MIN) size = mediaBudget;
    const kind = r.rand() < 0.55 ? 'pdf' : 'jpg';
    let folder;
    if (kind === 'jpg' && r.rand() < 0.6) folder = r.pick(photoFolders());
    else folder = r.pick(folders);
    const stem = kind === 'pdf' ? r.pick(PDF_STEMS) : r.pick(JPG_STEMS);
    media.push({ path: fileName(folder.path, stem, kind), size, kind, ext: kind });
    mediaBudget -= size;
  }
  // the rest: text and office-like files, sized to fill what is left
  const restCount = count - large.length - media.length;
  const restBytes = total - large.reduce((a, f) => a + f.size, 0) - media.reduce((a, f) => a + f.size, 0);
  if (restCount < 1 || restBytes < restCount) {
    throw new Error(`${count} files do not fit ${total} bytes with this mix (at least ${large.length + media.length + 1} files, and a byte for each)`);
  }
  const rest = [];
  const leaves = folders.filter((f) => f.kids === 0);
  for (let i = 0; i < restCount; i++) {
    // every folder without subfolders gets a file first: no empty folders
    const folder = i < leaves.length ? leaves[i] : r.pick(folders);
    const text = r.rand() < 0.6;
    const ext = text ? r.pick(TEXT_EXT) : r.pick(OFFICE_EXT);
    const raw = text ? logUniform(r, 200, 32 * KiB) : logUniform(r, 4 * KiB, 256 * KiB);
    rest.push({ path: fileName(folder.path, text ? r.pick(TEXT_STEMS) : r.pick(OFFICE_STEMS), ext), size: raw, kind: text ? 'text' : 'office', ext });
  }
  const rawSum = rest.reduce((a, f) => a + f.size, 0);
  const factor = restBytes / rawSum;
  for (const f of rest) f.size = Math.max(1, Math.floor(f.size * factor));
  let diff = restBytes - rest.reduce((a, f) => a + f.size, 0);
  for (let i = 0; diff > 0; i = (i + 1) % rest.length, diff--) rest[i].size++;
  for (const f of [...rest].sort((a, b) => b.size - a.size)) {
    if (diff >= 0) break;
    const take = Math.min(-diff, f.size - 1);
    f.size -= take;
    diff += take;
  }

  files.push(...large, ...media, ...rest);
  const base = Date.UTC(2019, 0, 1) / 1000;
  const span = 6 * 365 * 86400;
  for (const f of files) {
    f.mtime = base + r.int(0, span);
    f.mode = r.rand() < 0.1 ? 0o600 : 0o644;
    if (f.kind === 'text') f.textOffset = r.int(0, 1 << 30);
  }
  const dirList = folders.map((f) => f.path).sort().map((d) => ({ path: d, mtime: base + r.int(0, span) }));
  return { files, dirs: dirList };
}

/** About 4 MiB of seeded text lines: the source of every text file's contents. */
function textPool(seed) {
  const r = prng(`text:${seed}`);
  const lines = [];
  let bytes = 0;
  while (bytes < 4 * MiB) {
    const words = [];
    const n = r.int(4, 16);
    for (let i = 0; i < n; i++) words.push(r.pick(TEXT_WORDS));
    let line = words.join(' ');
    line = line[0].toUpperCase() + line.slice(1) + (r.rand() < 0.8 ? '.' : ':');
    if (r.rand() < 0.15) line += '\n';
    lines.push(line);
    bytes += Buffer.byteLength(line) + 1;
  }
  return Buffer.from(lines.join('\n') + '\n');
}

const isCont = (b) => (b & 0xc0) === 0x80;
/** Overwrites a UTF-8 sequence cut short at the end of buf with newlines. */
function fixUtf8End(buf) {
  for (let i = buf.length - 1; i >= Math.max(0, buf.length - 4); i--) {
    const b = buf[i];
    if (isCont(b)) continue;
    const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
    if (buf.length - i < len) buf.fill(0x0a, i);
    return;
  }
}

/** A text file's bytes: a title line, then the pool from the file's offset, whole characters only. */
function textContents(f, pool) {
  const title = Buffer.from(`${path.posix.basename(f.path)}\n\n`);
  const out = Buffer.alloc(f.size);
  let w = title.copy(out, 0, 0, Math.min(title.length, f.size));
  let off = f.textOffset % pool.length;
  while (isCont(pool[off])) off = (off + 1) % pool.length;
  while (w < f.size) {
    const n = pool.copy(out, w, off, Math.min(pool.length, off + f.size - w));
    w += n;
    off = 0;
  }
  fixUtf8End(out);
  return out;
}

const HEADERS = {
  pdf: [Buffer.from('%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'latin1'), Buffer.from('\n%%EOF\n')],
  jpg: [Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 0x4a, 0x46, 0x49, 0x46, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0]), Buffer.from([0xff, 0xd9])],
  office: [Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x14, 0, 0x06, 0]), Buffer.concat([Buffer.from([0x50, 0x4b, 0x05, 0x06]), Buffer.alloc(18)])],
};

/** Writes one planned file of the document mix: text from the pool, the rest keystream. */
function writeDocument(file, f, key, n, pool, zeros) {
  const fd = fs.openSync(file, 'w', f.mode);
  try {
    if (f.kind === 'text') {
      fs.writeSync(fd, textContents(f, pool));
    } else {
      const iv = Buffer.alloc(16);
      iv.writeUInt32BE(n, 0);
      const cipher = createCipheriv('aes-128-ctr', key, iv);
      const [head, tail] = HEADERS[f.kind] ?? [null, null];
      for (let off = 0; off < f.size; off += BLOCK) {
        const len = Math.min(BLOCK, f.size - off);
        const chunk = cipher.update(len === BLOCK ? zeros : zeros.subarray(0, len));
        if (head && off === 0) head.copy(chunk, 0, 0, Math.min(head.length, len));
        if (tail && off + len === f.size && f.size >= head.length + tail.length) tail.copy(chunk, len - tail.length);
        let w = 0;
        while (w < chunk.length) w += fs.writeSync(fd, chunk, w, chunk.length - w);
      }
    }
    fs.fchmodSync(fd, f.mode); // the umask must not change it
    fs.futimesSync(fd, f.mtime, f.mtime);
  } finally {
    fs.closeSync(fd);
  }
}

async function mainDocuments(dir, total, count, seed, preset) {
  const t0 = Date.now();
  const { files, dirs } = planDocuments(total, count, seed);
  await fsp.rm(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  for (const d of dirs) fs.mkdirSync(path.join(dir, d.path), { recursive: true });
  const key = createHash('sha256').update(`data:${seed}`).digest().subarray(0, 16);
  const pool = textPool(seed);
  const zeros = Buffer.alloc(BLOCK);
  let written = 0;
  let lastReport = Date.now();
  for (let i = 0; i < files.length; i++) {
    writeDocument(path.join(dir, files[i].path), files[i], key, i, pool, zeros);
    written += files[i].size;
    if (process.stderr.isTTY && Date.now() - lastReport > 1000) {
      lastReport = Date.now();
      process.stderr.write(`\r${(written / MiB).toFixed(0)} / ${(total / MiB).toFixed(0)} MiB`);
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  for (const d of [...dirs].reverse()) {
    fs.chmodSync(path.join(dir, d.path), 0o755);
    fs.utimesSync(path.join(dir, d.path), d.mtime, d.mtime);
  }
  fs.utimesSync(dir, Date.UTC(2025, 0, 1) / 1000, Date.UTC(2025, 0, 1) / 1000);

  const cls = (label) => ({ label, n: 0, b: 0 });
  const classes = {
    text: cls('text (.txt .md .csv .eml; lines of words, compressible)'),
    office: cls('office-like (.docx .xlsx .pptx .odt .ods; zip header, incompressible)'),
    pdf: cls('PDF-like (100 KB - 20 MB, incompressible)'),
    jpg: cls('JPEG-like (100 KB - 20 MB, incompressible)'),
    large: cls('large (incompressible)'),
  };
  for (const f of files) {
    classes[f.kind].n++;
    classes[f.kind].b += f.size;
  }
  const large = files.filter((f) => f.kind === 'large').map((f) => f.size);
  if (large.length) {
    const scaled = Math.min(...large) < 200 * MiB ? '; 200-500 MiB scaled down to size/10-size/6 for a corpus this small' : '';
    classes.large.label = `large, ${(Math.min(...large) / MiB).toFixed(0)}-${(Math.max(...large) / MiB).toFixed(0)} MiB each (incompressible${scaled})`;
  }
  const depth = (p) => p.split('/').length;
  const deepest = Math.max(...files.map((f) => depth(f.path)));
  const deep = files.filter((f) => depth(f.path) >= 11).length; // 10+ folders above the file
  const unicode = files.filter((f) => /[^\x20-\x7e]/.test(f.path)).length;
  const secs = (Date.now() - t0) / 1000;
  const what = preset ? `preset ${preset}` : 'document mix';
  console.log(`corpus ${dir}: ${files.length} files in ${dirs.length} folders, ${written} bytes (${(written / MiB).toFixed(1)} MiB), ${what}, seed ${JSON.stringify(seed)}, ${secs.toFixed(1)} s`);
  for (const c of Object.values(classes)) if (c.n) console.log(`  ${c.label}: ${c.n} files, ${(c.b / MiB).toFixed(1)} MiB`);
  console.log(`  tree: up to ${deepest - 1} folders deep (${deep} files 10+ deep); ${unicode} paths not plain ASCII (umlauts, Greek, Cyrillic, CJK, emoji; NFC)`);
  if (written !== total) throw new Error(`internal: wrote ${written} bytes, planned ${total}`);
}

async function mainLegacy(dir, sizeArg, seed) {
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

const USAGE = `usage: node bench/corpus.mjs <dir> [size] [seed] [files]
       node bench/corpus.mjs <dir> --preset small|medium|large [--seed S] [--size SIZE] [--files N]
       node bench/corpus.mjs --preset-info small|medium|large`;

async function main() {
  const args = process.argv.slice(2);
  const opts = {};
  const pos = [];
  for (let i = 0; i < args.length; i++) {
    const m = /^--(preset|preset-info|seed|size|files)(?:=(.*))?$/.exec(args[i]);
    if (!m) {
      if (args[i].startsWith('--')) throw new Error(`unknown option ${args[i]}\n${USAGE}`);
      pos.push(args[i]);
      continue;
    }
    const v = m[2] ?? args[++i];
    if (v === undefined) throw new Error(`${args[i - 1]} needs a value\n${USAGE}`);
    opts[m[1]] = v;
  }
  const presetOf = (name) => {
    if (!Object.hasOwn(PRESETS, name)) throw new Error(`unknown preset ${name} (small, medium, large)`);
    return PRESETS[name];
  };
  if (opts['preset-info'] !== undefined) {
    const p = presetOf(opts['preset-info']);
    console.log(`${p.size} ${p.files}`);
    return;
  }
  const [dir, sizeArg, seedArg, filesArg] = pos;
  if (!dir || pos.length > 4) {
    console.error(USAGE);
    process.exit(2);
  }
  const seed = opts.seed ?? seedArg ?? 'cerberus-bench';
  const filesText = opts.files ?? filesArg;
  if (opts.preset === undefined && filesText === undefined) {
    // the first form, as bench/memory.sh, bench/upload.sh and bench/vault.sh call it
    return mainLegacy(dir, opts.size ?? sizeArg ?? '2GiB', seed);
  }
  const preset = opts.preset === undefined ? undefined : presetOf(opts.preset);
  const total = parseSize(opts.size ?? sizeArg ?? preset?.size ?? '2GiB');
  const count = filesText === undefined ? preset.files : Number(filesText);
  if (!Number.isInteger(count) || count < 1) throw new Error(`not a file count: ${filesText}`);
  return mainDocuments(dir, total, count, seed, opts.preset);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
