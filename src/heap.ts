import v8 from 'node:v8';
import vm from 'node:vm';

/**
 * Collections asked for where V8 would wait too long. Fresh buffers (a cipher's output, a
 * file's pieces) die young, but V8 collects on heap growth, and a thread that makes mostly
 * such buffers grows its heap slowly while tens of megabytes of them pile up outside it.
 *
 * The sealing worker (OpenPGP): one collection every 4 MiB kept the medium backups' peak RSS
 * 10-15 MB lower than one every 16 MiB. A young-generation collection frees those buffers in
 * a tenth of a millisecond; a full one, needed now and then for what lived a little longer,
 * took 9 ms there, and at every 4 MiB that was a quarter of the thread's time.
 * `gc` is exposed in a new context only, not globally.
 */
/** A young-generation collection every `every` bytes, and every `fullEvery`th a full one (Infinity: never). */
export function collector(every = 4 << 20, fullEvery = 16): (bytes: number) => void {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('typeof gc === "function" ? gc : () => undefined') as (opts?: { type: 'minor' | 'major' }) => void;
  let since = 0;
  let count = 0;
  return (bytes) => {
    if ((since += bytes) < every) return;
    since = 0;
    gc({ type: ++count % fullEvery === 0 ? 'major' : 'minor' });
  };
}
