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
// s3rver 3.7.1 bug: CopyObject decodes x-amz-copy-source with decodeURI, which leaves
// %23 %3F %2B %3D (# ? + =) encoded, so keys holding them (every Cryptomator name ends in
// base64 '=' padding) are "not found". S3 decodes them. Re-encoded here so decodeURI gives
// the key S3 would see.
const objectController = require('s3rver/lib/controllers/object.js');
const putObjectCopy = objectController.putObjectCopy;
objectController.putObjectCopy = function patchedPutObjectCopy(ctx) {
  const raw = ctx.headers['x-amz-copy-source'];
  if (typeof raw === 'string') ctx.headers['x-amz-copy-source'] = encodeURI(decodeURIComponent(raw));
  return putObjectCopy.call(this, ctx);
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
