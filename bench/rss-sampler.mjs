// Samples process.memoryUsage() every 100 ms and writes the series (MiB) and the maxima to
// $SAMPLE_OUT when the process exits. For finding where memory goes:
//
//   SAMPLE_OUT=/tmp/restore.tsv node --import ./bench/rss-sampler.mjs dist/bin/cerberus.js restore ...
//
// rss is what bench/memory.sh limits; heapTotal (V8 heap, live and garbage) and
// arrayBuffers (Buffer contents, outside the heap) are the parts that move.
import fs from 'node:fs';

const out = process.env.SAMPLE_OUT;
if (out) {
  const keys = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'];
  const max = Object.fromEntries(keys.map((k) => [k, 0]));
  const rows = [];
  const t0 = Date.now();
  const timer = setInterval(() => {
    const m = process.memoryUsage();
    for (const k of keys) max[k] = Math.max(max[k], m[k]);
    rows.push([Date.now() - t0, ...keys.map((k) => (m[k] / 1048576).toFixed(1))].join('\t'));
  }, 100);
  timer.unref();
  process.on('exit', () => {
    const maxima = keys.map((k) => `${k} ${(max[k] / 1048576).toFixed(1)}`).join(', ');
    fs.writeFileSync(out, `ms\t${keys.join('\t')}\n${rows.join('\n')}\n# max (MiB): ${maxima}\n`);
  });
}
