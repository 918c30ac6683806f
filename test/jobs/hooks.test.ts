import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HookConfig } from '../../src/config/index.js';
import { CerberusError } from '../../src/errors.js';
import { runHook, type HookContext } from '../../src/jobs/hooks.js';
import { tempDir } from '../helpers/cli.js';
import { alive } from '../helpers/servers.js';

const ctx: HookContext = { job: 'docs', level: 'daily', generation: '2026-11-22T030000Z', status: 'running' };
const argv = (...a: string[]): HookConfig => ({ argv: a, shell: false, timeoutMs: 10_000, cwd: '/' });
const shell = (line: string, timeoutMs = 10_000): HookConfig => ({ argv: [line], shell: true, timeoutMs, cwd: '/' });

async function run(hook: HookConfig, opts: { signal?: AbortSignal; context?: HookContext } = {}) {
  const lines: string[] = [];
  const outcome = await runHook('before', hook, opts.context ?? ctx, { env: { PATH: process.env.PATH, SECRET_TOKEN: 's3cr3t' }, log: (l) => lines.push(l), ...opts }).then(
    () => undefined,
    (err: unknown) => err,
  );
  return { lines, error: outcome as CerberusError | undefined };
}

describe('runHook', () => {
  it('runs an argv list with the CERBERUS_* variables and logs its output by line, prefixed', async () => {
    const { lines, error } = await run(argv('/bin/sh', '-c', 'echo "$CERBERUS_JOB $CERBERUS_LEVEL $CERBERUS_GENERATION $CERBERUS_STATUS $CERBERUS_HOOK"; echo oops >&2; printf "no newline"'));
    expect(error).toBeUndefined();
    expect(lines).toEqual(expect.arrayContaining(['[before] docs daily 2026-11-22T030000Z running before', '[before] oops', '[before] no newline']));
    expect(lines).toHaveLength(3);
  });

  it('passes arguments as they are: no shell reads them', async () => {
    const { lines } = await run(argv('/bin/echo', '$HOME; rm -rf /', '*'));
    expect(lines).toEqual(['[before] $HOME; rm -rf / *']);
  });

  it('runs a command line through /bin/sh with shell: true', async () => {
    const { lines, error } = await run(shell('for i in 1 2; do echo line $i; done | tr a-z A-Z'));
    expect(error).toBeUndefined();
    expect(lines).toEqual(['[before] LINE 1', '[before] LINE 2']);
  });

  it('a non-zero exit is a HOOK error that names the program, never its arguments', async () => {
    const { error } = await run(argv('/bin/sh', '-c', 'exit 3', 's3cr3t'));
    expect(error).toBeInstanceOf(CerberusError);
    expect(error!.code).toBe('HOOK');
    expect(error!.message).toBe('hook before (sh) exited with status 3');
    expect(JSON.stringify(error)).not.toContain('s3cr3t');
  });

  it('a program that does not exist says so', async () => {
    const { error } = await run(argv('/nonexistent/occ', 'maintenance:mode'));
    expect(error!.code).toBe('HOOK');
    expect(error!.message).toMatch(/hook before \(occ\) could not start: ENOENT/);
    expect(error!.hint).toMatch(/installed and on PATH/);
  });

  it('a hook that hangs is killed at its timeout, with what it started', async () => {
    const dir = await tempDir();
    const pidFile = path.join(dir, 'child.pid');
    const started = Date.now();
    // the shell starts a sleeper in the background and waits: killing only the shell would leave it
    const { error } = await run(shell(`sleep 600 & echo $! > ${pidFile}; wait`, 500));
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(error!.code).toBe('HOOK');
    expect(error!.message).toBe('hook before (shell) did not finish within its timeout of 0.5 s and was killed');
    const pid = Number(await fsp.readFile(pidFile, 'utf8'));
    await expect.poll(() => alive(pid), { timeout: 5_000 }).toBe(false);
  });

  it('a hook that ignores SIGTERM is killed with SIGKILL after the grace period', async () => {
    const { error } = await run(shell('trap "" TERM; while :; do sleep 0.1; done', 300));
    expect(error!.message).toMatch(/did not finish within its timeout/);
  }, 20_000);

  it('an abort stops a running hook', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const { error } = await run(argv('sleep', '600'), { signal: ac.signal });
    expect(error!.message).toBe('hook before (sleep) was stopped: the run was interrupted');
  });

  it('cuts a very long line and keeps multi-byte characters whole', async () => {
    const dir = await tempDir();
    const file = path.join(dir, 'out');
    fs.writeFileSync(file, 'é'.repeat(10_000) + '\nend\n');
    const { lines } = await run(argv('cat', file));
    expect(lines[0]).toMatch(/^\[before\] é+ …\(cut\)$/);
    expect(lines.at(-1)).toBe('[before] end');
    expect(lines.join('')).not.toContain('\ufffd');
  });

  it('runs in its cwd', async () => {
    const dir = await tempDir();
    const { lines } = await run({ ...argv('pwd'), cwd: dir });
    expect(lines).toEqual([`[before] ${dir}`]);
  });

  it('passes the run error to onError-style hooks', async () => {
    const { lines } = await run(shell('echo "$CERBERUS_STATUS: $CERBERUS_ERROR"'), { context: { job: 'docs', status: 'failed', error: 'target usb: disk full' } });
    expect(lines).toEqual(['[before] failed: target usb: disk full']);
  });
});
