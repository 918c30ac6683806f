import { execFile } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT, tempDir } from '../helpers/cli.js';
import { PIPELINES } from '../helpers/jenkinsfile.js';

/**
 * Every Jenkinsfile compiles with Debian's groovy (on Java 17) and passes npm-groovy-lint
 * (16.x: 17 and later need Node 22) with .groovylintrc.json, failing on errors and warnings.
 * scripts/install-test-deps.sh installs groovy and Java 17.
 */

const run = promisify(execFile);

/** JAVA_HOME as given, else Debian's Java 17, else the Java of `java` on PATH; it must be 17. */
async function java17Home(): Promise<string> {
  const debian = fs.existsSync('/usr/lib/jvm') ? fs.readdirSync('/usr/lib/jvm').find((d) => /^java-17-openjdk-/.test(d)) : undefined;
  const home =
    process.env.JAVA_HOME ||
    (debian ? path.join('/usr/lib/jvm', debian) : path.dirname(path.dirname(fs.realpathSync((await run('sh', ['-c', 'command -v java'])).stdout.trim()))));
  const { stderr } = await run(path.join(home, 'bin/java'), ['-version']);
  if (!/version "17[.\d]*"/.test(stderr)) throw new Error(`JAVA_HOME=${home} is not Java 17 (${stderr.split('\n')[0]}); run scripts/install-test-deps.sh`);
  return home;
}

const outcome = (p: Promise<{ stdout: string; stderr: string }>) =>
  p.then(
    (r) => ({ code: 0, out: r.stdout + r.stderr }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
  );

let env: NodeJS.ProcessEnv;
let broken: string;
beforeAll(async () => {
  env = { ...process.env, JAVA_HOME: await java17Home() };
  const dir = await tempDir();
  broken = path.join(dir, 'broken.Jenkinsfile');
  // the daily pipeline with its last closing brace gone
  await fsp.writeFile(broken, (await fsp.readFile(path.join(ROOT, 'Jenkinsfile'), 'utf8')).replace(/\}\s*$/, '\n'));
});
afterAll(async () => {
  if (broken) await fsp.rm(path.dirname(broken), { recursive: true, force: true });
});

describe('the Jenkinsfiles as Groovy', () => {
  it('compile with groovy, and a broken one does not', async () => {
    const ok = await outcome(run('groovy', ['test/pipelines/parse.groovy', ...PIPELINES], { cwd: ROOT, env }));
    expect(ok.code, ok.out).toBe(0);
    for (const p of PIPELINES) expect(ok.out).toContain(`parsed ${p}`);
    const bad = await outcome(run('groovy', ['test/pipelines/parse.groovy', broken], { cwd: ROOT, env }));
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/broken\.Jenkinsfile: .*unexpected|expecting/s);
  }, 120_000);

  it('pass npm-groovy-lint 16 with no error or warning, and a broken one fails it', async () => {
    const lint = path.join(ROOT, 'node_modules/.bin/npm-groovy-lint');
    // its --version prints $npm_package_version, which under `npm test` is cerberus' own
    const { version } = JSON.parse(await fsp.readFile(path.join(ROOT, 'node_modules/npm-groovy-lint/package.json'), 'utf8')) as { version: string };
    expect(version).toMatch(/^16\./);
    const ok = await outcome(run(lint, ['--failon', 'warning', '--noserver', '--output', 'txt', ...PIPELINES], { cwd: ROOT, env }));
    expect(ok.code, ok.out).toBe(0);
    const bad = await outcome(run(lint, ['--failon', 'error', '--noserver', '--output', 'txt', broken], { cwd: ROOT, env }));
    expect(bad.code, bad.out).not.toBe(0);
  }, 180_000);
});
