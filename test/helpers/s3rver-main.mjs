// Runs s3rver in its own process for test/helpers/s3rver.ts. argv[2] is JSON
// { port, directory, bucket }; prints one JSON line { port } once listening.
import S3rver from 's3rver';

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
// the parent went away without stopping us: don't linger
process.stdin.on('end', () => process.exit(0)).resume();
