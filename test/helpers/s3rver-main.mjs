// Runs s3rver in its own process for test/helpers/s3rver.ts. argv[2] is JSON
// { port, directory, bucket }; prints one JSON line { port } once listening.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

// s3rver 3.7.1 bug: a delimited listing reports a folder as a common prefix only when a key
// sits directly in it, so `a/` is missing when all its keys are deeper (`a/b/c`); S3 reports
// it. Its store walks folders and prunes those beneath a common prefix; here a pruned folder
// that holds objects yields one stand-in object path, which s3rver turns into that prefix.
// Patched before s3rver loads, because its store takes `walk` when it is required.
const OBJECT = '._S3rver_object';
const utils = require('s3rver/lib/utils.js');
const holdsObject = (dir) =>
  fs.readdirSync(dir, { withFileTypes: true }).some((e) => (e.isDirectory() ? holdsObject(path.posix.join(dir, e.name)) : e.name.endsWith(OBJECT)));
utils.walk = function* walk(dir, recurseFilter) {
  for (const name of fs.readdirSync(dir)) {
    const p = path.posix.join(dir, name);
    if (!fs.statSync(p).isDirectory()) yield p;
    else if (!recurseFilter || recurseFilter(p)) yield* walk(p, recurseFilter);
    else if (holdsObject(p)) yield path.posix.join(p, OBJECT);
  }
};
const S3rver = require('s3rver');

const { port, directory, bucket } = JSON.parse(process.argv[2] ?? '{}');
const server = new S3rver({
  address: '127.0.0.1',
  port,
  directory,
  silent: true,
  configureBuckets: bucket ? [{ name: bucket }] : [],
});
const addr = await server.run();
process.stdout.write(JSON.stringify({ port: addr.port }) + '\n');
// the test process died without stop(): clean up after it rather than linger
process.stdin
  .on('end', () => {
    fs.rmSync(directory, { recursive: true, force: true });
    process.exit(0);
  })
  .resume();
