import { parentPort, workerData } from 'node:worker_threads';
import { VolumeCutter, type SpooledVolume } from '../volumes.js';
import { sealedFeed } from './seipd.js';
import { CONTROL, type FromWriter, type ToWriter, type WriterSetup } from './volume-writer.js';
import { collector } from '../../heap.js';
import { serializeError } from './workers.js';

/**
 * The sealing thread of a backup: plaintext arrives in transferred buffers, is encrypted
 * (AES-CFB and the SHA-1 MDC, seipd.ts), cut into volumes and written to the spool with their
 * SHA-256. The main thread meanwhile walks, reads and hashes the source: the two cores share
 * the work, and the cipher's fresh output buffers never reach the main thread's heap, whose
 * collections are the expensive ones (it holds the manifests).
 */

const port = parentPort!;
const setup = workerData as WriterSetup;
const control = new Int32Array(setup.control);
const post = (m: FromWriter, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

class Stopped extends Error {}

const collect = collector();

/** Blocks until volume `index` may be created: at most two volumes on disk at once. */
function waitForRoom(index: number): void {
  for (;;) {
    const released = Atomics.load(control, CONTROL.released);
    if (Atomics.load(control, CONTROL.stop) !== 0) throw new Stopped();
    if (released >= index - 2) return;
    Atomics.wait(control, CONTROL.released, released);
  }
}

let sealed: Buffer[] = [];
const cutter = new VolumeCutter(setup.spoolDir, setup.volumeSize, waitForRoom, (volume: SpooledVolume) => post({ type: 'volume', volume }));
const feed = sealedFeed(setup.preamble, Buffer.from(setup.sessionKey), setup.compression, (b) => sealed.push(b));
const flush = () => {
  const out = sealed;
  sealed = [];
  cutter.write(out);
};

let failed = false;
let chain: Promise<void> = Promise.resolve();

async function handle(m: ToWriter): Promise<void> {
  if (m.type === 'abort') {
    cutter.abort();
    process.exit(0); // ends this thread only
  }
  if (failed) return;
  try {
    if (m.type === 'data') {
      await feed.write(new Uint8Array(m.buf, 0, m.length));
      post({ type: 'free', buf: m.buf }, [m.buf]);
      flush();
      collect(m.length);
    } else {
      await feed.end();
      flush();
      cutter.end();
      post({ type: 'done' });
    }
  } catch (err) {
    failed = true;
    cutter.abort();
    if (!(err instanceof Stopped)) post({ type: 'error', error: serializeError(err) });
  }
}

port.on('message', (m: ToWriter) => {
  chain = chain.then(() => handle(m));
});
