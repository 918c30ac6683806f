/**
 * Shared by the remote end-to-end tests: target lines for configs, a daily history driven
 * through the CLI, and restoring every point of a target against the source as it was.
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import type { ApacheServer } from './apache.js';
import { diffTrees, snapshotTree, type TreeEntry, type Workspace } from './cli.js';
import { mutate, rng } from './history.js';
import type { S3Server } from './s3rver.js';

const DAY = 86_400_000;
/** the first run is full (quarterly); November 1 makes a monthly one */
export const START = Date.UTC(2026, 9, 20, 2, 0, 0);

export interface BackupJson {
  targets: Array<{ target: string; id?: string; level?: string; status: string; error?: string }>;
}
export interface ListJson {
  points: Array<{ target: string; id: string; level: string; state: string }>;
}

export const webdavTarget = (name: string, dav: ApacheServer, extra = '') =>
  `      - { name: ${name}, type: webdav, url: "${dav.url}", username: \${DAV_USER}, password: \${DAV_PASSWORD}, path: /backups/docs, verify: readback, timeout: 20s${extra} }`;
export const s3Target = (name: string, s3: S3Server) =>
  `      - { name: ${name}, type: s3, endpoint: "${s3.endpoint}", bucket: ${s3.bucket}, prefix: docs, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET}, partSize: 5MiB }`;

/** Replaces the workspace's local target with `targets` (YAML lines). */
export async function useTargets(ws: Workspace, targets: string[]): Promise<void> {
  const text = await fsp.readFile(ws.config, 'utf8');
  await fsp.writeFile(ws.config, text.replace(/ {6}- \{ name: usb, type: local, path: repo \}/, targets.join('\n')));
}

/** Runs `days` daily backups from `from`; returns the source snapshot of each day by generation id. */
export async function history(
  ws: Workspace,
  env: NodeJS.ProcessEnv,
  days: number,
  onDay?: (day: number) => Promise<void>,
): Promise<{ expected: Map<string, Map<string, TreeEntry>>; results: BackupJson[] }> {
  const r = rng(7);
  const expected = new Map<string, Map<string, TreeEntry>>();
  const results: BackupJson[] = [];
  for (let day = 0; day < days; day++) {
    const when = new Date(START + day * DAY);
    await onDay?.(day);
    if (day === 0) {
      for (let i = 0; i < 20; i++) await fsp.writeFile(path.join(ws.src, `doc ${i}.txt`), r.bytes(r.int(0, 40_000)));
    } else await mutate(ws.src, r, day, when);
    const b = await ws.run(['backup', '-c', ws.config, '--now', when.toISOString(), '--json'], env, { timeoutMs: 120_000 });
    const json = JSON.parse(b.stdout || '{"targets":[]}') as BackupJson;
    results.push(json);
    const id = json.targets.find((t) => t.id)?.id;
    if (id) expected.set(id, await snapshotTree(ws.src));
    if (b.code !== 0 && !onDay) throw new Error(`day ${day}: backup ended ${b.code}: ${b.stderr}`);
  }
  return { expected, results };
}

/** Restores every point of `target` and compares it with the source as it was. */
export async function restoreAll(ws: Workspace, env: NodeJS.ProcessEnv, target: string, expected: Map<string, Map<string, TreeEntry>>): Promise<number> {
  const l = await ws.run(['list', '-c', ws.config, '--json'], env);
  expect(l.code, l.stderr).toBe(0);
  const points = (JSON.parse(l.stdout) as ListJson).points.filter((p) => p.target === target);
  expect(points.length).toBeGreaterThan(5);
  for (const p of points) {
    const to = path.join(ws.dir, `restore-${target}-${p.id}`);
    const r = await ws.run(['restore', '-c', ws.config, '--target', target, '--at', p.id, '--to', to], env, { timeoutMs: 120_000 });
    expect(r.code, `${target} ${p.id}: ${r.stderr}`).toBe(0);
    const want = expected.get(p.id);
    expect(want, `no snapshot for ${p.id}`).toBeDefined();
    expect(diffTrees(want!, await snapshotTree(to)), `${target} ${p.level}/${p.id}`).toEqual([]);
    await fsp.rm(to, { recursive: true, force: true });
  }
  return points.length;
}

