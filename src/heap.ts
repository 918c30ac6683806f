import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Young-generation collections asked for where V8 would wait too long. Fresh buffers (a
 * cipher's output, a file's pieces) die young, but V8 collects on heap growth, and a thread
 * that makes mostly such buffers grows its heap slowly while tens of megabytes of them pile up
 * outside it. A young collection frees them in a tenth of a millisecond.
 *
 * The sealing worker (OpenPGP): one every 4 MiB kept the medium backups' peak RSS 10-15 MB
 * lower than one every 16 MiB. Under Node 20, `gc({ type: 'major' })` collects next to
 * nothing (the worker's "full one every 64 MiB" never ran there, and was not missed). A forced
 * full one (`gc()`, collectAllOver below) every few thousand files made a vault restore four times
 * slower, so it is kept for a few points where much has just become garbage. `gc` is exposed
 * in a new context only, not globally.
 */
export function collector(every = 4 << 20): (bytes: number) => void {
  const gc = exposed();
  let since = 0;
  return (bytes) => {
    if ((since += bytes) < every) return;
    since = 0;
    gc({ type: 'minor' });
  };
}

/**
 * One full collection when the heap holds more than `bytes` (live and garbage), where a job has
 * just dropped much of what it made: V8 grows the old generation fourfold before it collects
 * again, so the promoted garbage of a vault's apply had stayed to the end of the run and set
 * its peak. Tens of milliseconds each; a job that keeps little pays nothing, neither for the
 * collection nor for V8's heuristics reset after it.
 */
export function collectAllOver(bytes: number): void {
  if (v8.getHeapStatistics().used_heap_size > bytes) exposed()();
}

type Gc = (opts?: { type: 'minor' }) => void;
let gc: Gc | undefined;

/** `gc`, from one new context made on first use: each context costs a few milliseconds and some memory. */
function exposed(): Gc {
  if (gc) return gc;
  v8.setFlagsFromString('--expose-gc');
  gc = vm.runInNewContext('typeof gc === "function" ? gc : () => undefined') as Gc;
  return gc;
}
