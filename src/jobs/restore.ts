import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Minimatch } from 'minimatch';
import type { JobConfig, TargetConfig } from '../config/index.js';
import { CerberusError, ioError } from '../errors.js';
import { hashTap, makeDirs, nsSeconds, SMALL_FILE } from '../fsutil.js';
import { endOfLocalDay, isGenerationId, parseGenerationId } from '../engine/levels.js';
import { isSafeRelativePath, type FileEntry, type Manifest, type ManifestEntry } from '../engine/manifest.js';
import { walkVault, type OpenedVault } from '../formats/cryptomator/index.js';
import { readVaultManifest, requireVaultFiles } from '../vault/generation.js';
import { openVaultAt } from '../vault/keys.js';
import { vaultKey } from '../vault/state.js';
import { RESERVED_DIR } from '../engine/walk.js';
import { decryptStream, type Opening } from '../formats/openpgp/message.js';
import { readTar } from '../formats/tar.js';
import { kindFor, requireDescriptor } from '../repository/descriptor.js';
import { listGenerations, PLAIN_FILES, type Generation } from '../repository/generations.js';
import { checkVolume, generationFiles, readManifest, volumeStream, type GenerationFiles, type VolumeProgress } from '../repository/read.js';
import type { OpenTarget } from '../storage/open.js';
import { joinPath, type Backend } from '../storage/backend.js';
import type { Reporter } from '../report/log.js';
import { readPlainManifest } from './stage-backup.js';
import { formatBytes } from '../report/format.js';

export interface RestoreOptions {
  at: string;
  to: string;
  paths: string[];
  overwrite: boolean;
  /** how to open an OpenPGP repository; Cryptomator ones use the job's vault password */
  opening?: Opening;
  reporter: Reporter;
  open: OpenTarget;
  /** the target to restore from; default the job's first */
  target?: string;
  /** read the manifest and say what would be restored and replaced; write nothing */
  dryRun?: boolean;
}

export interface RestoreResult {
  target: string;
  id: string;
  level: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  to: string;
  /** a dry run: the paths that exist in --to and would be replaced (so need --overwrite) */
  wouldReplace?: string[];
}

export function pickTarget(job: JobConfig, name: string | undefined): TargetConfig {
  if (name === undefined) return job.targets[0]!;
  const t = job.targets.find((x) => x.name === name);
  if (!t) {
    throw new CerberusError('USAGE', `job ${job.name} has no target named ${name}`, {
      hint: `targets: ${job.targets.map((x) => x.name).join(', ')}`,
    });
  }
  return t;
}

/** `latest`, a date (newest on or before that day), or a generation id. */
export function resolvePoint(committed: Generation[], at: string, timeZone: string, reporter: Reporter): Generation {
  if (committed.length === 0) {
    throw new CerberusError('NOT_FOUND', 'the repository has no restore points yet', { hint: 'run cerberus backup first' });
  }
  if (at === 'latest') {
    const trusted = committed.filter((g) => g.info.suspicious.length === 0);
    const pick = trusted.at(-1) ?? committed.at(-1)!;
    const newer = committed.filter((g) => g.id > pick.id);
    for (const g of newer) reporter.warn(`skipping the suspicious restore point ${g.level}/${g.id}; name it with --at ${g.id} to restore it`);
    return pick;
  }
  if (isGenerationId(at)) {
    const g = committed.find((x) => x.id === at);
    if (!g) throw new CerberusError('NOT_FOUND', `no restore point ${at}`, { hint: 'see `cerberus list`' });
    return g;
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(at)) {
    const end = endOfLocalDay(at, timeZone).getTime();
    const g = committed.filter((x) => parseGenerationId(x.id).getTime() <= end).at(-1);
    if (!g) throw new CerberusError('NOT_FOUND', `no restore point on or before ${at}`, { hint: 'see `cerberus list`' });
    return g;
  }
  throw new CerberusError('USAGE', `--at ${at} is not latest, a date (YYYY-MM-DD) or a restore point id (like 2026-11-22T030012Z)`);
}

/** The entries a restore writes: all, or those matching a --path glob, with their folders. */
export function selectEntries(m: Manifest, globs: string[]): ManifestEntry[] {
  if (globs.length === 0) return m.entries;
  const matchers = globs.map((g) => new Minimatch(g.replace(/^\/+|\/+$/g, ''), { dot: true }));
  const chosen = new Set<string>();
  for (const e of m.entries) {
    if (matchers.some((mm) => mm.match(e.path))) chosen.add(e.path);
  }
  if (chosen.size === 0) {
    throw new CerberusError('NOT_FOUND', `no path of restore point ${m.id} matches ${globs.join(', ')}`, {
      hint: 'paths are relative to the backup root, e.g. --path "reports/2026/**"',
    });
  }
  const byPath = new Map(m.entries.map((e) => [e.path, e]));
  const out = new Set<string>();
  for (const p of chosen) {
    out.add(p);
    for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) out.add(p.slice(0, i));
  }
  // everything below a chosen folder
  for (const e of m.entries) {
    for (let i = e.path.lastIndexOf('/'); i > 0; i = e.path.lastIndexOf('/', i - 1)) {
      if (chosen.has(e.path.slice(0, i)) && byPath.get(e.path.slice(0, i))?.type === 'dir') {
        out.add(e.path);
        break;
      }
    }
  }
  return m.entries.filter((e) => out.has(e.path));
}

async function prepareDestination(to: string, overwrite: boolean): Promise<{ created: boolean }> {
  let st: fs.Stats | undefined;
  try {
    st = await fsp.stat(to);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw ioError(err, `cannot use --to ${to}`);
  }
  if (st && !st.isDirectory()) throw new CerberusError('USAGE', `--to ${to} exists and is not a folder`);
  if (st && !overwrite) {
    const names = (await fsp.readdir(to)).filter((n) => !n.startsWith('.cerberus-restore-'));
    if (names.length > 0) {
      throw new CerberusError('USAGE', `--to ${to} is not empty`, { hint: 'restore into an empty folder, or add --overwrite to replace what is there' });
    }
  }
  if (!st) {
    await makeDirs(to).catch((err: unknown) => {
      throw ioError(err, `cannot create --to ${to}`);
    });
  }
  return { created: !st };
}

export async function runRestore(job: JobConfig, opts: RestoreOptions): Promise<RestoreResult> {
  const { reporter } = opts;
  const target = pickTarget(job, opts.target);
  const backend = opts.open(target);
  const kind = kindFor(job, target);
  await requireDescriptor(backend, target.name, kind);
  const { committed } = await listGenerations(backend);
  const point = resolvePoint(committed, opts.at, job.timezone, reporter);
  reporter.phase(`restore ${point.level}/${point.id} from ${target.name} into ${opts.to}`);

  const byId = new Map(committed.map((g) => [g.id, g]));
  let manifest: Manifest;
  let extract: (files: FileEntry[], staging: string, made: Set<string>) => Promise<void>;
  if (kind === 'plain') {
    manifest = await readPlainManifest(backend, point, target.name);
    extract = (files, staging, made) => extractPlainFiles(backend, point, files, staging, made, opts);
  } else if (job.encryption.kind === 'cryptomator') {
    const { password } = job.encryption;
    requireVaultFiles(backend, point);
    const vault = await openVaultAt(backend, point.dir, password, target.name);
    manifest = await readVaultManifest(backend, point, vault.keys);
    extract = (files, staging, made) => extractVaultFiles(point, vault, files, staging, made, opts);
  } else {
    if (!opts.opening) throw new CerberusError('INTERNAL', 'restoring an OpenPGP repository needs a key');
    const opening = opts.opening;
    const pointFiles = await generationFiles(backend, point);
    manifest = await readManifest(backend, point, pointFiles, opening);
    extract = (files, staging, made) => extractFiles(backend, byId, files, staging, made, { ...opts, opening });
  }
  const selected = selectEntries(manifest, opts.paths);
  for (const id of manifest.chain) {
    if (!byId.has(id)) {
      throw new CerberusError('INTEGRITY', `restore point ${point.id} needs generation ${id}, which is missing on ${target.name}`, {
        hint: 'its chain is broken; restore an older point or from another target',
      });
    }
  }

  const to = path.resolve(opts.to);
  if (opts.dryRun) return dryRun(point, target.name, selected, to, reporter);
  const { created } = await prepareDestination(to, opts.overwrite);
  const staging = path.join(to, `.cerberus-restore-${randomBytes(6).toString('hex')}.partial`);
  try {
    await fsp.mkdir(staging);
  } catch (err) {
    if (created) await fsp.rmdir(to).catch(() => undefined);
    throw ioError(err, `cannot write into --to ${to}`);
  }

  try {
    const files = selected.filter((e): e is FileEntry => e.type === 'file');
    const dirs = selected.filter((e) => e.type === 'dir');
    for (const d of dirs) await fsp.mkdir(path.join(staging, d.path), { recursive: true });
    const made = new Set([staging, ...dirs.map((d) => path.join(staging, d.path))]);
    await extract(files, staging, made);
    // links last: nothing is ever written through one
    for (const l of selected) {
      if (l.type !== 'symlink') continue;
      const p = path.join(staging, l.path);
      await fsp.mkdir(path.dirname(p), { recursive: true });
      await fsp.symlink(l.target, p);
      await fsp.lutimes(p, nsSeconds(l.mtimeNs), nsSeconds(l.mtimeNs)).catch(() => undefined);
    }
    await moveIntoPlace(staging, to);
    await fsp.rmdir(staging);
    // folders last, deepest first: writing into them changed their times
    for (const d of [...dirs].reverse()) {
      const p = path.join(to, d.path);
      await fsp.chmod(p, d.mode & 0o7777);
      await fsp.utimes(p, nsSeconds(d.mtimeNs), nsSeconds(d.mtimeNs));
    }
    const bytes = files.reduce((s, f) => s + f.size, 0);
    reporter.info(`restored ${files.length} files (${formatBytes(bytes)}), ${dirs.length} folders, ${selected.length - files.length - dirs.length} links`);
    return {
      target: target.name,
      id: point.id,
      level: point.level,
      files: files.length,
      dirs: dirs.length,
      symlinks: selected.length - files.length - dirs.length,
      bytes,
      to,
    };
  } catch (err) {
    await fsp.rm(staging, { recursive: true, force: true }).catch(() => undefined);
    if (created) await fsp.rmdir(to).catch(() => undefined);
    if (err instanceof CerberusError) throw err;
    throw ioError(err, `restore into ${to} failed`);
  }
}


/** What a restore would do: the counts, and which files already in --to it would replace. */
async function dryRun(point: Generation, target: string, selected: ManifestEntry[], to: string, reporter: Reporter): Promise<RestoreResult> {
  const files = selected.filter((e): e is FileEntry => e.type === 'file');
  const dirs = selected.filter((e) => e.type === 'dir').length;
  const wouldReplace: string[] = [];
  for (const e of selected) {
    if (e.type === 'dir') continue;
    if (await fsp.lstat(path.join(to, e.path)).then(() => true, () => false)) wouldReplace.push(e.path);
  }
  const bytes = files.reduce((n, f) => n + f.size, 0);
  reporter.info(
    `[dry run] would restore ${files.length} files (${formatBytes(bytes)}), ${dirs} folders into ${to}` +
      (wouldReplace.length > 0 ? `, replacing ${wouldReplace.length} files there (that needs --overwrite)` : ''),
  );
  return { target, id: point.id, level: point.level, files: files.length, dirs, symlinks: selected.length - files.length - dirs, bytes, to, wouldReplace };
}

/** Streams each generation that holds wanted bytes once, writing and checking every file. */
async function extractFiles(
  backend: Backend,
  byId: Map<string, Generation>,
  files: FileEntry[],
  staging: string,
  /** folders already made in the staging tree */
  made: Set<string>,
  opts: RestoreOptions & { opening: Opening },
): Promise<void> {
  const byHolder = new Map<string, Map<string, FileEntry>>();
  for (const f of files) {
    const m = byHolder.get(f.holder) ?? new Map<string, FileEntry>();
    m.set(f.path, f);
    byHolder.set(f.holder, m);
  }
  const total = files.reduce((s, f) => s + f.size, 0);
  let written = 0;
  let count = 0;
  for (const holderId of [...byHolder.keys()].sort()) {
    const wanted = byHolder.get(holderId)!;
    const g = byId.get(holderId);
    if (!g) throw new CerberusError('INTEGRITY', `generation ${holderId}, which holds ${wanted.size} of the files, is missing`);
    opts.reporter.info(`reading ${g.level}/${g.id} (${wanted.size} files)`);
    const gf = await generationFiles(backend, g);
    const progress: VolumeProgress = {};
    const pending = new Map<string, string>(); // path → why its last copy did not check out
    const done = new Set<string>();
    try {
      const plain = await decryptStream(volumeStream(backend, g, gf, undefined, progress), opts.opening, `${g.level}/${g.id}`);
      await readTar(plain, async (entry) => {
        if (entry.path === RESERVED_DIR || entry.path.startsWith(RESERVED_DIR + '/')) return;
        if (!isSafeRelativePath(entry.path)) {
          throw new CerberusError('UNSAFE_PATH', `${g.level}/${g.id} holds an unsafe entry "${entry.path}"; nothing was restored`, {
            hint: 'the repository may have been tampered with',
          });
        }
        const want = wanted.get(entry.path);
        if (!want || entry.type !== 'file') return;
        const outcome = await writeChecked(entry.body, staging, made, want, (n) => {
          written += n;
          opts.reporter.progress({ files: count, bytes: written, totalBytes: total, totalFiles: files.length });
        });
        if (outcome !== undefined) {
          pending.set(entry.path, outcome);
          done.delete(entry.path);
          return;
        }
        pending.delete(entry.path);
        done.add(entry.path);
        count++;
      });
    } catch (err) {
      throw await explainReadFailure(err, backend, g, gf, progress);
    }
    const [bad, why] = [...pending.entries()][0] ?? [];
    if (bad) {
      throw new CerberusError('INTEGRITY', `${bad} in ${g.level}/${g.id} does not match the manifest (${why})`, {
        hint: 'the repository is damaged; restore from another point or target',
      });
    }
    const missing = [...wanted.keys()].filter((p) => !done.has(p));
    if (missing.length > 0) {
      throw new CerberusError('INTEGRITY', `${missing.length} files are missing from ${g.level}/${g.id}, e.g. ${missing[0]}`, {
        hint: 'the repository is damaged; restore from another point or target',
      });
    }
  }
  opts.reporter.endProgress();
}

/** A plain stage's files, copied out of `files/` and each checked against the manifest. */
async function extractPlainFiles(backend: Backend, g: Generation, files: FileEntry[], staging: string, made: Set<string>, opts: RestoreOptions): Promise<void> {
  const total = files.reduce((s, f) => s + f.size, 0);
  let written = 0;
  let count = 0;
  for (const f of files) {
    const body = await backend.get(joinPath(g.dir, PLAIN_FILES, f.path));
    const why = await writeChecked(body, staging, made, f, (n) => {
      written += n;
      opts.reporter.progress({ files: count, bytes: written, totalBytes: total, totalFiles: files.length });
    });
    if (why !== undefined) {
      throw new CerberusError('INTEGRITY', `${f.path} in ${g.level}/${g.id} does not match the manifest (${why})`, {
        hint: 'the stage is damaged (a hard-linked file edited in place changes every generation that holds it); restore from another point or target',
      });
    }
    count++;
  }
  opts.reporter.endProgress();
}

/**
 * Writes one restored file into the staging tree and checks it against the manifest:
 * undefined when it matches, else why not. Mode and times are set only on a match.
 */
async function writeChecked(
  body: NodeJS.ReadableStream,
  staging: string,
  made: Set<string>,
  want: FileEntry,
  onBytes: (n: number) => void,
): Promise<string | undefined> {
  const dest = path.join(staging, want.path);
  if (!made.has(path.dirname(dest))) {
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    made.add(path.dirname(dest));
  }
  const hash = createHash('sha256');
  let n = 0;
  const mismatch = () => {
    const sha = hash.digest('hex');
    return sha !== want.sha256 || n !== want.size ? `sha256 ${sha.slice(0, 12)}… and ${n} bytes, expected ${want.sha256.slice(0, 12)}… and ${want.size}` : undefined;
  };
  if (want.size <= SMALL_FILE) {
    // gathered, then written by synchronous calls: for a few KiB, five thread-pool round trips
    // (open, write, close, chmod, utimes) cost more than the work
    const chunks: Buffer[] = [];
    for await (const c of body) {
      const b = c as Buffer;
      n += b.length;
      hash.update(b);
      if (n <= want.size) chunks.push(b); // longer is wrong anyway: no need to hold it all
      onBytes(b.length);
    }
    const why = mismatch();
    if (why !== undefined) return why;
    const fd = fs.openSync(dest, 'w', 0o600);
    try {
      for (const c of chunks) for (let off = 0; off < c.length; ) off += fs.writeSync(fd, c, off, c.length - off);
      fs.fchmodSync(fd, want.mode & 0o7777);
      fs.futimesSync(fd, nsSeconds(want.mtimeNs), nsSeconds(want.mtimeNs));
    } finally {
      fs.closeSync(fd);
    }
    return undefined;
  }
  const tap = hashTap(hash, (k) => {
    n += k;
    onBytes(k);
  });
  await pipeline(body, tap, fs.createWriteStream(dest, { flags: 'w', mode: 0o600, highWaterMark: 1 << 20 }));
  const why = mismatch();
  if (why !== undefined) return why;
  await fsp.chmod(dest, want.mode & 0o7777);
  await fsp.utimes(dest, nsSeconds(want.mtimeNs), nsSeconds(want.mtimeNs));
  return undefined;
}

/**
 * A Cryptomator restore point: the vault is walked as the Cryptomator apps walk it, and each
 * wanted file is decrypted and checked against the manifest. Names in a vault are NFC; the
 * manifest keeps the names as the source had them, and those are what is restored.
 */
async function extractVaultFiles(
  g: Generation,
  vault: OpenedVault,
  files: FileEntry[],
  staging: string,
  made: Set<string>,
  opts: RestoreOptions,
): Promise<void> {
  const wanted = new Map(files.map((f) => [vaultKey(f.path), f]));
  const total = files.reduce((s, f) => s + f.size, 0);
  let written = 0;
  let count = 0;
  // what is left in `wanted` at the end is missing
  for await (const e of walkVault(vault)) {
    const want = wanted.get(e.path);
    if (!want) continue;
    if (e.type !== 'file') {
      throw new CerberusError('INTEGRITY', `${want.path} in ${g.level}/${g.id} is a ${e.type} in the vault but a file in the manifest`, {
        hint: 'the repository is damaged; restore from another point or target',
      });
    }
    const why = await writeChecked(await e.open(), staging, made, want, (n) => {
      written += n;
      opts.reporter.progress({ files: count, bytes: written, totalBytes: total, totalFiles: files.length });
    });
    if (why !== undefined) {
      throw new CerberusError('INTEGRITY', `${want.path} in ${g.level}/${g.id} does not match the manifest (${why})`, {
        hint: 'the repository is damaged; restore from another point or target',
      });
    }
    wanted.delete(e.path);
    count++;
  }
  opts.reporter.endProgress();
  const missing = [...wanted.values()].map((f) => f.path);
  if (missing.length > 0) {
    throw new CerberusError('INTEGRITY', `${missing.length} files are missing from the vault ${g.level}/${g.id}, e.g. ${missing[0]}`, {
      hint: 'the repository is damaged; restore from another point or target',
    });
  }
}

/**
 * A damaged volume often breaks decryption or the tar before its own checksum is reached:
 * then the volume being read is checked, so the error names it.
 */
async function explainReadFailure(err: unknown, backend: Backend, g: Generation, gf: GenerationFiles, progress: VolumeProgress): Promise<unknown> {
  if (progress.failure) return progress.failure;
  if ((err as NodeJS.ErrnoException)?.syscall !== undefined) return err; // local file system trouble
  if (progress.current) {
    const bad = await checkVolume(backend, g, gf, progress.current).catch(() => undefined);
    if (bad) return bad;
  }
  if (err instanceof CerberusError) return err;
  return new CerberusError('INTEGRITY', `${g.level}/${g.id} is damaged: ${err instanceof Error ? err.message : String(err)}`, {
    hint: 'run `cerberus verify`; restore from another restore point or target',
  });
}

/** Moves the staged tree into `to`, merging into folders that exist (with --overwrite). */
async function moveIntoPlace(from: string, to: string): Promise<void> {
  for (const name of await fsp.readdir(from)) {
    const src = path.join(from, name);
    const dest = path.join(to, name);
    const [s, d] = await Promise.all([fsp.lstat(src), fsp.lstat(dest).catch(() => undefined)]);
    if (d && s.isDirectory() && d.isDirectory()) {
      await moveIntoPlace(src, dest);
      await fsp.rmdir(src);
      continue;
    }
    if (d) await fsp.rm(dest, { recursive: true, force: true });
    await fsp.rename(src, dest);
  }
}
