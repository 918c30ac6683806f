import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'dist/bin/cerberus.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  /** killed after `timeoutMs`: a hang must fail the test, not outlive it */
  timedOut?: boolean;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** a command to run the CLI under, e.g. ['setpriv', '--reuid=65534', ...] */
  prefix?: string[];
}

/** Runs the BUILT cli as a user would (`npm run build` first; `npm test` does). */
export function cerberus(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run npm run build`);
  const [cmd, ...pre] = [...(opts.prefix ?? []), process.execPath, BIN, ...args];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd!, pre, {
      cwd: opts.cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, TZ: 'UTC', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    const timer =
      opts.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill('SIGKILL');
          }, opts.timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, stdout, stderr, timedOut });
    });
  });
}

/**
 * Scratch space for tests: tmpfs when the machine has it (fsync is free there, and the
 * tests make thousands of small commits), else the system temp folder.
 */
export const TEST_TMP = process.env.CERBERUS_TEST_TMP ?? (fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir());

/** every folder tempDir made in this test file; test/helpers/cleanup.ts removes them after it */
const made: string[] = [];

export async function tempDir(prefix = 'cerberus-test-'): Promise<string> {
  const dir = await fsp.mkdtemp(path.join(TEST_TMP, prefix));
  made.push(dir);
  return dir;
}

/** Removes what tempDir made: tmpfs is memory, and workspaces of big trees add up over runs. */
export async function removeTempDirs(): Promise<void> {
  for (const dir of made.splice(0)) await fsp.rm(dir, { recursive: true, force: true });
}

export interface Workspace {
  dir: string;
  src: string;
  repo: string;
  state: string;
  keys: string;
  config: string;
  env: NodeJS.ProcessEnv;
  run(args: string[], extraEnv?: NodeJS.ProcessEnv, opts?: Omit<RunOptions, 'env' | 'cwd'>): Promise<RunResult>;
}

export const PASSPHRASE = 'correct horse battery staple';

/** The paths and environment of a workspace in `dir` (made by workspace(), or a copy of one). */
export function workspaceAt(dir: string): Workspace {
  const ws: Workspace = {
    dir,
    src: path.join(dir, 'src'),
    repo: path.join(dir, 'repo'),
    state: path.join(dir, 'state'),
    keys: path.join(dir, 'keys'),
    config: path.join(dir, 'cerberus.yaml'),
    env: {
      CERBERUS_STATE_DIR: path.join(dir, 'state'),
      CERBERUS_KEY_PASSPHRASE: PASSPHRASE,
      CERBERUS_PRIVATE_KEY_FILE: path.join(dir, 'keys', 'cerberus.key.asc'),
    },
    run: (args, extraEnv, opts) => cerberus(args, { ...opts, cwd: dir, env: { ...ws.env, ...extraEnv } }),
  };
  return ws;
}

/**
 * A scratch folder with a source, a key pair (made once per workspace with `cerberus keygen`),
 * a local target and a config. `yamlExtra` is appended to the job.
 */
export async function workspace(opts: { yamlExtra?: string; volumeSize?: string; keygen?: boolean } = {}): Promise<Workspace> {
  const ws = workspaceAt(await tempDir());
  await fsp.mkdir(ws.src, { recursive: true });
  await fsp.writeFile(
    ws.config,
    [
      'jobs:',
      '  docs:',
      '    source: { paths: [src] }',
      '    encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc] }',
      '    targets:',
      '      - { name: usb, type: local, path: repo }',
      '    timezone: UTC',
      `    volumeSize: ${opts.volumeSize ?? '64KiB'}`,
      opts.yamlExtra ?? '',
    ].join('\n') + '\n',
  );
  if (opts.keygen !== false) {
    const r = await ws.run(['keygen', '--out', 'keys', '--email', 'test@example.org']);
    if (r.code !== 0) throw new Error(`keygen failed: ${r.stderr}`);
  }
  return ws;
}

export interface TreeEntry {
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  /** microseconds: Node restores times through utimes, which keeps microseconds */
  mtimeUs: bigint;
  size?: number;
  sha?: string;
  target?: string;
}

/** Everything a restore must get right, path by path. */
export async function snapshotTree(root: string, opts: { dirTimes?: boolean } = {}): Promise<Map<string, TreeEntry>> {
  const { createHash } = await import('node:crypto');
  const out = new Map<string, TreeEntry>();
  async function walk(dir: string, rel: string) {
    for (const name of (await fsp.readdir(dir)).sort()) {
      const abs = path.join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await fsp.lstat(abs, { bigint: true });
      const mtimeUs = st.mtimeNs / 1000n;
      const mode = Number(st.mode & 0o7777n);
      if (st.isSymbolicLink()) out.set(r, { type: 'symlink', mode, mtimeUs, target: await fsp.readlink(abs) });
      else if (st.isDirectory()) {
        out.set(r, { type: 'dir', mode, mtimeUs: opts.dirTimes === false ? 0n : mtimeUs });
        await walk(abs, r);
      } else if (st.isFile()) {
        // streamed: trees under test hold files of 100 MB
        const h = createHash('sha256');
        for await (const c of fs.createReadStream(abs, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
        const sha = h.digest('hex');
        out.set(r, { type: 'file', mode, mtimeUs, size: Number(st.size), sha });
      }
    }
  }
  await walk(root, '');
  return out;
}

/**
 * Differences between two trees; empty when identical. Times may differ by a few
 * microseconds: Node's utimes goes through a double and libuv keeps microseconds.
 */
export function diffTrees(a: Map<string, TreeEntry>, b: Map<string, TreeEntry>, toleranceUs = 5n): string[] {
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    const eb = b.get(p);
    if (!eb) {
      diffs.push(`missing: ${p}`);
      continue;
    }
    const dt = ea.mtimeUs > eb.mtimeUs ? ea.mtimeUs - eb.mtimeUs : eb.mtimeUs - ea.mtimeUs;
    const same =
      ea.type === eb.type && ea.mode === eb.mode && ea.size === eb.size && ea.sha === eb.sha && ea.target === eb.target && dt <= toleranceUs;
    if (!same) diffs.push(`differs: ${p} ${JSON.stringify(ea, big)} vs ${JSON.stringify(eb, big)}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`extra: ${p}`);
  return diffs;
}

const big = (_k: string, v: unknown) => (typeof v === 'bigint' ? v.toString() : v);
