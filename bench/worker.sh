#!/usr/bin/env bash
# The object-storage worker (`cerberus worker --once`): objects a second and peak RSS for 10,000
# small objects (1-64 KiB) recorded in a SQLite application database, served by a local s3rver
# through signed URLs, copied to a local target with concurrency 8; once plain, once encrypted
# to an OpenPGP key. Every copy is checked afterwards: it gunzips (after gpg, for the encrypted
# row: a sample) to bytes with the row's hash.
#
#   bash bench/worker.sh
#
# Environment:
#   BENCH_OBJECTS      objects (default 10000)
#   BENCH_SEED         seed of the objects (default cerberus-bench)
#   BENCH_RUNS         runs of each row; the median counts, the highest RSS (default 3)
#   BENCH_CONCURRENCY  the worker's concurrency (default 8)
#   BENCH_MIN_RATE     gate: objects a second, plain row (default 200)
#   BENCH_LIMIT_MB     gate: peak RSS of every run, MB of 10^6 bytes (default 200)
#   BENCH_DIR          where s3rver's data, the database, targets and logs go
#                      (default bench/.work/worker; removed on exit)
#   BENCH_KEEP         1 keeps BENCH_DIR (default 0)
#
# The rate is of the whole process, start and exit included: OBJECTS / wall time. s3rver runs
# on the same two cores and takes a share of them; on a real deployment the objects come over
# the network and the worker has the machine to itself. Exits 1 when a gate is missed, a run
# fails, or a copy is missing or wrong.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

OBJECTS="${BENCH_OBJECTS:-10000}"
SEED="${BENCH_SEED:-cerberus-bench}"
RUNS="${BENCH_RUNS:-3}"
CONCURRENCY="${BENCH_CONCURRENCY:-8}"
MIN_RATE="${BENCH_MIN_RATE:-200}"
LIMIT_MB="${BENCH_LIMIT_MB:-200}"
DIR="${BENCH_DIR:-$ROOT/bench/.work/worker}"
KEEP="${BENCH_KEEP:-0}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

need_gnu_time
command -v gpg >/dev/null || apt_install gpg gnupg
ensure_build
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"

rm -rf "$DIR"
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
cleanup() {
  set +e
  s3rver_stop
  if [ "$KEEP" != 1 ]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export TZ=UTC
S3_KEY=S3RVER
S3_SECRET=S3RVER
export S3_KEY S3_SECRET
export CERBERUS_KEY_PASSPHRASE='bench passphrase, not a secret'
MEASURE_DIR="$DIR"
FAILED=()
ROWS=""
row() { ROWS+="| $1 | $2 | $3 | $4 | $5 | $6 |"$'\n'; }

s3rver_start "$DIR/s3rver" app
log "seeding $OBJECTS objects"
node bench/worker-seed.mjs "{\"endpoint\":\"http://127.0.0.1:$S3_PORT\",\"bucket\":\"app\",\"db\":\"$DIR/app.db\",\"count\":$OBJECTS,\"seed\":\"$SEED\",\"accessKeyId\":\"$S3_KEY\"}" \
  | tee "$DIR/seed.summary" >&2
node "$BIN" keygen --out "$DIR/keys" >/dev/null

config() { # config NAME ENCRYPTION-LINE: a worker config with its own target and state
  cat >"$DIR/$1.yaml" <<EOF
worker:
  database: sqlite:$DIR/app.db
  storages:
    s3: { type: s3, endpoint: "http://127.0.0.1:$S3_PORT", region: us-east-1, bucket: app, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET} }
  target: { name: disk, type: local, path: $DIR/$1-target }
  stateDir: $DIR/$1-state
  concurrency: $CONCURRENCY
$2
EOF
}

# check NAME ENCRYPTED: every row's copy is where the contract puts it and holds its bytes
check() {
  node - "$DIR/app.db" "$DIR/$1-target" "$2" "$DIR/keys/cerberus.key.asc" <<'EOF' || FAILED+=("$1: copies missing or wrong (see above)")
const [db, target, encrypted, key] = process.argv.slice(2);
const { createRequire } = await import('node:module');
const require = createRequire(process.cwd() + '/');
const { createHash } = await import('node:crypto');
const { gunzipSync } = await import('node:zlib');
const { execFileSync } = await import('node:child_process');
const fs = await import('node:fs');
let open;
try { const { DatabaseSync } = require('node:sqlite'); open = (f) => new DatabaseSync(f, { readOnly: true }); }
catch { const D = require('better-sqlite3'); open = (f) => new D(f, { readonly: true }); }
const rows = open(db).prepare('SELECT "Path", "Version", "Hash" FROM "ObjectStorageFiles"').all();
const gnupg = fs.mkdtempSync('/tmp/bench-gnupg-');
if (encrypted === '1') execFileSync('gpg', ['--homedir', gnupg, '--batch', '--import', key], { stdio: 'ignore' });
let bad = 0;
rows.forEach((r, i) => {
  const stem = r.Path.replace(/^\//, '').replace(/\.[^./]*$/, '');
  const file = `${target}/app/${stem}/v${r.Version}.gzip${encrypted === '1' ? '.gpg' : ''}`;
  if (!fs.existsSync(file)) { if (bad++ < 5) console.error(`missing: ${file}`); return; }
  if (encrypted === '1' && i % 100 !== 0) return; // gpg per file is slow: a sample
  let gz = fs.readFileSync(file);
  if (encrypted === '1') gz = execFileSync('gpg', ['--homedir', gnupg, '--batch', '--pinentry-mode', 'loopback', '--passphrase-fd', '0', '-d', file], { input: process.env.CERBERUS_KEY_PASSPHRASE + '\n', stdio: ['pipe', 'pipe', 'ignore'] });
  if (createHash('sha256').update(gunzipSync(gz)).digest('hex') !== r.Hash) { if (bad++ < 5) console.error(`wrong bytes: ${file}`); }
});
fs.rmSync(gnupg, { recursive: true, force: true });
const stored = execFileSync('find', [target, '-type', 'f', '-name', '*.gzip*']).toString().split('\n').filter(Boolean).length;
if (stored !== rows.length) { console.error(`${stored} copies for ${rows.length} rows`); bad++; }
process.exit(bad ? 1 : 0);
EOF
}

bench_row() { # bench_row NAME LABEL ENCRYPTION-LINE ENCRYPTED GATED
  local name="$1" label="$2" W=() R=() i rate result
  for i in $(seq "$RUNS"); do
    config "$name-$i" "$3"
    sync
    log "$label, run $i/$RUNS"
    if ! measure "$name-$i" node "$BIN" worker --config "$DIR/$name-$i.yaml" --once >"$DIR/$name-$i.out"; then
      FAILED+=("$label: cerberus worker exited $(exit_of "$name-$i") (see $DIR/$name-$i.log)")
    fi
    W+=("$(wall_s "$name-$i")")
    R+=("$(rss_kib "$name-$i")")
    check "$name-$i" "$4"
  done
  local wall rss
  wall="$(echo "${W[*]}" | median)"
  rss="$(echo "${R[*]}" | max_of)"
  rate="$(awk -v n="$OBJECTS" -v s="$wall" 'BEGIN { printf "%.0f", n / s }')"
  result=''
  if [ "$5" = 1 ]; then
    if [ "$rate" -lt "$MIN_RATE" ]; then result=" (≥ $MIN_RATE: **FAIL**)"; FAILED+=("$label: $rate objects/s, under $MIN_RATE"); else result=" (≥ $MIN_RATE: pass)"; fi
  fi
  local rss_result=pass
  if awk -v k="$rss" -v l="$LIMIT_MB" 'BEGIN { exit !(k * 1024 / 1e6 >= l) }'; then rss_result='**FAIL**'; FAILED+=("$label: peak RSS $(mb "$rss") MB, not under $LIMIT_MB"); fi
  row "$label" "$wall" "$rate$result" "$(cpu_s "$name-1")" "$(mb "$rss") (< $LIMIT_MB: $rss_result)" "${W[*]}"
}

LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
bench_row plain "worker --once, plain (.gzip)" '' 0 1
bench_row gpg "worker --once, encrypted (.gzip.gpg)" "  encryption: { kind: openpgp, recipients: [$DIR/keys/cerberus.pub.asc] }" 1 0
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p bench/results
OUT="bench/results/$(date -u +%Y-%m-%d)-$(hostname)-worker.md"
{
  echo "# cerberus worker: $OBJECTS objects, concurrency $CONCURRENCY ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr), Node $(node --version); load $LOAD_BEFORE before, $LOAD_AFTER after."
  echo "Objects: $(cat "$DIR/seed.summary"). Median of $RUNS runs; peak RSS is the highest."
  echo
  echo '| row | seconds | objects/s | CPU s (run 1) | peak RSS (MB) | runs (s) |'
  echo '| --- | ---: | ---: | ---: | ---: | --- |'
  printf '%s' "$ROWS"
  failed_list
} >"$OUT"
publish_report
