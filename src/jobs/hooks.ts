import { spawn } from 'node:child_process';
import path from 'node:path';
import type { HookConfig, HookName } from '../config/index.js';
import { CerberusError } from '../errors.js';
import { drainOutput, lineSplitter, terminateGroup } from '../process-group.js';

/** What a hook learns about the run, as CERBERUS_* variables. */
export interface HookContext {
  job: string;
  level?: string;
  generation?: string;
  /** running (before, afterSnapshot); success, warning or failed (after, onError) */
  status: 'running' | 'success' | 'warning' | 'failed';
  /** the run's error, one line, for onError */
  error?: string;
}

export interface HookRunOptions {
  /** the environment the hook inherits (cerberus's own) */
  env: NodeJS.ProcessEnv;
  /** one line of the hook's output, already prefixed */
  log: (line: string) => void;
  /** stops the hook as a timeout would */
  signal?: AbortSignal;
}

/** After SIGTERM, how long a hook has to end before SIGKILL. */
export const KILL_GRACE_MS = 5_000;
/** After the hook exits, how long a child it left behind may hold its output open. */
const DRAIN_MS = 1_000;

/**
 * How a hook is named in messages: the program only, never its arguments (a hook's
 * arguments may carry a token the user interpolated from the environment).
 */
export function hookLabel(name: HookName, hook: HookConfig): string {
  return `hook ${name} (${hook.shell ? 'shell' : path.basename(hook.argv[0] ?? '?')})`;
}

export function hookEnv(base: NodeJS.ProcessEnv, name: HookName, ctx: HookContext): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base, CERBERUS_HOOK: name, CERBERUS_JOB: ctx.job, CERBERUS_STATUS: ctx.status };
  if (ctx.level !== undefined) env.CERBERUS_LEVEL = ctx.level;
  if (ctx.generation !== undefined) env.CERBERUS_GENERATION = ctx.generation;
  if (ctx.error !== undefined) env.CERBERUS_ERROR = ctx.error;
  return env;
}

/**
 * Runs one hook command to its end. It gets its own process group, so a timeout stops what
 * it started too (a shell's children, a `sudo -u www-data php occ`): SIGTERM to the group,
 * then SIGKILL after a grace period. Its output goes to the log line by line, prefixed with
 * the hook's name. Resolves when it exited 0; otherwise throws a HOOK error that says why.
 */
export function runHook(name: HookName, hook: HookConfig, ctx: HookContext, opts: HookRunOptions): Promise<void> {
  const label = hookLabel(name, hook);
  const [program, ...args] = hook.shell ? ['/bin/sh', '-c', hook.argv[0] ?? ''] : hook.argv;
  return new Promise<void>((resolve, reject) => {
    const child = spawn(program!, args, {
      cwd: hook.cwd,
      env: hookEnv(opts.env, name, ctx),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stopped: 'timeout' | 'aborted' | undefined;
    let killer: { cancel(): void } | undefined;
    const stop = (why: 'timeout' | 'aborted') => {
      if (stopped !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      stopped = why;
      killer = terminateGroup(child, KILL_GRACE_MS);
    };
    const timer = setTimeout(() => stop('timeout'), hook.timeoutMs);
    const onAbort = () => stop('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.signal?.aborted) onAbort();

    const prefix = `[${name}] `;
    const lines = [lineSplitter((l) => opts.log(prefix + l)), lineSplitter((l) => opts.log(prefix + l))] as const;
    child.stdout.on('data', (d: Buffer) => lines[0].push(d));
    child.stderr.on('data', (d: Buffer) => lines[1].push(d));

    let settled = false;
    const finish = (err?: CerberusError) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      killer?.cancel();
      opts.signal?.removeEventListener('abort', onAbort);
      for (const l of lines) l.end();
      if (err) reject(err);
      else resolve();
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'ENOENT'
          ? `check that ${JSON.stringify(program)} is installed and on PATH, and that cwd ${JSON.stringify(hook.cwd)} exists`
          : 'check the hook in the job\'s hooks';
      finish(new CerberusError('HOOK', `${label} could not start: ${err.code ?? err.message}`, { hint }));
    });
    child.on('exit', (code, signal) => {
      void drainOutput(child, DRAIN_MS).then(() => {
        if (stopped === 'timeout') {
          finish(new CerberusError('HOOK', `${label} did not finish within its timeout of ${seconds(hook.timeoutMs)} and was killed`, {
            hint: 'raise hooks timeout for it, or find out why it hangs',
          }));
        } else if (stopped === 'aborted') {
          finish(new CerberusError('HOOK', `${label} was stopped: the run was interrupted`));
        } else if (code === 0) {
          finish();
        } else {
          const how = code !== null ? `exited with status ${code}` : `was killed by ${signal}`;
          finish(new CerberusError('HOOK', `${label} ${how}`, { hint: `its output is above, prefixed with [${name}]` }));
        }
      });
    });
  });
}

const seconds = (ms: number) => (ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`);
