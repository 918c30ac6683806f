import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';

/**
 * docker/Dockerfile without a Docker engine (none runs here): its instructions parsed, and a
 * stage's WORKDIR, COPY and RUN carried out as written into a folder standing for the stage's
 * file system. Enough of the Dockerfile language for ours; anything else is refused, so a new
 * instruction cannot slip past the tests unexamined.
 */

export interface Instruction {
  op: string;
  args: string;
  line: number;
}

export interface Stage {
  name: string;
  /** the FROM image, ARGs substituted */
  image: string;
  platform: string | undefined;
  instructions: Instruction[];
}

export interface Dockerfile {
  /** ARGs declared before the first FROM, with their defaults */
  args: Record<string, string>;
  stages: Stage[];
}

const KNOWN = new Set(['FROM', 'ARG', 'WORKDIR', 'COPY', 'RUN', 'ENV', 'USER', 'VOLUME', 'ENTRYPOINT', 'CMD']);

export function parseDockerfile(text: string): Dockerfile {
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    // a trailing backslash continues the instruction; comment lines inside it are dropped
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      const next = lines[++i]!;
      line = line.replace(/\s*\\\s*$/, ' ') + (/^\s*#/.test(next) ? '' : next.trim());
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile line ${start}: cannot read ${JSON.stringify(line)}`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (!KNOWN.has(op)) throw new Error(`Dockerfile line ${start}: ${op} is not understood by test/helpers/dockerfile.ts`);
    if (op === 'FROM') {
      const f = /^(?:--platform=(\S+)\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(rest);
      if (!f) throw new Error(`Dockerfile line ${start}: cannot read FROM ${rest}`);
      const image = f[2]!.replace(/\$\{(\w+)\}|\$(\w+)/g, (_s, a: string | undefined, b: string | undefined) => args[a ?? b ?? ''] ?? '');
      stages.push({ name: f[3] ?? String(stages.length), image, platform: f[1], instructions: [] });
    } else if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args[k!] = v ?? '';
    } else {
      const stage = stages.at(-1);
      if (!stage) throw new Error(`Dockerfile line ${start}: ${op} before FROM`);
      stage.instructions.push({ op, args: rest, line: start });
    }
  }
  return { args, stages };
}

export function stage(df: Dockerfile, name: string): Stage {
  const s = df.stages.find((x) => x.name === name);
  if (!s) throw new Error(`the Dockerfile has no stage ${name}`);
  return s;
}

export interface CopyInstruction {
  from: string | undefined;
  sources: string[];
  dest: string;
}

export function copyOf(i: Instruction): CopyInstruction {
  const words = i.args.split(/\s+/);
  let from: string | undefined;
  while (words[0]?.startsWith('--')) {
    const flag = words.shift()!;
    if (flag.startsWith('--from=')) from = flag.slice('--from='.length);
    else throw new Error(`COPY ${flag} (line ${i.line}) is not understood by test/helpers/dockerfile.ts`);
  }
  const dest = words.pop()!;
  return { from, sources: words, dest };
}

/**
 * Carries out a stage in `root` (standing for its `/`): WORKDIR, COPY (from the context or
 * from an earlier stage's folder) and, unless `runs` is false, RUN through `sh -c` with `env`.
 */
export async function buildStage(s: Stage, opts: { context: string; root: string; stageRoots: Record<string, string>; env: NodeJS.ProcessEnv; runs: boolean }): Promise<void> {
  let cwd = '/';
  const inRoot = (p: string) => path.join(opts.root, path.posix.resolve(cwd, p));
  await fsp.mkdir(opts.root, { recursive: true });
  for (const i of s.instructions) {
    if (i.op === 'WORKDIR') {
      cwd = path.posix.resolve(cwd, i.args);
      await fsp.mkdir(inRoot('.'), { recursive: true });
    } else if (i.op === 'COPY') {
      const c = copyOf(i);
      const fromRoot = c.from === undefined ? opts.context : opts.stageRoots[c.from];
      if (fromRoot === undefined) throw new Error(`COPY --from=${c.from} (line ${i.line}): that stage was not built`);
      const intoDir = c.dest.endsWith('/') || c.sources.length > 1;
      for (const src of c.sources) {
        const from = path.join(fromRoot, src);
        const to = intoDir ? path.join(inRoot(c.dest), path.basename(src)) : inRoot(c.dest);
        await fsp.mkdir(path.dirname(to), { recursive: true });
        await fsp.cp(from, to, { recursive: true, verbatimSymlinks: true });
      }
    } else if (i.op === 'RUN' && opts.runs) {
      await sh(i.args, inRoot('.'), opts.env, i.line);
    }
  }
}

function sh(script: string, cwd: string, env: NodeJS.ProcessEnv, line: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('sh', ['-c', script], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`RUN (line ${line}) exited ${code}: ${script}\n${out.slice(-4000)}`))));
  });
}
