import fsp from 'node:fs/promises';
import path from 'node:path';

/** A simulated document folder over many days: the same seeded history on every run. */

/** A small seeded PRNG (mulberry32): the same history on every run. */
export function rng(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: T[]): T => xs[Math.floor(next() * xs.length)]!,
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
  };
}

export async function listFiles(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listFiles(root, r)));
    else if (e.isFile()) out.push(r);
  }
  return out.sort();
}

async function listDirs(root: string, rel = ''): Promise<string[]> {
  const out: string[] = [];
  for (const e of await fsp.readdir(path.join(root, rel), { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const r = rel ? `${rel}/${e.name}` : e.name;
    out.push(r, ...(await listDirs(root, r)));
  }
  return out.sort();
}

const NAMES = ['report', 'Rechnung', 'notes', 'scan', 'contract', 'photo', 'Zoë', 'plan (final)', 'budget#2', 'memo 100%'];
const EXTS = ['.txt', '.pdf', '.odt', '.csv', '.jpg'];

/** A day of work: adds, edits, deletes, renames; now and then a folder or a link. */
export async function mutate(src: string, r: ReturnType<typeof rng>, day: number, when: Date): Promise<void> {
  const dirs = ['', ...(await listDirs(src))];
  const newName = () => `${r.pick(NAMES)}-${day}-${r.int(0, 999)}${r.pick(EXTS)}`;
  for (let i = r.int(1, 3); i > 0; i--) {
    const p = path.join(src, r.pick(dirs), newName());
    await fsp.writeFile(p, r.bytes(r.int(0, 3000)));
    await fsp.utimes(p, when, when);
  }
  let files = await listFiles(src);
  for (let i = r.int(1, 3); i > 0 && files.length > 0; i--) {
    const p = path.join(src, r.pick(files));
    if (r.next() < 0.5) await fsp.appendFile(p, r.bytes(r.int(1, 200)));
    else await fsp.writeFile(p, r.bytes(r.int(0, 3000)));
    await fsp.utimes(p, when, when);
  }
  files = await listFiles(src);
  // about as many deletions as additions once the tree has grown: it stays near 50 files
  if (files.length > 45) {
    for (let i = r.int(files.length > 60 ? 2 : 1, 3); i > 0; i--) await fsp.rm(path.join(src, r.pick(files)), { force: true });
  }
  files = await listFiles(src);
  if (r.next() < 0.6 && files.length > 0) {
    const from = r.pick(files);
    await fsp.rename(path.join(src, from), path.join(src, r.pick(dirs), newName()));
  }
  if (r.next() < 0.15 && dirs.length < 12) await fsp.mkdir(path.join(src, r.pick(dirs), `folder ${day}`), { recursive: true });
  if (r.next() < 0.05) {
    const empty = (await listDirs(src)).filter((d) => d.split('/').length > 1);
    const d = empty.length > 0 ? r.pick(empty) : undefined;
    if (d && (await fsp.readdir(path.join(src, d))).length === 0) await fsp.rmdir(path.join(src, d));
  }
  if (r.next() < 0.1 && files.length > 0) {
    const link = path.join(src, `link-${day}`);
    await fsp.symlink(r.pick(files), link);
  }
  if (r.next() < 0.05) {
    const f = await listFiles(src);
    if (f.length > 0) await fsp.chmod(path.join(src, r.pick(f)), r.pick([0o600, 0o640, 0o644, 0o755]));
  }
}

