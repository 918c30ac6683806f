import { spawn } from 'node:child_process';
import { CerberusError } from '../../errors.js';

/**
 * 7-Zip itself, as Debian's `7zip` package installs it (`7zz`), driven as a child process.
 *
 * Why this engine: it is Igor Pavlov's current 7-Zip (26.x on Debian 12 security), packaged
 * for arm64 and amd64 alike, so the Pi, the image (`apt-get install 7zip`) and CI run the
 * same binary with nothing downloaded at run time, and the archive is 7-Zip's own, not a
 * look-alike. The alternatives: `7z-wasm` blocks the event loop (it would need a worker
 * thread), skips absolute symlinks without a word and leaves output world-writable;
 * `7zip-bin` ships p7zip 16.02 from 2016, a fork that is no longer maintained.
 *
 * The password never reaches argv: `a -p` and a prompting `t`/`l`/`e` read it from stdin.
 */

export interface SevenZip {
  bin: string;
  version: string;
}

export interface ArchiveEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  size: number;
  /** CRC32 as 7-Zip shows it (8 hex digits, upper case); absent for folders and empty files */
  crc?: string;
}

const INSTALL_HINT = 'install 7-Zip: apt-get install 7zip (the cerberus image has it), or set CERBERUS_7ZZ to its 7zz';

/** Finds 7zz (CERBERUS_7ZZ, else on PATH) and checks that it runs. */
export async function findSevenZip(env: NodeJS.ProcessEnv): Promise<SevenZip> {
  const bin = env.CERBERUS_7ZZ || '7zz';
  const r = await run({ bin, version: '' }, ['i'], { env }).catch((err: unknown) => {
    throw new CerberusError('CONFIG', `7-Zip (${bin}) cannot be started: ${(err as Error).message}`, { hint: INSTALL_HINT });
  });
  const version = /7-Zip (?:\(z\) )?(\d+\.\d+)/.exec(r.stdout)?.[1];
  if (r.code !== 0 || version === undefined) throw new CerberusError('CONFIG', `${bin} is not 7-Zip (it said: ${firstLine(r.stdout + r.stderr)})`, { hint: INSTALL_HINT });
  return { bin, version };
}

export interface CreateOptions {
  /** where 7-Zip runs; relative inputs are relative to it */
  cwd: string;
  /** folders whose contents go to the archive's root (given as `dir/.`), or to `basename/` */
  inputs: string[];
  /** a UTF-8 file of archive paths to leave out, one per line */
  excludeList?: string;
  password: string;
  /** 0 (store) to 9 */
  level: number;
  env: NodeJS.ProcessEnv;
  /** called with 7-Zip's percentage as it goes */
  onProgress?: (percent: number) => void;
}

/**
 * Writes a new AES-256 archive with encrypted headers (names hidden too): symlinks stored as
 * links (-snl), nothing compressed by more than `level`. `archive` must not exist.
 */
export async function createArchive(sz: SevenZip, archive: string, opts: CreateOptions): Promise<void> {
  const args = ['a', '-t7z', '-mhe=on', `-mx=${opts.level}`, '-snl', '-scsUTF-8', '-ssp', '-bso0', '-bse2', '-bsp1', '-p', archive, ...opts.inputs];
  if (opts.excludeList !== undefined) args.push(`-x@${opts.excludeList}`);
  const r = await run(sz, args, { cwd: opts.cwd, env: opts.env, stdin: `${opts.password}\n`, onStdout: progressParser(opts.onProgress) });
  if (r.code !== 0) throw sevenZipError('write', archive, r);
}

/** 7-Zip's own test of every file (decrypts and checks each CRC); throws what it found. */
export async function testArchive(sz: SevenZip, archive: string, password: string, env: NodeJS.ProcessEnv): Promise<void> {
  const r = await run(sz, ['t', '-bso1', '-bse2', '-bsp0', archive], { env, stdin: `${password}\n` });
  if (r.code !== 0) throw sevenZipError('test', archive, r);
}

/** Every entry of the archive, as `7zz l -slt` lists them. */
export async function listArchive(sz: SevenZip, archive: string, password: string, env: NodeJS.ProcessEnv): Promise<ArchiveEntry[]> {
  const r = await run(sz, ['l', '-slt', '-bso1', '-bse2', '-bsp0', archive], { env, stdin: `${password}\n` });
  if (r.code !== 0) throw sevenZipError('list', archive, r);
  // the archive's own block comes first, then one block per entry after the `----------` line
  const body = r.stdout.split(/^-{10}$/m)[1] ?? '';
  const out: ArchiveEntry[] = [];
  for (const block of body.split(/\n\s*\n/)) {
    const fields = new Map<string, string>();
    for (const line of block.split('\n')) {
      const eq = line.indexOf(' = ');
      if (eq > 0) fields.set(line.slice(0, eq), line.slice(eq + 3));
    }
    const p = fields.get('Path');
    if (p === undefined) continue;
    const attrs = fields.get('Attributes') ?? '';
    const type = attrs.startsWith('D') ? 'dir' : / l[rwx-]{9}$/.test(attrs) ? 'symlink' : 'file';
    const crc = fields.get('CRC') || undefined;
    out.push({ path: p, type, size: Number(fields.get('Size') ?? 0), ...(crc ? { crc } : {}) });
  }
  return out;
}

/** One file of the archive, whole, into memory (for the small manifest). */
export async function readEntry(sz: SevenZip, archive: string, name: string, password: string, env: NodeJS.ProcessEnv): Promise<Buffer> {
  const r = await run(sz, ['e', '-so', '-bse2', '-bsp0', archive, name], { env, stdin: `${password}\n`, binary: true });
  if (r.code !== 0) throw sevenZipError(`read ${name} from`, archive, r);
  return r.out;
}

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  out: Buffer;
}

function run(
  sz: SevenZip,
  args: string[],
  opts: { cwd?: string; env: NodeJS.ProcessEnv; stdin?: string; binary?: boolean; onStdout?: (text: string) => void },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    // 7-Zip reads names in the locale's charset: UTF-8, whatever the machine's locale is
    const child = spawn(sz.bin, args, { cwd: opts.cwd, env: { ...opts.env, LC_ALL: 'C.UTF-8' }, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
      opts.onStdout?.(d.toString('utf8'));
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    // a child that exits before it reads its password closes the pipe: its exit code tells
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.stdin ?? '');
    child.on('close', (code, signal) => {
      const buf = Buffer.concat(out);
      resolve({ code: code ?? (signal ? 128 : -1), stdout: opts.binary ? '' : buf.toString('utf8'), stderr, out: buf });
    });
  });
}

/** 7-Zip's progress (`-bsp1`): percentages between backspaces. */
function progressParser(onProgress: ((p: number) => void) | undefined): ((text: string) => void) | undefined {
  if (!onProgress) return undefined;
  let last = -1;
  return (text) => {
    for (const m of text.matchAll(/(\d{1,3})%/g)) {
      const p = Number(m[1]);
      if (p !== last && p <= 100) onProgress((last = p));
    }
  };
}

/** `what` completes "7-Zip cannot …": write, test, list, read X from. */
function sevenZipError(what: string, archive: string, r: RunResult): CerberusError {
  const text = `${r.stderr}\n${r.stdout}`;
  // the names are encrypted too: when 7-Zip could read them the password was right, so a
  // "Data Error in encrypted file. Wrong password?" after that is damage, not the password
  if (/Data Error|CRC Failed|Headers Error|Unexpected end of archive|Is not archive|Cannot open the file as archive/i.test(text)) {
    return new CerberusError('INTEGRITY', `7-Zip cannot ${what} ${archive}: the archive is damaged (${firstLine(pick(text))})`, { hint: 'keep the damaged copy aside and make the export again' });
  }
  if (/Wrong password|Cannot open encrypted archive/i.test(text)) {
    return new CerberusError('KEY', `7-Zip cannot ${what} ${archive}: the password does not open it (or its header is damaged)`, { hint: 'check export.password (the variable it names, e.g. EXPORT_PASSWORD)' });
  }
  if (/No space left on device|errno=28/i.test(text)) {
    return new CerberusError('IO', `7-Zip cannot ${what} ${archive}: the disk is full`, { hint: 'free some space there, or export to another disk with --to' });
  }
  return new CerberusError('IO', `7-Zip cannot ${what} ${archive} (exit ${r.code}): ${firstLine(pick(text))}`);
}

/** 7-Zip's most telling line: an ERROR line, else the first non-empty one. */
function pick(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter(Boolean);
  return lines.find((l) => /^ERROR|error/i.test(l)) ?? lines.find((l) => !/^7-Zip|^\d+-bit|^Scanning|^Enter password/.test(l)) ?? 'no message';
}

const firstLine = (s: string) => s.split('\n')[0]?.trim() ?? '';
