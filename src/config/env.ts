import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { configError, ioError } from '../errors.js';

export type Env = Record<string, string>;

/**
 * The environment used for interpolation: `base` wins, then `.env` in the config file's folder,
 * then `.env` in the working directory. Nothing is written to process.env.
 */
export async function buildEnv(configDir: string, base: NodeJS.ProcessEnv, cwd: string): Promise<Env> {
  const dirs = [configDir];
  if (path.resolve(cwd) !== path.resolve(configDir)) dirs.push(cwd);
  const merged = Object.create(null) as Env; // no prototype: keys like __proto__ stay plain
  for (const [k, v] of Object.entries(base)) if (v !== undefined) merged[k] = v;
  for (const dir of dirs) {
    const vars = await readDotEnv(path.join(dir, '.env'));
    for (const [k, v] of Object.entries(vars)) if (v !== undefined && !Object.hasOwn(merged, k)) merged[k] = v;
  }
  return merged;
}

async function readDotEnv(file: string): Promise<NodeJS.Dict<string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EISDIR: a Python virtualenv is often called .env
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return {};
    throw configError(`cannot read ${file}: ${code ?? String(err)}`, 'check its permissions or remove it');
  }
  return parseEnv(text);
}

export type Interpolated =
  | { ok: true; value: string; vars: string[] }
  | { ok: false; missing: string }
  | { ok: false; malformed: string };

const VAR_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** a secrets manager's CLI gets this long to answer */
const SECRET_COMMAND_TIMEOUT_MS = 60_000;

/** Where `${file:…}` and `${cmd:…}` run: relative files and commands start in `dir`. */
export interface SecretSources {
  dir: string;
}

/**
 * `${file:PATH}`: the file's contents without the final newline (Docker and Kubernetes secrets).
 * `${cmd:COMMAND}`: what the command line (run by /bin/sh in the config's folder, with the same
 * environment) prints, without the final newline: a secrets manager's CLI. Neither ever shows
 * the value; a failure names the reference only. The first "}" ends the reference.
 */
function secretReference(kind: 'file' | 'cmd', arg: string, env: Env, from: SecretSources): { value: string } | { failed: string } {
  if (arg.trim() === '') return { failed: `has an empty \${${kind}:}` };
  if (kind === 'file') {
    const file = path.resolve(from.dir, arg);
    try {
      return { value: readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
    } catch (err) {
      return { failed: `uses \${file:${arg}}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}: ${file})` };
    }
  }
  const r = spawnSync('/bin/sh', ['-c', arg], { cwd: from.dir, env, encoding: 'utf8', timeout: SECRET_COMMAND_TIMEOUT_MS, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 20 });
  const why = r.error
    ? ((r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' ? `gave no answer within ${SECRET_COMMAND_TIMEOUT_MS / 1000} s` : `could not be run (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})`)
    : r.status !== 0
      ? `failed with ${r.signal ?? `exit code ${r.status}`}`
      : undefined;
  // its output is never shown: it may hold the secret, or half of it
  if (why) return { failed: `uses \${cmd:${arg}}, which ${why}` };
  return { value: r.stdout.replace(/\r?\n$/, '') };
}

/**
 * Replaces `${NAME}` with its value, and `${file:…}` / `${cmd:…}` with a secret (with `from`);
 * `$${` stands for a literal `${`. Other `$` are left alone. `vars` lists what was used.
 */
export function interpolate(text: string, env: Env, from?: SecretSources): Interpolated {
  if (!text.includes('${')) return { ok: true, value: text, vars: [] };
  let out = '';
  const vars: string[] = [];
  let i = 0;
  while (i < text.length) {
    if (text.startsWith('$${', i)) {
      out += '${';
      i += 3;
    } else if (text.startsWith('${', i)) {
      const end = text.indexOf('}', i + 2);
      if (end < 0) return { ok: false, malformed: 'has a "${" without a closing "}" (write $${ for a literal ${)' };
      const name = text.slice(i + 2, end);
      const ref = /^(file|cmd):/.exec(name);
      if (ref && from) {
        const kind = ref[1] as 'file' | 'cmd';
        const got = secretReference(kind, name.slice(kind.length + 1), env, from);
        if ('failed' in got) return { ok: false, malformed: got.failed };
        out += got.value;
        vars.push(name);
        i = end + 1;
        continue;
      }
      if (!VAR_NAME.test(name)) {
        return { ok: false, malformed: `uses \${${name}}, which is not a valid variable name (write $\${ for a literal \${)` };
      }
      const value = Object.hasOwn(env, name) ? env[name] : undefined;
      if (value === undefined) return { ok: false, missing: name };
      out += value;
      vars.push(name);
      i = end + 1;
    } else {
      out += text[i];
      i += 1;
    }
  }
  return { ok: true, value: out, vars };
}

/**
 * A secret from the environment: `NAME`, or the contents of the file `NAME_FILE` (Docker and
 * Jenkins file credentials), without its final newline.
 */
export async function secretFromEnv(env: NodeJS.ProcessEnv, name: string): Promise<string | undefined> {
  if (env[name] !== undefined) return env[name];
  const file = env[`${name}_FILE`];
  if (!file) return undefined;
  try {
    return (await readFile(file, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw ioError(err, `cannot read ${name}_FILE`);
  }
}
