/**
 * A real s3rver (the fake S3 server) in a child process, for tests of the S3 backend.
 *
 * Never skipped: s3rver is a devDependency, so a missing or broken s3rver makes
 * startS3rver reject and the tests that use it FAIL, under CI=true and locally alike.
 *
 * A child process rather than in-process: its paginated listing encrypts continuation tokens
 * with DES, which Node 17+ (OpenSSL 3) only offers with --openssl-legacy-provider; without it
 * every truncated ListObjectsV2 answers 500. The flag is per process, so s3rver gets its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface S3Server {
  endpoint: string;
  port: number;
  bucket: string;
  accessKeyId: 'S3RVER';
  secretAccessKey: 'S3RVER';
  dataDir: string;
  /** kills the server and removes its data dir */
  stop(): Promise<void>;
  /** after `stop`: a fresh server (empty bucket) on the same port and endpoint; else a no-op */
  start(): Promise<void>;
}

const RUNNER = fileURLToPath(new URL('./s3rver-main.mjs', import.meta.url));
const READY_TIMEOUT_MS = 20_000;

function checkInstalled(): void {
  try {
    createRequire(import.meta.url).resolve('s3rver');
  } catch (err) {
    throw new Error('s3rver is not installed (it is a devDependency: run npm ci); the S3 tests need it', { cause: err });
  }
}

function launch(port: number, directory: string, bucket: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--openssl-legacy-provider', RUNNER, JSON.stringify({ port, directory, bucket })], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // a test run that forgets stop() must still be able to exit; the child then sees stdin end
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(new Error(`s3rver did not start: ${why}${err ? `\n${err}` : ''}`));
    };
    const timer = setTimeout(() => fail(`not ready after ${READY_TIMEOUT_MS} ms`), READY_TIMEOUT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      if (err.length < 8192) err += d.toString();
    });
    const onExit = (code: number | null, signal: string | null) => fail(`exited with ${signal ?? code}`);
    const onOut = (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      child.stdout!.off('data', onOut).resume();
      try {
        resolve({ child, port: (JSON.parse(out.slice(0, nl)) as { port: number }).port });
      } catch {
        fail(`unexpected output ${JSON.stringify(out)}`);
      }
    };
    child.stdout!.on('data', onOut);
    child.on('error', (e) => fail(e.message));
    child.on('exit', onExit);
  });
}

async function terminate(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  await exited;
}

export async function startS3rver(opts: { bucket?: string } = {}): Promise<S3Server> {
  checkInstalled();
  const bucket = opts.bucket ?? 'cerberus-test';
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  const dataDir = await fsp.mkdtemp(path.join(base, 'cerberus-s3rver-'));
  let child: ChildProcess | undefined;
  let port = 0;
  try {
    ({ child, port } = await launch(0, dataDir, bucket));
  } catch (err) {
    await fsp.rm(dataDir, { recursive: true, force: true });
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    bucket,
    accessKeyId: 'S3RVER',
    secretAccessKey: 'S3RVER',
    dataDir,
    async start() {
      if (child) return;
      await fsp.mkdir(dataDir, { recursive: true });
      ({ child } = await launch(port, dataDir, bucket));
    },
    async stop() {
      await terminate(child);
      child = undefined;
      await fsp.rm(dataDir, { recursive: true, force: true });
    },
  };
}
