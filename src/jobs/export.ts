import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import type { JobConfig } from '../config/index.js';
import { CerberusError, configError, describeError, ioError, usageError } from '../errors.js';
import { Excluder, walkSource } from '../engine/walk.js';
import { createArchive, findSevenZip, listArchive, readEntry, testArchive, type ArchiveEntry, type SevenZip } from '../formats/sevenzip/index.js';
import type { Opening } from '../formats/openpgp/message.js';
import { formatBytes } from '../report/format.js';
import type { Reporter } from '../report/log.js';
import type { OpenTarget } from '../storage/open.js';
import { checkYearFree, uploadYear, YEARLY_DIR, type UploadedYear } from './export-upload.js';
import { runRestore } from './restore.js';

/**
 * The yearly cold copy: the source (or a restore point) as one AES-256 7-Zip archive with
 * encrypted headers and a password of its own, holding CERBERUS-MANIFEST.txt (sha256, size
 * and path of every file). The archive is written under a hidden name, opened again and
 * checked entry by entry against what was read, and only then given its final name.
 */

export const MANIFEST_NAME = 'CERBERUS-MANIFEST.txt';

export interface ExportOptions {
  year: number;
  /** `source`, or a restore point as restore takes it: `latest`, a date, an id */
  from: string;
  /** the folder the archive goes to; without it (and with upload) a folder in the state dir, emptied after */
  to?: string;
  /** also to `yearly/<year>/` on every target of the job */
  upload: boolean;
  stateDir: string;
  replace: boolean;
  /** the target a restore point comes from (default the job's first) */
  target?: string;
  opening?: Opening;
  reporter: Reporter;
  open: OpenTarget;
  env: NodeJS.ProcessEnv;
  now: Date;
}

export interface ExportResult {
  archive: string;
  year: number;
  from: string;
  files: number;
  dirs: number;
  symlinks: number;
  /** bytes of the files */
  bytes: number;
  /** bytes of the archive */
  archiveBytes: number;
  sevenZip: string;
  excluded: number;
  /** absent when the archive was only uploaded */
  kept: boolean;
  uploaded: UploadedYear[];
}

/** What the archive must hold, entry by entry, as the source was read. */
interface Expected {
  type: ArchiveEntry['type'];
  size: number;
  crc?: string;
  sha256?: string;
}

export function exportSettings(job: JobConfig): { password: string; level: number } {
  const e = job.export;
  if (!e) throw configError(`job ${job.name} has no export settings`, 'add to the job: export: { password: ${EXPORT_PASSWORD} } (a password of its own, not the vault\'s)');
  const vault = job.encryption.kind === 'cryptomator' ? job.encryption.password : job.encryption.passphrase;
  if (vault !== undefined && e.password === vault) {
    throw configError(`job ${job.name}: export.password is the same as the ${job.encryption.kind === 'cryptomator' ? 'vault password' : 'OpenPGP passphrase'}`, 'the cold copy guards against a failure of the main encryption: give it a password of its own');
  }
  return e;
}

export async function runExport(job: JobConfig, opts: ExportOptions): Promise<ExportResult> {
  const { reporter } = opts;
  if (opts.from === 'source' && job.source.remote) {
    throw usageError(`job ${job.name} reads its source from a ${job.source.remote.type} server; --from source exports local folders only`, 'export a restore point instead: --from latest');
  }
  const settings = exportSettings(job);
  if (settings.password === opts.env.CERBERUS_KEY_PASSPHRASE) {
    throw configError(`job ${job.name}: export.password is the same as the key's passphrase (CERBERUS_KEY_PASSPHRASE)`, 'give the cold copy a password of its own');
  }
  const sz = await findSevenZip(opts.env);
  if (opts.upload) await checkYearFree(job, opts.year, opts.replace, opts.open);
  const dest = path.resolve(opts.to ?? path.join(opts.stateDir, 'export', job.name));
  await fsp.mkdir(dest, { recursive: true }).catch((err: unknown) => {
    throw ioError(err, `cannot create --to ${dest}`);
  });
  const name = `${job.name}-${opts.year}.7z`;
  const final = path.join(dest, name);
  if (!opts.replace && (await exists(final))) {
    if (!opts.upload) throw usageError(`${final} already exists`, 'a year is never overwritten silently: pass --replace to make it again');
    return sendExisting(job, final, sz, opts);
  }

  // everything temporary sits beside the archive, on the same disk, under hidden names
  const work = await fsp.mkdtemp(path.join(dest, `.cerberus-export-${opts.year}-`)).catch((err: unknown) => {
    throw ioError(err, `cannot write into --to ${dest}`);
  });
  const partial = path.join(dest, `.${name}.partial-${randomBytes(4).toString('hex')}`);
  try {
    let roots = job.source.paths;
    let exclude = new Excluder(job.source.exclude);
    if (opts.from !== 'source') {
      const restored = path.join(work, 'restore');
      reporter.phase(`export: restoring ${opts.from} into a temporary folder beside the archive`);
      await runRestore(job, {
        at: opts.from,
        to: restored,
        paths: [],
        overwrite: false,
        reporter,
        open: opts.open,
        ...(opts.opening ? { opening: opts.opening } : {}),
        ...(opts.target !== undefined ? { target: opts.target } : {}),
      });
      // the restore already lays several paths out under their basenames
      roots = [restored];
      exclude = new Excluder([]);
    }

    reporter.phase(`export: reading ${opts.from === 'source' ? 'the source' : `restore point ${opts.from}`} (sha256 of every file)`);
    const scan = await scanSource(roots, exclude, reporter);
    const manifestText = manifestOf(job, opts, scan.expected);
    await fsp.writeFile(path.join(work, MANIFEST_NAME), manifestText, { mode: 0o600 });
    await fsp.writeFile(path.join(work, 'exclude.txt'), scan.leftOut.map((p) => `${p}\n`).join(''), { mode: 0o600 });

    reporter.phase(`export: 7-Zip ${sz.version} writes ${name} (AES-256, names encrypted, -mx=${settings.level})`);
    const totals = count(scan.expected);
    const started = Date.now();
    let lastTenth = -1;
    await createArchive(sz, partial, {
      cwd: work,
      // one root: its contents at the top, as restore lays them out; several: each under its name
      inputs: [...(roots.length === 1 ? [`${roots[0]}/.`] : roots), path.join(work, MANIFEST_NAME)],
      excludeList: path.join(work, 'exclude.txt'),
      password: settings.password,
      level: settings.level,
      env: opts.env,
      onProgress: (pct) => {
        // 7-Zip tells a percentage of the bytes; the files follow it closely enough to show
        const bytes = Math.round((totals.bytes * pct) / 100);
        const files = Math.round((totals.files * pct) / 100);
        reporter.progress({ files, bytes, totalFiles: totals.files, totalBytes: totals.bytes });
        if (!reporter.interactive && pct < 100 && Math.floor(pct / 10) > lastTenth) {
          lastTenth = Math.floor(pct / 10);
          reporter.info(progressLine(pct, files, bytes, totals, started));
        }
      },
    });
    reporter.endProgress();
    // 7-Zip's last percentage is often short of 100
    if (!reporter.interactive) reporter.info(progressLine(100, totals.files, totals.bytes, totals, started));
    await fsp.chmod(partial, 0o600);

    reporter.phase(`export: opening ${name} again: 7-Zip's test, then every entry against what was read`);
    await verifyArchive(sz, partial, settings.password, scan.expected, manifestText, opts.env);

    await syncFile(partial);
    await fsp.rename(partial, final);
    await syncFile(dest);
    const archiveBytes = (await fsp.stat(final)).size;
    reporter.info(`${final}: ${formatBytes(archiveBytes)} for ${totals.files} file${totals.files === 1 ? '' : 's'} (${formatBytes(totals.bytes)})`);
    const uploaded = opts.upload ? await uploadEverywhere(job, final, opts) : [];
    if (opts.to === undefined) await fsp.rm(final, { force: true });
    return { archive: final, year: opts.year, from: opts.from, ...totals, archiveBytes, sevenZip: sz.version, excluded: scan.leftOut.length, kept: opts.to !== undefined, uploaded };
  } catch (err) {
    await fsp.rm(partial, { force: true }).catch(() => undefined);
    if (err instanceof CerberusError) throw err;
    throw ioError(err, `cannot export to ${dest}`);
  } finally {
    await fsp.rm(work, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * An upload that stopped halfway: the archive made then, checked first, is sent again, so
 * the parts already on a target match and are kept.
 */
async function sendExisting(job: JobConfig, final: string, sz: SevenZip, opts: ExportOptions): Promise<ExportResult> {
  opts.reporter.phase(`export: ${path.basename(final)} is already there; checking it, then sending it (parts already sent are kept)`);
  const checked = await verifyExport(job, final, opts.env, opts.reporter);
  const uploaded = await uploadEverywhere(job, final, opts);
  const archiveBytes = (await fsp.stat(final)).size;
  if (opts.to === undefined) await fsp.rm(final, { force: true });
  return { archive: final, year: opts.year, from: 'an earlier run', files: checked.files, dirs: 0, symlinks: 0, bytes: 0, archiveBytes, sevenZip: sz.version, excluded: 0, kept: opts.to !== undefined, uploaded };
}

/** To every target; one that fails does not stop the others, and fails the run at the end. */
async function uploadEverywhere(job: JobConfig, archive: string, opts: ExportOptions): Promise<UploadedYear[]> {
  const done: UploadedYear[] = [];
  const failed: string[] = [];
  for (const t of job.targets) {
    opts.reporter.phase(`export: sending ${path.basename(archive)} to ${t.name} (${YEARLY_DIR}/${opts.year}/)`);
    try {
      const u = await uploadYear(job, t, archive, opts.year, { open: opts.open, reporter: opts.reporter, replace: opts.replace });
      for (const y of u.pruned) opts.reporter.info(`${t.name}: removed the export of ${y} (retention.yearly: ${job.retention.yearly})`);
      done.push(u);
    } catch (err) {
      failed.push(`${t.name}: ${describeError(err)}`);
      opts.reporter.warn(`export to ${t.name} failed: ${describeError(err)}`);
    }
  }
  if (failed.length > 0) {
    throw new CerberusError('STORAGE', `the export could not be sent to ${failed.length} of ${job.targets.length} targets: ${failed.join('; ')}`, {
      hint: `${archive} is complete and kept: run the same command again to resume (parts already sent are kept)`,
    });
  }
  return done;
}

/**
 * An export already made, opened again with the job's export password: 7-Zip's test of every
 * file, then its manifest against its listing. Says what is wrong; never changes anything.
 */
export async function verifyExport(job: JobConfig, file: string, env: NodeJS.ProcessEnv, reporter: Reporter): Promise<{ archive: string; files: number }> {
  const { password } = exportSettings(job);
  const sz = await findSevenZip(env);
  const archive = path.resolve(file);
  if (!(await exists(archive))) throw new CerberusError('NOT_FOUND', `${archive} does not exist`, { hint: 'give the path of a .7z made by cerberus export' });
  reporter.phase(`verify ${archive}: 7-Zip's test of every file`);
  await testArchive(sz, archive, password, env);
  const text = (await readEntry(sz, archive, MANIFEST_NAME, password, env)).toString('utf8');
  const expected = parseManifest(text, archive);
  const listed = await listArchive(sz, archive, password, env);
  const problems = compare(expected, listed, { crc: false });
  if (problems.length > 0) throw integrity(archive, problems);
  return { archive, files: [...expected.values()].filter((e) => e.type === 'file').length };
}

async function verifyArchive(sz: SevenZip, archive: string, password: string, expected: Map<string, Expected>, manifestText: string, env: NodeJS.ProcessEnv): Promise<void> {
  await testArchive(sz, archive, password, env);
  const problems = compare(expected, await listArchive(sz, archive, password, env), { crc: true });
  const stored = (await readEntry(sz, archive, MANIFEST_NAME, password, env)).toString('utf8');
  if (stored !== manifestText) problems.push(`${MANIFEST_NAME} in the archive differs from the one written`);
  if (problems.length > 0) throw integrity(archive, problems);
}

function integrity(archive: string, problems: string[]): CerberusError {
  const more = problems.length > 3 ? ` (and ${problems.length - 3} more)` : '';
  return new CerberusError('INTEGRITY', `${archive} does not hold what was exported: ${problems.slice(0, 3).join('; ')}${more}`, {
    hint: 'a file may have changed while it was read; make the export again',
  });
}

/** Entry by entry: each expected one there with its type, size (and CRC), nothing else. */
function compare(expected: Map<string, Expected>, listed: ArchiveEntry[], opts: { crc: boolean }): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const e of listed) {
    if (e.path === MANIFEST_NAME) continue;
    seen.add(e.path);
    const want = expected.get(e.path);
    if (!want) {
      // folders above what is listed need not be expected one by one
      if (e.type !== 'dir') problems.push(`${e.path} is in the archive but was not exported`);
      continue;
    }
    if (want.type !== e.type) problems.push(`${e.path} is a ${e.type} in the archive, a ${want.type} in the source`);
    else if (want.type === 'file' && want.size !== e.size) problems.push(`${e.path} has ${e.size} bytes in the archive, ${want.size} in the source`);
    else if (opts.crc && want.type === 'file' && want.size > 0 && want.crc !== e.crc) problems.push(`${e.path}: its CRC in the archive differs from the source's`);
  }
  for (const [p, want] of expected) if (!seen.has(p) && (want.type !== 'dir' || opts.crc)) problems.push(`${p} is missing from the archive`);
  return problems;
}

interface Scan {
  expected: Map<string, Expected>;
  /** archive paths 7-Zip must leave out: excluded, unreadable, or not a file, folder or link */
  leftOut: string[];
}

async function scanSource(roots: string[], exclude: Excluder, reporter: Reporter): Promise<Scan> {
  const expected = new Map<string, Expected>();
  const leftOut: string[] = [];
  let files = 0;
  let bytes = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  for await (const ev of walkSource(roots, exclude, { reportExcluded: true })) {
    switch (ev.kind) {
      case 'missing-root':
        throw new CerberusError('NOT_FOUND', `source ${ev.abs} does not exist`, { hint: 'check source.paths, or export a restore point with --from latest' });
      case 'excluded':
        leftOut.push(ev.path);
        break;
      case 'skipped':
        reporter.warn(`left out of the export: ${ev.abs}: ${ev.reason}`);
        leftOut.push(ev.path);
        break;
      case 'error':
        reporter.warn(`left out of the export: cannot read ${ev.abs}: ${ev.error.code ?? ev.error.message}`);
        leftOut.push(ev.path);
        break;
      case 'enter':
        expected.set(ev.entry.path, { type: 'dir', size: 0 });
        break;
      case 'leave':
        break;
      case 'entry': {
        const e = ev.entry;
        if (e.path === MANIFEST_NAME) {
          throw usageError(`the source holds ${MANIFEST_NAME} at its top, the name the export's own manifest takes`, 'rename it, or exclude it in source.exclude');
        }
        // folders arrive as `enter`
        if (e.type === 'symlink') expected.set(e.path, { type: 'symlink', size: 0 });
        else {
          try {
            const { sha256, crc, size } = await digest(e.abs, buf);
            expected.set(e.path, { type: 'file', size, sha256, crc });
            files++;
            bytes += size;
            reporter.progress({ files, bytes });
          } catch (err) {
            reporter.warn(`left out of the export: cannot read ${e.abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
            leftOut.push(e.path);
          }
        }
        break;
      }
    }
  }
  reporter.endProgress();
  return { expected, leftOut };
}

/** sha256 for the manifest and CRC32 to check 7-Zip's listing against, in one read. */
async function digest(file: string, buf: Buffer): Promise<{ sha256: string; crc: string; size: number }> {
  const fh = await fsp.open(file, 'r');
  try {
    const h = createHash('sha256');
    let crc = 0;
    let size = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      h.update(chunk);
      crc = zlib.crc32(chunk, crc);
      size += bytesRead;
    }
    return { sha256: h.digest('hex'), crc: crc.toString(16).toUpperCase().padStart(8, '0'), size };
  } finally {
    await fh.close();
  }
}

function progressLine(pct: number, files: number, bytes: number, totals: { files: number; bytes: number }, started: number): string {
  const s = Math.max(0.001, (Date.now() - started) / 1000);
  return `${pct}%: ${files} of ${totals.files} files, ${formatBytes(bytes)} of ${formatBytes(totals.bytes)}, ${formatBytes(bytes / s)}/s`;
}

function count(expected: Map<string, Expected>): { files: number; dirs: number; symlinks: number; bytes: number } {
  const t = { files: 0, dirs: 0, symlinks: 0, bytes: 0 };
  for (const e of expected.values()) {
    if (e.type === 'file') {
      t.files++;
      t.bytes += e.size;
    } else if (e.type === 'dir') t.dirs++;
    else t.symlinks++;
  }
  return t;
}

/**
 * `sha256  size  path` per file, as `sha256sum` would write it but for the size; a name with
 * a newline or a backslash is escaped as sha256sum does, and its line starts with `\`.
 * Folders and links are in the archive's listing; `# dir` and `# link` lines name them too.
 */
function manifestOf(job: JobConfig, opts: ExportOptions, expected: Map<string, Expected>): string {
  const lines = [
    `# cerberus yearly export of job ${job.name}, year ${opts.year}, from ${opts.from}, made ${opts.now.toISOString()}`,
    '# sha256  size  path (check with: sha256sum -c after cutting the size column)',
  ];
  const paths = [...expected.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const p of paths) {
    const e = expected.get(p)!;
    const escaped = /[\n\\]/.test(p);
    const name = escaped ? p.replace(/\\/g, '\\\\').replace(/\n/g, '\\n') : p;
    if (e.type === 'file') lines.push(`${escaped ? '\\' : ''}${e.sha256}  ${e.size}  ${name}`);
    else lines.push(`# ${e.type === 'dir' ? 'dir' : 'link'}  ${name}`);
  }
  return lines.join('\n') + '\n';
}

function parseManifest(text: string, archive: string): Map<string, Expected> {
  const out = new Map<string, Expected>();
  const unescape = (s: string) => s.replace(/\\(\\|n)/g, (_m, c: string) => (c === 'n' ? '\n' : '\\'));
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('# cerberus') || line.startsWith('# sha256')) continue;
    const other = /^# (dir|link)  (.*)$/.exec(line);
    if (other) {
      out.set(unescape(other[2]!), { type: other[1] === 'link' ? 'symlink' : 'dir', size: 0 });
      continue;
    }
    const m = /^(\\?)([0-9a-f]{64})  (\d+)  (.*)$/.exec(line);
    if (!m) throw new CerberusError('INTEGRITY', `${archive}: ${MANIFEST_NAME} has a line that is not "sha256  size  path": ${JSON.stringify(line.slice(0, 80))}`);
    out.set(m[1] ? unescape(m[4]!) : m[4]!, { type: 'file', size: Number(m[3]), sha256: m[2]! });
  }
  return out;
}

async function exists(p: string): Promise<boolean> {
  return fsp.stat(p).then(
    () => true,
    () => false,
  );
}

async function syncFile(p: string): Promise<void> {
  const fd = fs.openSync(p, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
