import fsp from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CerberusError } from '../../src/errors.js';
import { runChild } from '../../src/schedule/child-run.js';
import { tempDir } from '../helpers/cli.js';
import { alive } from '../helpers/servers.js';

const env = { PATH: process.env.PATH };

describe('runChild', () => {
  it('streams stdout and stderr line by line and reports the exit code', async () => {
    const lines: string[] = [];
    const res = await runChild([process.execPath, '-e', 'console.log("one\\ntwo"); console.error("err"); process.stdout.write("tail"); process.exitCode = 3', '$HOME;*'], {
      env,
      signal: new AbortController().signal,
      graceMs: 1_000,
      onLine: (line, stream) => lines.push(`${stream}:${line}`),
    });
    expect(res).toEqual({ exitCode: 3, signal: null });
    expect(lines).toEqual(expect.arrayContaining(['stdout:one', 'stdout:two', 'stderr:err', 'stdout:tail']));
    expect(lines).toHaveLength(4);
  });

  it('passes arguments as they are: no shell reads them', async () => {
    const lines: string[] = [];
    await runChild(['/bin/echo', '$HOME; rm -rf /', '*'], { env, signal: new AbortController().signal, graceMs: 1_000, onLine: (l) => lines.push(l) });
    expect(lines).toEqual(['$HOME; rm -rf / *']);
  });

  it('an aborted child that ignores SIGTERM is killed after the grace, with what it started', async () => {
    const dir = await tempDir();
    const pidFile = path.join(dir, 'grandchild.pid');
    const lines: string[] = [];
    const ac = new AbortController();
    // the child starts a grandchild that ignores SIGTERM too, then says it is ready
    const script = `
      const { spawn } = require('node:child_process');
      const g = spawn(process.execPath, ['-e', 'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)'], { stdio: 'ignore' });
      require('node:fs').writeFileSync(${JSON.stringify(pidFile)}, String(g.pid));
      process.on('SIGTERM', () => console.log('got SIGTERM, ignoring it'));
      console.log('ready');
      setInterval(() => {}, 1000);`;
    const started = Date.now();
    const done = runChild([process.execPath, '-e', script], {
      env,
      signal: ac.signal,
      graceMs: 400,
      onLine: (l) => {
        lines.push(l);
        if (l === 'ready') ac.abort();
      },
    });
    const res = await done;
    const took = Date.now() - started;
    expect(res).toEqual({ exitCode: null, signal: 'SIGKILL' });
    expect(lines).toEqual(['ready', 'got SIGTERM, ignoring it']);
    expect(took).toBeGreaterThanOrEqual(400);
    expect(took).toBeLessThan(5_000);
    const grandchild = Number(await fsp.readFile(pidFile, 'utf8'));
    await expect.poll(() => alive(grandchild), { timeout: 3_000 }).toBe(false);
  });

  it('a child that ends on SIGTERM is not waited for until the grace', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const started = Date.now();
    const res = await runChild(['sleep', '600'], { env, signal: ac.signal, graceMs: 10_000 });
    expect(res).toEqual({ exitCode: null, signal: 'SIGTERM' });
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('a program that does not exist is an IO error naming the program, not its arguments', async () => {
    const err = await runChild(['/nonexistent/cerberus', 's3cr3t'], { env, signal: new AbortController().signal, graceMs: 1_000 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CerberusError);
    expect((err as CerberusError).code).toBe('IO');
    expect((err as CerberusError).message).toBe('could not start cerberus: ENOENT');
    expect(JSON.stringify(err)).not.toContain('s3cr3t');
  });
});
