import { spawn, execFileSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cerberus, diffTrees, snapshotTree, workspace, type Workspace } from '../helpers/cli.js';

interface BackupJson {
  targets: Array<{ id: string; level: string; status: string; problems: string[]; stats: { files: number; storedFiles: number } }>;
  exitCode: number;
}

async function ready(ws: Workspace) {
  const r = await ws.run(['init', '-c', ws.config]);
  expect(r.code, r.stderr).toBe(0);
}

const backupJson = async (ws: Workspace, now: string) => {
  const r = await ws.run(['backup', '-c', ws.config, '--now', now, '--json']);
  return { ...r, json: JSON.parse(r.stdout || '{}') as BackupJson };
};

describe('backup and restore through the CLI', () => {
  let ws: Workspace | undefined;
  afterEach(async () => {
    if (ws) await fsp.rm(ws.dir, { recursive: true, force: true });
    ws = undefined;
  });

  it('keeps odd names, long names, empty folders, links and modes; restores some paths by glob', async () => {
    ws = await workspace();
    await ready(ws);
    const names = ['new\nline.txt', 'tab\there.txt', 'back\\slash.txt', ' leading space', 'ü-ñ-中文-🙂.txt', 'x'.repeat(240)];
    await fsp.mkdir(path.join(ws.src, 'odd'), { recursive: true });
    for (const n of names) await fsp.writeFile(path.join(ws.src, 'odd', n), `content of ${n}\n`);
    await fsp.mkdir(path.join(ws.src, 'a/b/c/empty'), { recursive: true });
    await fsp.writeFile(path.join(ws.src, 'a/b/report.pdf'), Buffer.alloc(200_000, 3));
    await fsp.writeFile(path.join(ws.src, 'a/run.sh'), '#!/bin/sh\n', { mode: 0o750 });
    await fsp.symlink('b/report.pdf', path.join(ws.src, 'a/link'));
    await fsp.symlink('/nonexistent/target', path.join(ws.src, 'dangling'));
    await fsp.chmod(path.join(ws.src, 'a/b/c'), 0o700);

    const b = await backupJson(ws, '2026-03-02T02:00:00Z');
    expect(b.code, b.stderr).toBe(0);
    // a non-TTY log: one line per phase, no control characters
    expect(b.stderr).not.toMatch(/\r|\x1b\[/);

    const to = path.join(ws.dir, 'all');
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to]);
    expect(r.code, r.stderr).toBe(0);
    expect(diffTrees(await snapshotTree(ws.src), await snapshotTree(to))).toEqual([]);

    // names with newlines survive a second, differential generation and its deletions too
    await fsp.rm(path.join(ws.src, 'odd', 'new\nline.txt'));
    const b2 = await backupJson(ws, '2026-03-03T02:00:00Z');
    expect(b2.code, b2.stderr).toBe(0);
    expect(b2.json.targets[0]!.level).toBe('daily');
    const to2 = path.join(ws.dir, 'second');
    expect((await ws.run(['restore', '-c', ws.config, '--at', '2026-03-03', '--to', to2])).code).toBe(0);
    expect(diffTrees(await snapshotTree(ws.src), await snapshotTree(to2))).toEqual([]);

    const some = path.join(ws.dir, 'some');
    const p = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', some, '--path', 'a/b/**', '--path', 'dangling']);
    expect(p.code, p.stderr).toBe(0);
    const got = await snapshotTree(some, { dirTimes: false });
    expect([...got.keys()].sort()).toEqual(['a', 'a/b', 'a/b/c', 'a/b/c/empty', 'a/b/report.pdf', 'dangling']);
    expect(got.get('dangling')?.target).toBe('/nonexistent/target');

    const none = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', path.join(ws.dir, 'none'), '--path', 'nope/**']);
    expect(none.code).toBe(1);
    expect(none.stderr).toMatch(/no path .* matches nope/);
  }, 120_000);

  it('backs up several roots, each under its name', async () => {
    ws = await workspace({ keygen: true });
    await fsp.mkdir(path.join(ws.dir, 'photos/2026'), { recursive: true });
    await fsp.writeFile(path.join(ws.dir, 'photos/2026/p.jpg'), 'jpeg');
    await fsp.writeFile(path.join(ws.src, 'doc.txt'), 'doc');
    await fsp.writeFile(ws.config, (await fsp.readFile(ws.config, 'utf8')).replace('paths: [src]', 'paths: [src, photos]'));
    await ready(ws);
    expect((await backupJson(ws, '2026-03-02T02:00:00Z')).code).toBe(0);
    const to = path.join(ws.dir, 'out');
    expect((await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to])).code).toBe(0);
    expect(await fsp.readFile(path.join(to, 'src/doc.txt'), 'utf8')).toBe('doc');
    expect(await fsp.readFile(path.join(to, 'photos/2026/p.jpg'), 'utf8')).toBe('jpeg');
  }, 60_000);

  it('a dry run writes nothing and says what it would store', async () => {
    ws = await workspace();
    await ready(ws);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    const r = await ws.run(['backup', '-c', ws.config, '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as BackupJson;
    expect(json.targets[0]!.status).toBe('dry-run');
    expect(json.targets[0]!.stats.storedFiles).toBe(1);
    expect(await fsp.readdir(path.join(ws.repo, 'quarterly'))).toEqual([]);
    expect((JSON.parse((await ws.run(['list', '-c', ws.config, '--json'])).stdout) as { points: unknown[] }).points).toEqual([]);
  }, 60_000);

  it('restore --dry-run says what it would restore and replace, and writes nothing', async () => {
    ws = await workspace();
    await ready(ws);
    await fsp.mkdir(path.join(ws.src, 'sub'));
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    await fsp.writeFile(path.join(ws.src, 'sub', 'b.txt'), 'bb');
    expect((await ws.run(['backup', '-c', ws.config])).code).toBe(0);
    const absent = path.join(ws.dir, 'not-yet');
    const r = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', absent, '--dry-run', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ files: 2, dirs: 1, bytes: 3, wouldReplace: [] });
    expect(await fsp.stat(absent).catch(() => undefined)).toBeUndefined();

    const busy = path.join(ws.dir, 'busy');
    await fsp.mkdir(path.join(busy, 'sub'), { recursive: true });
    await fsp.writeFile(path.join(busy, 'sub', 'b.txt'), 'mine');
    const d = await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', busy, '--dry-run']);
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toMatch(/^would restore quarterly\/\S+ from usb: 2 files into /);
    expect(d.stdout).toContain('would replace: sub/b.txt\n');
    expect(d.stderr).toMatch(/replacing 1 files there \(that needs --overwrite\)/);
    expect(await fsp.readFile(path.join(busy, 'sub', 'b.txt'), 'utf8')).toBe('mine');
    expect(await fsp.readdir(busy)).toEqual(['sub']);
  }, 60_000);

  it('skips sockets and FIFOs with a warning and exit 3', async () => {
    ws = await workspace();
    await ready(ws);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    execFileSync('mkfifo', [path.join(ws.src, 'pipe')]);
    const server = net.createServer().listen(path.join(ws.src, 'sock'));
    try {
      const b = await backupJson(ws, '2026-03-02T02:00:00Z');
      expect(b.code).toBe(3);
      expect(b.stderr).toMatch(/skipped .*pipe: FIFO/);
      expect(b.stderr).toMatch(/skipped .*sock: socket/);
      expect(b.json.targets[0]!.status).toBe('committed');
      expect(b.json.targets[0]!.stats.files).toBe(1);
    } finally {
      server.close();
    }
  }, 60_000);

  it('reports an unreadable file, keeps its last good version, ends with 3 and does not prune', async () => {
    ws = await workspace({ yamlExtra: '    retention: { daily: 1, weekly: 1, monthly: 1, quarterly: 1, keepWithin: 0s }' });
    await ready(ws);
    await fsp.writeFile(path.join(ws.src, 'secret.txt'), 'version 1');
    await fsp.writeFile(path.join(ws.src, 'open.txt'), 'open');
    await fsp.mkdir(path.join(ws.src, 'private/inner'), { recursive: true });
    await fsp.writeFile(path.join(ws.src, 'private/inner/diary.txt'), 'dear diary');
    expect((await backupJson(ws, '2026-03-02T02:00:00Z')).code).toBe(0);
    expect((await backupJson(ws, '2026-03-03T02:00:00Z')).code).toBe(0);
    await fsp.writeFile(path.join(ws.src, 'secret.txt'), 'version 2');
    await fsp.chmod(path.join(ws.src, 'secret.txt'), 0o000);
    await fsp.chmod(path.join(ws.src, 'private'), 0o000);

    // root reads anything: run the backup as nobody (who owns everything but that file's read bit)
    const asRoot = process.getuid?.() === 0;
    if (asRoot) execFileSync('chown', ['-R', 'nobody:nogroup', ws.dir]);
    const args = ['backup', '-c', ws.config, '--now', '2026-03-04T02:00:00Z', '--json'];
    const r = await cerberus(args, {
      cwd: ws.dir,
      env: { HOME: ws.dir, ...ws.env },
      ...(asRoot ? { prefix: ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'] } : {}),
    });
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toMatch(/cannot read .*secret\.txt: EACCES; its last backed-up version is kept/);
    expect(r.stderr).toMatch(/cannot read .*private: EACCES; its last backed-up state is kept/);
    expect(r.stderr).toMatch(/nothing was pruned/);
    expect((JSON.parse((await ws.run(['list', '-c', ws.config, '--json'])).stdout) as { points: unknown[] }).points).toHaveLength(3);
    if (asRoot) execFileSync('chown', ['-R', 'root:root', ws.dir]);
    await fsp.chmod(path.join(ws.src, 'private'), 0o755);

    const to = path.join(ws.dir, 'out');
    expect((await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to])).code).toBe(0);
    expect(await fsp.readFile(path.join(to, 'secret.txt'), 'utf8')).toBe('version 1');
    expect(await fsp.readFile(path.join(to, 'open.txt'), 'utf8')).toBe('open');
    expect(await fsp.readFile(path.join(to, 'private/inner/diary.txt'), 'utf8')).toBe('dear diary');
  }, 60_000);

  it('reports a file that keeps changing while it is read', async () => {
    ws = await workspace({ volumeSize: '4MiB' });
    await ready(ws);
    const busy = path.join(ws.src, 'growing.log');
    await fsp.writeFile(busy, Buffer.alloc(40 << 20, 1));
    await fsp.writeFile(path.join(ws.src, 'calm.txt'), 'calm');
    // a writer that appends every millisecond while the backup runs
    const writer = spawn(process.execPath, ['-e', `const fs=require('fs');setInterval(()=>fs.appendFileSync(${JSON.stringify(busy)},'x'),1)`]);
    try {
      await new Promise((r) => setTimeout(r, 300));
      const b = await backupJson(ws, '2026-03-02T02:00:00Z');
      expect(b.code, b.stderr).toBe(3);
      expect(b.stderr).toMatch(/growing\.log changed while it was read \(twice\)/);
      expect(b.json.targets[0]!.problems.length).toBe(1);
    } finally {
      writer.kill();
    }
    // what was stored is consistent with its manifest: it restores and verifies
    const to = path.join(ws.dir, 'out');
    expect((await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to])).code).toBe(0);
    expect(await fsp.readFile(path.join(to, 'calm.txt'), 'utf8')).toBe('calm');
    expect((await fsp.stat(path.join(to, 'growing.log'))).size).toBeGreaterThanOrEqual(40 << 20);
    expect((await ws.run(['verify', '-c', ws.config, '--full'])).code).toBe(0);
  }, 120_000);

  it('makes a new full generation when the state cache is lost, never a guess', async () => {
    ws = await workspace();
    await ready(ws);
    await fsp.writeFile(path.join(ws.src, 'a.txt'), 'a');
    expect((await backupJson(ws, '2026-03-02T02:00:00Z')).json.targets[0]!.level).toBe('quarterly');
    await fsp.writeFile(path.join(ws.src, 'b.txt'), 'b');
    const d = await backupJson(ws, '2026-03-03T02:00:00Z');
    expect(d.json.targets[0]!.level).toBe('daily');
    expect(d.json.targets[0]!.stats.storedFiles).toBe(1);

    await fsp.rm(ws.state, { recursive: true });
    await fsp.writeFile(path.join(ws.src, 'c.txt'), 'c');
    const full = await ws.run(['backup', '-c', ws.config, '--now', '2026-03-04T02:00:00Z']);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stderr).toMatch(/state cache does not know .* new full \(quarterly\)/);
    const list = JSON.parse((await ws.run(['list', '-c', ws.config, '--json'])).stdout) as { points: Array<{ level: string; parent: string | null; files: number }> };
    const last = list.points.at(-1)!;
    expect(last).toMatchObject({ level: 'quarterly', parent: null, files: 3 });
    const to = path.join(ws.dir, 'out');
    expect((await ws.run(['restore', '-c', ws.config, '--at', 'latest', '--to', to])).code).toBe(0);
    expect(diffTrees(await snapshotTree(ws.src), await snapshotTree(to))).toEqual([]);
  }, 60_000);

  it('teaches with --help and names the exit codes', async () => {
    const top = await cerberus(['--help']);
    expect(top.code).toBe(0);
    for (const c of ['keygen', 'init', 'backup', 'list', 'restore', 'verify', 'prune']) expect(top.stdout).toContain(c);
    expect(top.stdout).toMatch(/Exit codes/);
    const restore = await cerberus(['restore', '--help']);
    expect(restore.stdout).toMatch(/--at <point>/);
    expect(restore.stdout).toMatch(/CERBERUS_PRIVATE_KEY_FILE/);
  });
});
