import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diffTrees, ROOT, snapshotTree, tempDir } from '../helpers/cli.js';
import { buildStage, copyOf, parseDockerfile, stage, type Dockerfile } from '../helpers/dockerfile.js';

/**
 * docker/Dockerfile without a Docker engine (none runs on our machines): its stages are
 * checked as written, the build and deps stages' COPY and RUN are carried out as written with
 * the Node.js the image runs (scripts/node-lts.sh, from the npm registry), the runtime stage's
 * COPYs assemble /app from them, and that /app is smoke-run: --version and a real backup and
 * restore on a local target.
 */

const run = promisify(execFile);
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
const df: Dockerfile = parseDockerfile(fs.readFileSync(path.join(ROOT, 'docker/Dockerfile'), 'utf8'));

describe('docker/Dockerfile as written', () => {
  it('builds on the current Node LTS slim image in three stages, the first two once on the builder', () => {
    expect(df.args.NODE_MAJOR).toMatch(/^\d+$/);
    // Node's even majors become LTS in October of their year: 26 is the active LTS from October 2026
    expect(Number(df.args.NODE_MAJOR)).toBeGreaterThanOrEqual(26);
    expect(df.stages.map((s) => s.name)).toEqual(['build', 'deps', 'runtime']);
    for (const s of df.stages) expect(s.image).toBe(`node:${df.args.NODE_MAJOR}-trixie-slim`);
    expect(stage(df, 'build').platform).toBe('$BUILDPLATFORM');
    expect(stage(df, 'deps').platform).toBe('$BUILDPLATFORM');
    // the runtime stage is per target platform (amd64, arm64)
    expect(stage(df, 'runtime').platform).toBeUndefined();
  });

  it('runs as a non-root user, with tini as PID 1, the cerberus entrypoint and /state as the state volume', () => {
    const rt = stage(df, 'runtime').instructions;
    const last = (op: string) => rt.filter((i) => i.op === op).at(-1)?.args;
    expect(last('USER')).toBe('node');
    expect(JSON.parse(last('ENTRYPOINT') ?? 'null')).toEqual(['/usr/bin/tini', '--', 'cerberus']);
    expect(JSON.parse(last('VOLUME') ?? 'null')).toEqual(['/state']);
    expect(last('ENV')).toMatch(/CERBERUS_STATE_DIR=\/state/);
    expect(rt.find((i) => i.op === 'RUN' && i.args.includes('apt-get'))?.args).toMatch(/--no-install-recommends tini 7zip postgresql-client && rm -rf \/var\/lib\/apt\/lists/);
  });

  it('puts into the image only the runtime, its dependencies, dist and the job definitions', () => {
    const copies = stage(df, 'runtime').instructions.filter((i) => i.op === 'COPY').map(copyOf);
    expect(copies).toEqual([
      { from: 'deps', sources: ['/app/node_modules'], dest: './node_modules' },
      { from: 'build', sources: ['/src/dist'], dest: './dist' },
      { from: undefined, sources: ['package.json'], dest: './' },
      { from: undefined, sources: ['pipelines/jobs'], dest: './pipelines/jobs' },
    ]);
    const deps = stage(df, 'deps').instructions.find((i) => i.op === 'RUN')!.args;
    expect(deps).toMatch(/npm ci --omit=dev/);
  });

  it('copies from the build context only what .dockerignore lets in', () => {
    const allowed = fs
      .readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('!'))
      .map((l) => l.slice(1).replace(/\/$/, ''));
    const sources = df.stages.flatMap((s) => s.instructions.filter((i) => i.op === 'COPY').map(copyOf).filter((c) => c.from === undefined).flatMap((c) => c.sources));
    for (const src of sources) {
      expect(allowed, `${src} is copied but .dockerignore keeps it out`).toContain(src);
      expect(fs.existsSync(path.join(ROOT, src)), src).toBe(true);
    }
  });
});

describe('the image, built without Docker', () => {
  let work: string;
  let node: string;
  let env: NodeJS.ProcessEnv;
  let app: string;

  beforeAll(async () => {
    node = (await run(path.join(ROOT, 'scripts/node-lts.sh'), [], { cwd: ROOT })).stdout.trim();
    work = await tempDir('cerberus-image-');
    // npm and every `node` the stages start run on the image's Node
    const bin = path.join(work, 'bin');
    await fsp.mkdir(bin);
    const npmCli = path.join(path.dirname(fs.realpathSync((await run('sh', ['-c', 'command -v npm'])).stdout.trim())), 'npm-cli.js');
    await fsp.symlink(node, path.join(bin, 'node'));
    await fsp.writeFile(path.join(bin, 'npm'), `#!/bin/sh\nexec "${node}" "${npmCli}" "$@"\n`, { mode: 0o755 });
    // the machine's own settings (a registry mirror, its CA) stay; what `npm test` set for itself goes
    env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_(package|lifecycle)_/.test(k)));
    env.PATH = `${bin}:${process.env.PATH}`;
    const roots: Record<string, string> = {};
    for (const s of df.stages) {
      roots[s.name] = path.join(work, s.name);
      // the runtime's RUNs (apt-get, links under /usr/local) need the image's root file system
      await buildStage(s, { context: ROOT, root: roots[s.name]!, stageRoots: roots, env, runs: s.name !== 'runtime' });
    }
    app = path.join(roots.runtime!, 'app');
  }, 600_000);

  afterAll(async () => {
    if (work) await fsp.rm(work, { recursive: true, force: true });
  });

  it('holds the runtime dependencies and no development ones', () => {
    // package-lock.json marks what only development needs with `dev: true`
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean; optional?: boolean }> };
    const installed = Object.entries(lock.packages).filter(([p]) => p.startsWith('node_modules/'));
    const devOnly = installed.filter(([, v]) => v.dev).map(([p]) => p);
    const runtime = installed.filter(([, v]) => !v.dev && !v.optional).map(([p]) => p);
    expect(devOnly).toEqual(expect.arrayContaining(['typescript', 'vitest', 's3rver', 'npm-groovy-lint'].map((d) => `node_modules/${d}`)));
    for (const p of runtime) expect(fs.existsSync(path.join(app, p)), p).toBe(true);
    for (const p of devOnly) expect(fs.existsSync(path.join(app, p)), p).toBe(false);
    expect(fs.existsSync(path.join(app, 'src'))).toBe(false);
    expect(fs.existsSync(path.join(app, 'pipelines/jobs/cerberus-backup.xml'))).toBe(true);
  });

  it(`runs on the image's Node: --version, and a backup restored bit-exactly`, async () => {
    const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(node, [path.join(app, 'dist/bin/cerberus.js'), ...args], { cwd: work, env: { ...env, ...extra, CERBERUS_STATE_DIR: path.join(work, 'state') } });
    expect((await run(node, ['--version'])).stdout.trim()).toMatch(new RegExp(`^v${df.args.NODE_MAJOR}\\.`));
    expect((await cli(['--version'])).stdout.trim()).toBe(pkg.version);

    const src = path.join(work, 'docs');
    await fsp.mkdir(path.join(src, 'Rechnungen'), { recursive: true });
    await fsp.writeFile(path.join(src, 'Rechnungen', 'Zoë 2026.txt'), 'Rechnung Nr. 1\n'.repeat(1000));
    await fsp.writeFile(path.join(src, 'photo.jpg'), Buffer.alloc(300_000, 7));
    await fsp.writeFile(
      path.join(work, 'cerberus.yaml'),
      ['jobs:', '  docs:', `    source: { paths: ["${src}"] }`, '    encryption: { kind: cryptomator, password: "${VAULT_PASSWORD}" }', `    targets: [ { name: disk, type: local, path: "${path.join(work, 'repo')}" } ]`, ''].join('\n'),
    );
    const secret = { VAULT_PASSWORD: 'image smoke test password' };
    await cli(['init', '-c', 'cerberus.yaml'], secret);
    await cli(['backup', '-c', 'cerberus.yaml'], secret);
    await cli(['restore', '-c', 'cerberus.yaml', '--at', 'latest', '--to', path.join(work, 'restored')], secret);
    expect(diffTrees(await snapshotTree(src), await snapshotTree(path.join(work, 'restored')))).toEqual([]);
  }, 120_000);
});
