import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { acquireRunLock, jobFileStem, RunHistory, type RunRecord, type SkippedRecord } from '../../src/schedule/history.js';
import { tempDir } from '../helpers/cli.js';

const JOB = 'acme/website';
const run = (startedAt: string, status: RunRecord['status'], error?: string): RunRecord => ({
  kind: 'run',
  job: JOB,
  startedAt,
  endedAt: startedAt.replace(':00.000Z', ':30.000Z'),
  status,
  exitCode: status === 'failed' ? 1 : status === 'warning' ? 3 : 0,
  ...(error !== undefined ? { error } : {}),
});
const skipped = (at: string, reason = 'the run started at … is still going'): SkippedRecord => ({ kind: 'skipped', job: JOB, at, reason });

describe('RunHistory', () => {
  it('sums up a job: last run, success, failure, skips since the last success', async () => {
    const h = new RunHistory(await tempDir());
    expect(await h.summary(JOB)).toEqual({ skippedSinceLastSuccess: 0 });
    const recs = [
      run('2026-11-20T02:00:00.000Z', 'failed', 'server down'),
      skipped('2026-11-20T03:00:00.000Z'),
      run('2026-11-21T02:00:00.000Z', 'warning'),
      skipped('2026-11-21T03:00:00.000Z'),
      run('2026-11-22T02:00:00.000Z', 'failed', 'connection refused'),
      skipped('2026-11-22T03:00:00.000Z', 'shutting down'),
      run('2026-11-23T02:00:00.000Z', 'interrupted'),
    ];
    for (const r of recs) await h.append(r);
    const s = await h.summary(JOB);
    expect(s.lastRun).toEqual(recs[6]);
    expect(s.lastSuccess).toEqual(recs[2]);
    expect(s.lastFailure).toEqual(recs[6]);
    expect(s.skippedSinceLastSuccess).toBe(2);
    expect(s.lastSkipped).toEqual(recs[5]);
    expect(s.firstRecordAt).toBe('2026-11-20T02:00:00.000Z');
    // another job's history is its own
    expect(await h.summary('acme/mail')).toEqual({ skippedSinceLastSuccess: 0 });
  });

  it('keeps one JSON-lines file per job, named reversibly', async () => {
    const dir = await tempDir();
    const h = new RunHistory(dir);
    await h.append(run('2026-11-20T02:00:00.000Z', 'success'));
    await h.append({ ...skipped('2026-11-20T03:00:00.000Z'), job: '../évil job' });
    const names = (await fsp.readdir(dir)).sort();
    expect(names).toEqual(['%2E%2E%2F%C3%A9vil%20job.jsonl', 'acme%2Fwebsite.jsonl']);
    expect(names.map((n) => decodeURIComponent(n.replace(/\.jsonl$/, '')))).toEqual(['../évil job', JOB]);
    expect(jobFileStem('x'.repeat(300))).toMatch(/^x{160}~[0-9a-f]{16}$/);
    const text = await fsp.readFile(path.join(dir, 'acme%2Fwebsite.jsonl'), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    expect(JSON.parse(text)).toEqual(run('2026-11-20T02:00:00.000Z', 'success'));
  });

  it('ignores a torn last line, and a record appended after it is not lost', async () => {
    const dir = await tempDir();
    const h = new RunHistory(dir);
    await h.append(run('2026-11-20T02:00:00.000Z', 'success'));
    const file = h.fileFor(JOB);
    // a crash in the middle of a write
    await fsp.appendFile(file, '{"kind":"run","job":"acme/website","startedAt":"2026-11-21T0');
    expect((await h.records(JOB)).length).toBe(1);
    expect((await h.summary(JOB)).lastSuccess?.startedAt).toBe('2026-11-20T02:00:00.000Z');
    await h.append(run('2026-11-22T02:00:00.000Z', 'failed', 'boom'));
    const s = await h.summary(JOB);
    expect(s.lastRun?.startedAt).toBe('2026-11-22T02:00:00.000Z');
    expect((await h.records(JOB)).length).toBe(2);
  });

  it('keeps the file bounded: past maxRecords it keeps the newest keepRecords', async () => {
    const h = new RunHistory(await tempDir(), { maxRecords: 20, keepRecords: 10 });
    const at = (i: number) => new Date(Date.UTC(2026, 10, 1) + i * 3600_000).toISOString();
    for (let i = 0; i < 20; i++) await h.append(skipped(at(i)));
    expect(await h.records(JOB)).toHaveLength(20);
    await h.append(skipped(at(20)));
    const recs = await h.records(JOB);
    expect(recs).toHaveLength(10);
    expect(recs.map((r) => (r as SkippedRecord).at)).toEqual(Array.from({ length: 10 }, (_, i) => at(11 + i)));
    // and again, counted from the trimmed file; appends at once are not lost to a trim
    await Promise.all(Array.from({ length: 15 }, (_, i) => h.append(skipped(at(21 + i)))));
    const after = await h.records(JOB);
    expect(after.length).toBeLessThanOrEqual(20);
    expect((after.at(-1) as SkippedRecord).at).toBe(at(35));
    expect(after.map((r) => (r as SkippedRecord).at)).toEqual([...after.map((r) => (r as SkippedRecord).at)].sort());
    expect((await fsp.readdir(h.dir)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

/** A process that lives until killed, to hold a lock; resolves once it is running. */
async function liveProcess(): Promise<{ pid: number; kill(): void }> {
  const child = spawn(process.execPath, ['-e', 'console.log("up"); setInterval(() => {}, 1000)'], { stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((r) => child.stdout.once('data', () => r()));
  return { pid: child.pid!, kill: () => child.kill('SIGKILL') };
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise<void>((r) => child.once('exit', () => r()));
  return child.pid!;
}

/** The lock this process takes, rewritten as if `pid` had taken it (the same format, another holder). */
async function lockHeldBy(dir: string, pid: number): Promise<string> {
  const release = await acquireRunLock(dir, JOB);
  expect(release).toBeDefined();
  const file = path.join(dir, `${jobFileStem(JOB)}.lock`);
  const info = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
  delete info.procStart;
  await fsp.writeFile(file, JSON.stringify({ ...info, pid, token: `held-by-${pid}` }));
  return file;
}

describe('acquireRunLock', () => {
  it('is exclusive, and free again once released', async () => {
    const dir = await tempDir();
    const release = await acquireRunLock(dir, JOB);
    expect(release).toBeDefined();
    expect(await acquireRunLock(dir, JOB)).toBeUndefined();
    // another job's lock is its own
    const other = await acquireRunLock(dir, 'acme/mail');
    expect(other).toBeDefined();
    await release!();
    const again = await acquireRunLock(dir, JOB);
    expect(again).toBeDefined();
    await again!();
    await other!();
    expect(await fsp.readdir(dir)).toEqual([]);
  });

  it('respects a lock a live process holds', async () => {
    const dir = await tempDir();
    const holder = await liveProcess();
    try {
      const file = await lockHeldBy(dir, holder.pid);
      expect(await acquireRunLock(dir, JOB)).toBeUndefined();
      expect(JSON.parse(await fsp.readFile(file, 'utf8')).pid).toBe(holder.pid);
    } finally {
      holder.kill();
    }
  });

  it('takes over a lock whose process is gone, and the old holder cannot release it', async () => {
    const dir = await tempDir();
    const pid = await deadPid();
    const file = await lockHeldBy(dir, pid);
    const release = await acquireRunLock(dir, JOB);
    expect(release).toBeDefined();
    const info = JSON.parse(await fsp.readFile(file, 'utf8')) as { pid: number };
    expect(info.pid).toBe(process.pid);
    expect(await acquireRunLock(dir, JOB)).toBeUndefined();
    await release!();
    expect(await fsp.readdir(dir)).toEqual([]);
  });

  it('a pid now used by another process does not keep a lock (start time differs)', async () => {
    const dir = await tempDir();
    const holder = await liveProcess();
    try {
      const file = await lockHeldBy(dir, holder.pid);
      const info = JSON.parse(await fsp.readFile(file, 'utf8')) as Record<string, unknown>;
      await fsp.writeFile(file, JSON.stringify({ ...info, procStart: '1' }));
      const release = await acquireRunLock(dir, JOB);
      expect(release).toBeDefined();
      await release!();
    } finally {
      holder.kill();
    }
  });
});
