#!/usr/bin/env node
// One upload through cerberus's own storage stack, timed, for bench/upload.sh.
//
//   node bench/upload-put.mjs CONFIG TARGET FILE REMOTE_PATH
//
// Loads CONFIG with the built config loader (so ${VAR}s come from the environment, as in a
// backup), opens target TARGET with the built openBackend (retry, concurrency, timeout
// layers, exactly as `cerberus backup` composes them) and puts FILE at REMOTE_PATH the way
// a backup puts a volume: backend.put(path, () => fs.createReadStream(file), size).
// For a WebDAV target that is MKCOL, a Content-Length PUT to a temp name, MOVE, and a
// PROPFIND size check (plus a GET of the whole file with verify: readback).
//
// Prints one JSON line: { bytes, seconds, cpu } — seconds of the put() call alone (not Node's
// start-up or module loading), cpu the process's user + system seconds during it.
//
// Environment (for finding out what costs time; leave unset for what a backup does):
//   BENCH_PUT_HWM   highWaterMark of the file read stream, e.g. 1048576 (Node's default: 64 KiB)
import fs from 'node:fs';
import { loadConfig, selectJob } from '../dist/config/index.js';
import { openBackend } from '../dist/storage/index.js';

const [configFile, targetName, file, remote] = process.argv.slice(2);
if (!remote) {
  console.error('usage: node bench/upload-put.mjs CONFIG TARGET FILE REMOTE_PATH');
  process.exit(2);
}

const job = selectJob(await loadConfig(configFile), undefined);
const target = job.targets.find((t) => t.name === targetName);
if (!target) throw new Error(`no target ${targetName} in ${configFile}`);
const backend = openBackend(target, { log: (m) => console.error(m) });

const hwm = Number(process.env.BENCH_PUT_HWM);
const readOpts = Number.isSafeInteger(hwm) && hwm > 0 ? { highWaterMark: hwm } : {};
const size = fs.statSync(file).size;

const cpu0 = process.cpuUsage();
const t0 = process.hrtime.bigint();
await backend.put(remote, () => fs.createReadStream(file, readOpts), size);
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const cpu = process.cpuUsage(cpu0);
console.log(JSON.stringify({ bytes: size, seconds, cpu: (cpu.user + cpu.system) / 1e6 }));
// keep-alive sockets would hold the process open
process.exit(0);
