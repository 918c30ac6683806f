import type { ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';

/**
 * A child started with `detached: true` leads its own process group: signalling the group
 * stops what it started too (a shell's children, a `sudo -u www-data php occ`).
 * Shared by hooks (src/jobs/hooks.ts) and scheduled runs (src/schedule/child-run.ts).
 */

/** A line longer than this is cut: a child that prints a binary blob must not fill the memory or the log. */
export const MAX_LINE = 4096;

export function signalGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, sig);
  } catch {
    // the group is gone already
  }
}

/** SIGTERM to the group now, SIGKILL after graceMs unless cancelled (the child settled first). */
export function terminateGroup(child: ChildProcess, graceMs: number): { cancel(): void } {
  signalGroup(child, 'SIGTERM');
  const timer = setTimeout(() => signalGroup(child, 'SIGKILL'), graceMs);
  return { cancel: () => clearTimeout(timer) };
}

/**
 * Call on 'exit': a process the child left running may keep its output open, so this waits
 * for the output to close ('close' always follows 'exit'), at most drainMs, then closes it.
 */
export async function drainOutput(child: ChildProcess, drainMs: number): Promise<void> {
  const closed = new Promise<void>((r) => child.once('close', () => r()));
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((r) => {
    timer = setTimeout(r, drainMs);
    timer.unref();
  });
  await Promise.race([closed, grace]);
  clearTimeout(timer);
  child.stdout?.destroy();
  child.stderr?.destroy();
}

/** Bytes in, whole lines out (UTF-8 safe), each cut at MAX_LINE. */
export function lineSplitter(emit: (line: string) => void): { push(b: Buffer): void; end(): void } {
  const decoder = new StringDecoder('utf8');
  let partial = '';
  const flush = (text: string) => {
    const parts = (partial + text).split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) emit(cut(p.replace(/\r$/, '')));
    if (partial.length > MAX_LINE) {
      emit(cut(partial));
      partial = '';
    }
  };
  return {
    push: (b) => flush(decoder.write(b)),
    end: () => {
      flush(decoder.end());
      if (partial !== '') emit(cut(partial));
      partial = '';
    },
  };
}

const cut = (line: string) => (line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)} …(cut)` : line);
