import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DatabaseSourceConfig, JobConfig } from '../../src/config/index.js';
import { checkDumpFolder, dumpDatabase } from '../../src/jobs/database-files.js';
import { MemoryReporter } from '../../src/report/log.js';
import { errorOf } from '../helpers/errors.js';
import { vaultJob } from '../helpers/jobs.js';

/**
 * dumpDatabase with stand-in dump tools (the real pg_dump is in test/e2e/databases.test.ts):
 * what lands in the file or stream, its digest, and that a failed dump leaves no file.
 */

let tmp: string;
let tools: string;

beforeAll(async () => {
  tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'cerberus-dbfiles-'));
  tools = path.join(tmp, 'tools');
  await fsp.mkdir(tools);
});

afterAll(async () => {
  await fsp.rm(tmp, { recursive: true, force: true });
});

const db: DatabaseSourceConfig = { type: 'postgres', url: 'postgres://app:s3cret@127.0.0.1:1/app', name: 'app' };

async function tool(name: string, script: string): Promise<NodeJS.ProcessEnv> {
  const file = path.join(tools, name);
  await fsp.writeFile(file, `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  return { ...process.env, CERBERUS_PG_DUMP: file };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

describe('dumpDatabase', () => {
  it('writes the dump to a new 0600 file and returns its size and sha256', async () => {
    const env = await tool('ok', 'head -c 300000 /dev/zero | tr "\\0" "x"');
    const reporter = new MemoryReporter();
    const file = path.join(tmp, 'ok.dump');
    const got = await dumpDatabase(db, file, { privateDir: tmp, reporter, env });
    const bytes = await fsp.readFile(file);
    expect(got).toEqual({ path: 'databases/app.dump', size: 300_000, sha256: sha(bytes) });
    expect(bytes.equals(Buffer.alloc(300_000, 'x'))).toBe(true);
    expect((await fsp.stat(file)).mode & 0o777).toBe(0o600);
    expect(reporter.lines.join('\n')).toMatch(/dumping database app \(postgres\)…\n.*dumped database app \(postgres\): 293\.0 KiB in [\d.]+ s/);
  });

  it('never writes over an existing file', async () => {
    const env = await tool('ok2', 'echo data');
    const file = path.join(tmp, 'taken.dump');
    await fsp.writeFile(file, 'mine');
    const e = await errorOf(dumpDatabase(db, file, { privateDir: tmp, reporter: new MemoryReporter(), env }));
    expect(e.message).toMatch(/cannot create .*taken\.dump for the dump of database app/);
    expect(await fsp.readFile(file, 'utf8')).toBe('mine');
  });

  it('a dump that fails after its first bytes leaves no file, and says why', async () => {
    const env = await tool('late', `head -c 200000 /dev/zero\necho "pg_dump: error: connection lost" >&2\nexit 2`);
    const file = path.join(tmp, 'late.dump');
    const e = await errorOf(dumpDatabase(db, file, { privateDir: tmp, reporter: new MemoryReporter(), env }));
    expect(e.code).toBe('SERVICE');
    expect(e.message).toMatch(/^database source "app": pg_dump failed \(exit status 2\): pg_dump: error: connection lost$/);
    expect(fs.existsSync(file)).toBe(false);
  });

  it('a bad URL fails before any file is made', async () => {
    const file = path.join(tmp, 'bad.dump');
    const e = await errorOf(dumpDatabase({ ...db, url: 'http://x/y' }, file, { privateDir: tmp, reporter: new MemoryReporter() }));
    expect(e.code).toBe('CONFIG');
    expect(fs.existsSync(file)).toBe(false);
  });

  it('streams into a writable, which it ends', async () => {
    const env = await tool('stream', 'printf "PGDMP-some-bytes"');
    const chunks: Buffer[] = [];
    let ended = false;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
      final(cb) {
        ended = true;
        cb();
      },
    });
    const got = await dumpDatabase({ ...db, type: 'mysql', url: 'mysql://u@h/shop', name: 'shop' }, sink, { privateDir: tmp, reporter: new MemoryReporter(), env: { ...env, CERBERUS_MYSQLDUMP: env.CERBERUS_PG_DUMP } });
    expect(Buffer.concat(chunks).toString()).toBe('PGDMP-some-bytes');
    expect(ended).toBe(true);
    expect(got).toEqual({ path: 'databases/shop.sql', size: 16, sha256: sha(Buffer.from('PGDMP-some-bytes')) });
  });

  it('a writable that fails is the error, and the tool is stopped', async () => {
    const env = await tool('endless', 'exec cat /dev/zero');
    const sink = new Writable({
      write(_chunk, _enc, cb) {
        cb(Object.assign(new Error('no space left'), { code: 'ENOSPC' }));
      },
    });
    const err = await dumpDatabase(db, sink, { privateDir: tmp, reporter: new MemoryReporter(), env }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
  });
});

describe('checkDumpFolder', () => {
  const job = (dir: string, exclude: string[] = [], databases = [db]): JobConfig => {
    const j = vaultJob(dir);
    return { ...j, source: { ...j.source, exclude, databases } };
  };

  it('refuses a single source with its own top-level databases, unless excluded or no database is configured', async () => {
    const dir = await fsp.mkdtemp(path.join(tmp, 'src-'));
    await fsp.mkdir(path.join(dir, 'src', 'databases'), { recursive: true });
    const own = path.join(dir, 'src', 'databases');
    const e = await errorOf(checkDumpFolder(job(dir)));
    expect(e.code).toBe('CONFIG');
    expect(e.message).toBe(`source ${own} would be backed up as databases, where the dumps of source.databases go`);
    expect(e.hint).toBe(`rename or move ${own}, or leave it out with source.exclude: ["${own}"]`);
    await checkDumpFolder(job(dir, [own]));
    await checkDumpFolder(job(dir, [], []));
    await fsp.rm(own, { recursive: true });
    await checkDumpFolder(job(dir));
  });
});
