import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import { acquireLock, STALE_AFTER_MS } from '../../src/repository/lock.js';
import { LocalBackend } from '../../src/storage/local.js';

let root: string;
let backend: LocalBackend;

beforeEach(async () => {
  root = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-lock-'));
  backend = new LocalBackend(root);
});
afterEach(async () => {
  vi.useRealTimers();
  await fsp.rm(root, { recursive: true, force: true });
});

const lockFiles = async () => (await fsp.readdir(path.join(root, 'locks')).catch(() => [] as string[])).sort();
const readLock = async (name: string) => JSON.parse(await fsp.readFile(path.join(root, 'locks', name), 'utf8')) as Record<string, unknown>;

async function plantLock(name: string, body: Record<string, unknown>): Promise<void> {
  await fsp.mkdir(path.join(root, 'locks'), { recursive: true });
  await fsp.writeFile(path.join(root, 'locks', name), JSON.stringify(body));
}

/** The pid of a process that has certainly ended. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('exit', resolve));
  const pid = child.pid!;
  expect(() => process.kill(pid, 0)).toThrow();
  return pid;
}

async function lockedError(p: Promise<unknown>): Promise<CerberusError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CerberusError);
  expect((err as CerberusError).code).toBe('LOCKED');
  return err as CerberusError;
}

const now = () => new Date().toISOString();

describe('acquireLock', () => {
  it('writes a lock object with owner, host and heartbeat, and removes it on release', async () => {
    const log = vi.fn();
    const lock = await acquireLock(backend, 'cerberus backup --job docs', log);
    const files = await lockFiles();
    expect(files).toHaveLength(1);
    expect(files[0]).toMatch(new RegExp(`^${os.hostname()}-${process.pid}-[0-9a-f]{8}\\.json$`));
    const body = await readLock(files[0]!);
    expect(body).toMatchObject({ host: os.hostname(), pid: process.pid, command: 'cerberus backup --job docs' });
    expect(Date.now() - Date.parse(body.heartbeat as string)).toBeLessThan(60_000);
    expect(Date.parse(body.startedAt as string)).not.toBeNaN();
    await lock.release();
    expect(await lockFiles()).toEqual([]);
    expect(log).not.toHaveBeenCalled();
    // and it can be taken again
    const again = await acquireLock(backend, 'cerberus prune', log);
    await again.release();
  });

  it('refuses a second run with LOCKED naming the holder, and leaves the holder alone', async () => {
    const first = await acquireLock(backend, 'cerberus backup --job docs', () => undefined);
    const held = await lockFiles();
    const err = await lockedError(acquireLock(backend, 'cerberus prune', () => undefined));
    expect(err.message).toContain('cerberus backup --job docs');
    expect(err.message).toContain(`pid ${process.pid}`);
    expect(err.message).toContain(os.hostname());
    expect(err.hint).toContain(`locks/${held[0]}`);
    expect(await lockFiles()).toEqual(held);
    await first.release();
  });

  it('refuses when a live process on this host holds it', async () => {
    // pid 1 is always alive (for a non-root user kill(1, 0) gives EPERM, which also means alive)
    await plantLock(`${os.hostname()}-1-aaaaaaaa.json`, { host: os.hostname(), pid: 1, command: 'cerberus backup', startedAt: now(), heartbeat: now() });
    const err = await lockedError(acquireLock(backend, 'cerberus backup', () => undefined));
    expect(err.message).toContain('pid 1');
  });

  it('refuses when another host holds it with a fresh heartbeat', async () => {
    const heartbeat = new Date(Date.now() - STALE_AFTER_MS + 60_000).toISOString();
    await plantLock('nas-4242-bbbbbbbb.json', { host: 'nas', pid: 4242, command: 'cerberus verify', startedAt: heartbeat, heartbeat });
    const err = await lockedError(acquireLock(backend, 'cerberus backup', () => undefined));
    expect(err.message).toMatch(/cerberus verify.*pid 4242 on nas/);
    expect(await lockFiles()).toEqual(['nas-4242-bbbbbbbb.json']);
  });

  it('takes over a lock whose process on this host is gone, and says so', async () => {
    const pid = await deadPid();
    const stale = `${os.hostname()}-${pid}-cccccccc.json`;
    await plantLock(stale, { host: os.hostname(), pid, command: 'cerberus backup', startedAt: now(), heartbeat: now() });
    const log = vi.fn();
    const lock = await acquireLock(backend, 'cerberus backup', log);
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]![0]).toMatch(new RegExp(`taking over a stale lock locks/${stale}: its process ${pid} on .* is gone`));
    const files = await lockFiles();
    expect(files).toHaveLength(1);
    expect(files[0]).not.toBe(stale);
    await lock.release();
  });

  it('takes over a lock with an old heartbeat, even from another host', async () => {
    const old = new Date(Date.now() - STALE_AFTER_MS - 5 * 60_000).toISOString();
    await plantLock('nas-4242-dddddddd.json', { host: 'nas', pid: 4242, command: 'cerberus backup', startedAt: old, heartbeat: old });
    const log = vi.fn();
    const lock = await acquireLock(backend, 'cerberus backup', log);
    expect(log).toHaveBeenCalledTimes(1);
    expect(log.mock.calls[0]![0]).toMatch(/taking over a stale lock locks\/nas-4242-dddddddd\.json: its heartbeat is 20 minutes old/);
    expect(await lockFiles()).not.toContain('nas-4242-dddddddd.json');
    await lock.release();
  });

  it('takes over an unreadable lock', async () => {
    await fsp.mkdir(path.join(root, 'locks'), { recursive: true });
    await fsp.writeFile(path.join(root, 'locks', 'garbage.json'), '{not json');
    await plantLock('wrong-shape.json', { host: 'x' });
    const log = vi.fn();
    const lock = await acquireLock(backend, 'cerberus backup', log);
    expect(log.mock.calls.map((c) => String(c[0])).sort()).toEqual([
      'taking over a stale lock locks/garbage.json: it is unreadable',
      'taking over a stale lock locks/wrong-shape.json: it is unreadable',
    ]);
    await lock.release();
  });

  it('ignores what is not a lock object', async () => {
    await fsp.mkdir(path.join(root, 'locks', 'a-folder.json'), { recursive: true });
    await fsp.writeFile(path.join(root, 'locks', 'README'), 'not a lock');
    const lock = await acquireLock(backend, 'cerberus backup', () => undefined);
    expect(await lockFiles()).toHaveLength(3);
    await lock.release();
    expect(await lockFiles()).toEqual(['README', 'a-folder.json']);
  });

  it('refreshes its heartbeat while held', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const lock = await acquireLock(backend, 'cerberus backup', () => undefined);
    const [name] = await lockFiles();
    const first = (await readLock(name!)).heartbeat as string;
    await new Promise((resolve) => setTimeout(resolve, 20));
    vi.advanceTimersByTime(60_000);
    const deadline = Date.now() + 5000;
    let later = first;
    while (later === first && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      later = ((await readLock(name!).catch(() => ({ heartbeat: first }))) as { heartbeat: string }).heartbeat;
    }
    expect(Date.parse(later)).toBeGreaterThan(Date.parse(first));
    await lock.release();
    // no heartbeat after release brings the lock back
    vi.advanceTimersByTime(5 * 60_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await lockFiles()).toEqual([]);
  });

  it('does not bring the lock back when release meets a heartbeat write in flight', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    // a slow target: every put takes 100 ms
    const slow = Object.create(backend) as LocalBackend;
    slow.put = async (p, body, size) => {
      await new Promise((resolve) => setTimeout(resolve, 100));
      return backend.put(p, body, size);
    };
    const lock = await acquireLock(slow, 'cerberus backup', () => undefined);
    vi.advanceTimersByTime(60_000); // a heartbeat write starts
    await lock.release();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await lockFiles()).toEqual([]);
  });
});
