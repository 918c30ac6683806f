#!/usr/bin/env node
// One upload through cerberus's own storage stack, timed, for bench/upload.sh.
//
//   node bench/upload-put.mjs CONFIG TARGET FILE REMOTE_PATH
//   node bench/upload-put.mjs --backup-hwm     prints the highWaterMark a backup reads volumes with
//
// Loads CONFIG with the built config loader (so ${VAR}s come from the environment, as in a
// backup), opens target TARGET with the built openBackend (retry, concurrency, timeout
// layers, exactly as `cerberus backup` composes them) and puts FILE at REMOTE_PATH the way
// a backup puts a volume: backend.put(path, () => fs.createReadStream(file, opts), size).
// For a WebDAV target that is MKCOL, a Content-Length PUT to a temp name, MOVE, and a
// PROPFIND size check (plus a GET of the whole file with verify: readback).
//
// The read options are taken from the built dist/jobs/backup.js (its `createReadStream(v.file,
// ...)`), so this follows the backup when that changes; when the expression is no longer found
// this fails rather than measure something else.
//
// Prints one JSON line: { bytes, seconds, cpu, hwm } — seconds of the put() call alone (not
// Node's start-up or module loading), cpu the process's user + system seconds during it, hwm
// the read stream's highWaterMark.
//
// Environment (for what-if rows; leave unset for what a backup does):
//   BENCH_PUT_HWM   highWaterMark of the file read stream instead of the backup's, e.g. 65536
import fs from 'node:fs';

const NODE_DEFAULT_HWM = 64 * 1024;

/** The highWaterMark `cerberus backup` reads a spooled volume with, from the built code. */
function backupHighWaterMark() {
  const file = new URL('../dist/jobs/backup.js', import.meta.url);
  const code = fs.readFileSync(file, 'utf8');
  const m = /fs\.createReadStream\(v\.file(?:,\s*\{\s*highWaterMark:\s*([^,}]+?)\s*\})?\)/.exec(code);
  if (!m) {
    throw new Error(
      `cannot find how ${file.pathname} reads a volume (fs.createReadStream(v.file, ...)); ` +
        'the backup changed: make bench/upload-put.mjs read the file the same way',
    );
  }
  if (m[1] === undefined) return NODE_DEFAULT_HWM;
  if (!/^[\d\s<*+()]+$/.test(m[1])) throw new Error(`unexpected highWaterMark expression in ${file.pathname}: ${m[1]}`);
  return Number(Function(`return (${m[1]});`)());
}

if (process.argv[2] === '--backup-hwm') {
  console.log(backupHighWaterMark());
  process.exit(0);
}

const [configFile, targetName, file, remote] = process.argv.slice(2);
if (!remote) {
  console.error('usage: node bench/upload-put.mjs CONFIG TARGET FILE REMOTE_PATH');
  process.exit(2);
}

const { loadConfig, selectJob } = await import('../dist/config/index.js');
const { openBackend } = await import('../dist/storage/index.js');
const job = selectJob(await loadConfig(configFile), undefined);
const target = job.targets.find((t) => t.name === targetName);
if (!target) throw new Error(`no target ${targetName} in ${configFile}`);
const backend = openBackend(target, { log: (m) => console.error(m) });

const override = Number(process.env.BENCH_PUT_HWM);
const hwm = Number.isSafeInteger(override) && override > 0 ? override : backupHighWaterMark();
const size = fs.statSync(file).size;

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await backend.put(remote, () => fs.createReadStream(file, { highWaterMark: hwm }), size);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ bytes: size, seconds, cpu: (cpu.user + cpu.system) / 1e6, hwm }));
// keep-alive sockets would hold the process open
process.exit(0);
