/**
 * What the harnesses of real servers (Apache, PostgreSQL, MariaDB) share: a free port, a
 * tool run to its end, the tail of a log, and a server's process group stopped for good.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs a program to its end; rejects with its output when it fails. */
export function runTool(
  bin: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; cwd?: string; as?: { uid: number; gid: number } | undefined } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.as ? { uid: opts.as.uid, gid: opts.as.gid } : {}),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`${path.basename(bin)} ${args.join(' ')} failed (${signal ?? `exit ${code}`}): ${stderr.trim() || stdout.trim()}`));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

/** The last lines of a log, for the error of a server that did not come up. */
export async function tailOf(file: string, lines = 30): Promise<string> {
  const text = await fsp.readFile(file, 'utf8').catch(() => '');
  return text.split('\n').slice(-lines).join('\n').trim();
}

/**
 * Stops a server started as its own process group: `signal` (its normal shutdown), SIGKILL
 * after `graceMs`, and SIGKILL to the group at the end: a worker left behind keeps the port.
 */
export async function stopGroup(child: ChildProcess | undefined, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, sig);
    } catch {
      // the group is gone already
    }
  };
  kill(signal);
  const force = setTimeout(() => kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(force);
  kill('SIGKILL');
}

/**
 * The uid/gid to run a server as: as root, the system user its package made (servers refuse
 * to run as root); otherwise ourselves (undefined).
 */
export function serverUser(name: string, why: string): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const uid = Number(spawnSync('id', ['-u', name], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || uid <= 0 || !Number.isInteger(gid)) {
    throw new Error(`running as root, but there is no ${name} user to run ${why}`);
  }
  return { uid, gid };
}

export interface LaunchOptions {
  cwd: string;
  /** where the server writes; its tail is in the error when it does not come up */
  logFile: string;
  as: { uid: number; gid: number } | undefined;
  timeoutMs: number;
  /** answers true once the server takes connections */
  ready: () => Promise<boolean>;
  /** how the server is told to stop (it gets SIGKILL after `graceMs`) */
  stop: { signal: NodeJS.Signals; graceMs: number };
}

/** Starts a server as its own process group, logging to a file, and waits until it is ready. */
export async function launchServer(name: string, bin: string, args: string[], opts: LaunchOptions): Promise<ChildProcess> {
  const log = fs.openSync(opts.logFile, 'a');
  const server = spawn(bin, args, { cwd: opts.cwd, detached: true, stdio: ['ignore', log, log], ...(opts.as ?? {}) });
  fs.closeSync(log);
  server.unref();
  server.on('error', () => undefined);
  const deadline = Date.now() + opts.timeoutMs;
  try {
    for (;;) {
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`${name} exited with ${server.signalCode ?? server.exitCode}`);
      if (Date.now() > deadline) throw new Error(`${name} not accepting connections after ${opts.timeoutMs} ms`);
      if (await opts.ready()) return server;
      await new Promise((r) => setTimeout(r, 50));
    }
  } catch (err) {
    await stopGroup(server, opts.stop.signal, opts.stop.graceMs);
    throw new Error(`${name} did not start: ${(err as Error).message}\n${await tailOf(opts.logFile)}`);
  }
}

/** Whether a process still exists (signal 0 tests without sending anything). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
