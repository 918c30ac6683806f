import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { CerberusError } from '../errors.js';
import { joinPath, type Backend } from '../storage/backend.js';
import { putBuffer, readSmall } from './io.js';

/**
 * One run per repository: a lock object under `locks/` with owner, host and heartbeat.
 * A lock whose process is dead (same host) or whose heartbeat is old is taken over.
 */

const LOCKS = 'locks';
const HEARTBEAT_MS = 60_000;
export const STALE_AFTER_MS = 15 * 60_000;

const lockSchema = z.object({
  host: z.string(),
  pid: z.number().int(),
  command: z.string(),
  startedAt: z.string(),
  heartbeat: z.string(),
});
type LockBody = z.infer<typeof lockSchema>;

export interface HeldLock {
  release(): Promise<void>;
}

/** Whether a process of this host is still there (EPERM: it is, but another user's). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function staleness(lock: LockBody, now: number): string | undefined {
  if (lock.host === os.hostname() && !pidAlive(lock.pid)) return `its process ${lock.pid} on ${lock.host} is gone`;
  const age = now - Date.parse(lock.heartbeat);
  if (!(age < STALE_AFTER_MS)) return `its heartbeat is ${Math.round(age / 60_000)} minutes old`;
  return undefined;
}

export async function acquireLock(
  backend: Backend,
  command: string,
  log: (msg: string) => void,
): Promise<HeldLock> {
  const name = `${os.hostname()}-${process.pid}-${randomBytes(4).toString('hex')}.json`;
  const mine = joinPath(LOCKS, name);

  const others = async (): Promise<Array<{ path: string; lock: LockBody | undefined }>> => {
    const out: Array<{ path: string; lock: LockBody | undefined }> = [];
    for (const e of await backend.list(LOCKS)) {
      if (e.isDir || e.name === name || !e.name.endsWith('.json')) continue;
      const path = joinPath(LOCKS, e.name);
      try {
        const parsed = lockSchema.safeParse(JSON.parse((await readSmall(backend, path, 65536)).toString('utf8')));
        out.push({ path, lock: parsed.success ? parsed.data : undefined });
      } catch {
        out.push({ path, lock: undefined }); // vanished or unreadable: treated as stale below
      }
    }
    return out;
  };

  const check = async () => {
    for (const { path, lock } of await others()) {
      const why = lock ? staleness(lock, Date.now()) : 'it is unreadable';
      if (why) {
        log(`taking over a stale lock ${path}: ${why}`);
        await backend.remove(path);
        continue;
      }
      throw new CerberusError(
        'LOCKED',
        `${backend.description} is locked by \`${lock!.command}\` (pid ${lock!.pid} on ${lock!.host}, since ${lock!.startedAt})`,
        { hint: `wait for it to finish; if it is gone, remove ${path} on the target` },
      );
    }
  };

  await check();
  const startedAt = new Date().toISOString();
  const write = () =>
    putBuffer(
      backend,
      mine,
      Buffer.from(JSON.stringify({ host: os.hostname(), pid: process.pid, command, startedAt, heartbeat: new Date().toISOString() })),
    );
  await write();
  try {
    await check(); // two runs that raced both see each other and both give way
  } catch (err) {
    await backend.remove(mine);
    throw err;
  }
  let heartbeat: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    heartbeat = write().catch(() => undefined);
  }, HEARTBEAT_MS);
  timer.unref();
  return {
    async release() {
      clearInterval(timer);
      await heartbeat; // a heartbeat write still in flight would bring the lock back after the remove
      await backend.remove(mine);
    },
  };
}
