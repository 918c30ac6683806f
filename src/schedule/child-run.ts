import { spawn } from 'node:child_process';
import path from 'node:path';
import { CerberusError } from '../errors.js';
import { drainOutput, lineSplitter, signalGroup, terminateGroup } from '../process-group.js';

export interface ChildRunOptions {
  env: NodeJS.ProcessEnv;
  /** abort = stop the child: SIGTERM to its group, SIGKILL after graceMs */
  signal: AbortSignal;
  graceMs: number;
  /** one line of its output, without the newline */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  cwd?: string;
}

export interface ChildExit {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

/** After the child exits, how long a process it left behind may hold its output open. */
const DRAIN_MS = 1_000;

/**
 * Runs one command (an argv list: no shell reads it) to its end in its own process group, so
 * an abort stops what it started too. Resolves with how it ended, whatever that was; rejects
 * only when it could not start.
 */
export function runChild(argv: string[], opts: ChildRunOptions): Promise<ChildExit> {
  const [program, ...args] = argv;
  if (program === undefined) return Promise.reject(new CerberusError('INTERNAL', 'runChild needs a program to run'));
  return new Promise<ChildExit>((resolve, reject) => {
    const child = spawn(program, args, {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let killer: { cancel(): void } | undefined;
    const onAbort = () => {
      if (killer !== undefined || child.exitCode !== null || child.signalCode !== null) return;
      killer = terminateGroup(child, opts.graceMs);
    };
    opts.signal.addEventListener('abort', onAbort, { once: true });
    if (opts.signal.aborted) onAbort();

    const emit = (stream: 'stdout' | 'stderr') => (line: string) => opts.onLine?.(line, stream);
    const out = lineSplitter(emit('stdout'));
    const err = lineSplitter(emit('stderr'));
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));

    let settled = false;
    const finish = (result: ChildExit | CerberusError) => {
      if (settled) return;
      settled = true;
      killer?.cancel();
      // an aborted run leaves nothing behind, not even a grandchild that ignored SIGTERM
      if (killer !== undefined) signalGroup(child, 'SIGKILL');
      opts.signal.removeEventListener('abort', onAbort);
      out.end();
      err.end();
      if (result instanceof CerberusError) reject(result);
      else resolve(result);
    };
    child.on('error', (e: NodeJS.ErrnoException) => {
      // the program only, never its arguments: they may carry a token
      finish(new CerberusError('IO', `could not start ${path.basename(program)}: ${e.code ?? e.message}`, {
        hint: `check that ${JSON.stringify(program)} is installed and on PATH`,
      }));
    });
    child.on('exit', (exitCode, signal) => {
      void drainOutput(child, DRAIN_MS).then(() => finish({ exitCode, signal }));
    });
  });
}
