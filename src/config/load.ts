import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { configError } from '../errors.js';
import { buildEnv } from './env.js';
import { errorMap, toProblems } from './issues.js';
import type { z } from 'zod';
import { machineTimezone, makeSchema, type SchemaContext } from './schema.js';
import type { Config, JobConfig } from './types.js';
import { interpolateDocument, parseYaml, redact, type PathKey, type Problem, type Redaction } from './yaml-doc.js';

const CONFIG_HINT = 'pass the right file with --config <file>';

function expandHome(p: string, home: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(home, p.slice(2)) : p;
}

/** The file as the user will recognise it: relative to the working directory when inside it. */
function displayName(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
}

/** One line per problem, in file order; the hint rides along when there is a single problem. */
function fail(shown: string, problems: Problem[], redactions: readonly Redaction[] = []): never {
  const lines = [...problems]
    .sort((a, b) => (a.line ?? 0) - (b.line ?? 0))
    .map((p) => ({ text: `${shown}:${p.line ?? 1}: ${redact(p.message, redactions)}`, hint: p.hint && redact(p.hint, redactions) }));
  const only = lines.length === 1 ? lines[0] : undefined;
  if (only) throw configError(only.text, only.hint || undefined);
  throw configError(lines.map((l) => (l.hint ? `${l.text} (${l.hint})` : l.text)).join('\n'));
}

/**
 * Reads, interpolates and validates the config file. Throws a CONFIG CerberusError that
 * names file:line and key path for every problem found.
 */
export interface LoadOptions {
  /**
   * The encryption settings may use variables that are not set: `health` checks repositories
   * from a machine that holds only the targets' credentials, no key and no vault password.
   */
  keyless?: boolean;
  /**
   * For `cerberus export`: the variables of jobs.*.export must be set. Every other command
   * loads the config without them (the daily backup need not know the export password).
   */
  export?: boolean;
}

export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env, opts: LoadOptions = {}): Promise<Config> {
  const mayBeUnset = (p: readonly PathKey[]) => p[0] === 'jobs' && ((opts.keyless === true && p[2] === 'encryption') || (opts.export !== true && p[2] === 'export'));
  const { abs, dir, data } = await readDocument(file, env, mayBeUnset, 'jobs:', (ctx) => {
    const { schema, knownKeys } = makeSchema(ctx);
    return { schema, knownKeys };
  });
  const jobs = new Map<string, JobConfig>();
  for (const [name, job] of Object.entries(data.jobs)) jobs.set(name, { name, ...job });
  return { file: abs, dir, jobs };
}

/**
 * A YAML file read, interpolated and validated by the schema `build` makes. Throws a CONFIG
 * CerberusError that names file:line and key path for every problem found.
 */
export async function readDocument<T>(
  file: string,
  env: NodeJS.ProcessEnv,
  mayBeUnset: (p: readonly PathKey[]) => boolean,
  section: string,
  build: (ctx: SchemaContext, raw: unknown) => { schema: z.ZodType<T>; knownKeys: ReadonlyMap<string, string[]> },
  opts: { unresolved?: boolean } = {},
): Promise<{ abs: string; dir: string; data: T }> {
  const home = env.HOME || os.homedir();
  const abs = path.resolve(expandHome(file, home));
  const dir = path.dirname(abs);
  const shown = displayName(abs);

  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw configError(`config file ${shown} not found`, CONFIG_HINT);
    if (code === 'EISDIR') throw configError(`config file ${shown} is a folder, not a file`, CONFIG_HINT);
    throw configError(`cannot read config file ${shown}: ${code ?? String(err)}`, 'check its permissions, or ' + CONFIG_HINT);
  }

  const { parsed, problems: syntax } = parseYaml(text);
  if (syntax.length > 0) fail(shown, syntax);

  // unresolved: every ${…} stays as written (for files rendered elsewhere: nothing read or run)
  let redactions: Redaction[] = [];
  if (!opts.unresolved) {
    const vars = await buildEnv(dir, env, process.cwd());
    const interpolated = interpolateDocument(parsed, vars, mayBeUnset, { dir });
    if (interpolated.problems.length > 0) fail(shown, interpolated.problems, interpolated.redactions);
    redactions = interpolated.redactions;
  }

  const raw: unknown = parsed.doc.toJS();
  if (raw === null || raw === undefined) fail(shown, [{ line: 1, message: `the file is empty; it needs a ${section} section` }]);

  const { schema, knownKeys } = build({ dir, home, defaultTimezone: machineTimezone() }, raw);
  const result = schema.safeParse(raw, { error: errorMap });
  if (!result.success) fail(shown, toProblems(result.error.issues, parsed, knownKeys), redactions);
  return { abs, dir, data: result.data };
}

/** The job to run: `name`, or the only job when there is exactly one. */
export function selectJob(config: Config, name: string | undefined): JobConfig {
  const names = [...config.jobs.keys()];
  const list = names.length > 0 ? names.join(', ') : '(none)';
  if (name !== undefined) {
    const job = config.jobs.get(name);
    if (job) return job;
    throw configError(`no job named ${JSON.stringify(name)} in ${config.file}; jobs: ${list}`, 'pick one of those names');
  }
  const only = names.length === 1 ? config.jobs.get(names[0] ?? '') : undefined;
  if (only) return only;
  if (names.length === 0) throw configError(`${config.file} defines no jobs`, 'add one under jobs:');
  throw configError(`${config.file} defines several jobs (${list}); say which one to use`, 'name the job on the command line');
}
