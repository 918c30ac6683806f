#!/usr/bin/env bash
# The yearly export beside 7-Zip alone: `cerberus export` of a corpus (sha256 of every file,
# 7-Zip's archive, its test, the entry-by-entry check) against native
# `7zz a -p -mhe=on -mx=1` of the same folder, in the same run.
#
#   bash bench/export.sh
#
# Environment:
#   BENCH_SIZE       corpus size (default 2GiB; 200MiB for a quick run)
#   BENCH_SEED       corpus seed (default cerberus-bench)
#   BENCH_RUNS       runs of each row; the median counts (default 3)
#   BENCH_DIR        where archives go (default /tmp/cerberus-export-bench; the corpus is kept in bench/.work)
#   BENCH_MIN_RATIO  cerberus throughput ÷ native throughput, at least (default 0.5)
#   BENCH_LIMIT_MB   peak RSS limit of cerberus export, MB of 10^6 bytes (default 250)
#
# Peak RSS is GNU time's: the largest single process of the run (node or its 7zz).
# Exits 1 when a target is missed or a run fails.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZE="${BENCH_SIZE:-2GiB}"
SEED="${BENCH_SEED:-cerberus-bench}"
RUNS="${BENCH_RUNS:-3}"
DIR="${BENCH_DIR:-/tmp/cerberus-export-bench}"
MIN_RATIO="${BENCH_MIN_RATIO:-0.5}"
LIMIT_MB="${BENCH_LIMIT_MB:-250}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

need_gnu_time
command -v 7zz >/dev/null || apt_install '7-Zip (7zz)' 7zip
ensure_build
SIZE_BYTES="$(to_bytes "$SIZE")" || die "BENCH_SIZE=$SIZE is not a size (use e.g. 2GiB or 500MiB)"
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"
ensure_corpus "$SIZE_BYTES" "$SEED" "$SIZE"

rm -rf "$DIR"
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
MEASURE_DIR="$DIR"
export TZ=UTC VAULT_PASSWORD='bench vault password' EXPORT_PASSWORD='bench export password'
cat >"$DIR/bench.yaml" <<EOF
jobs:
  bench:
    source: { paths: ["$CORPUS"] }
    encryption: { kind: cryptomator, password: "\${VAULT_PASSWORD}" }
    targets: [ { name: local, type: local, path: "$DIR/repo" } ]
    export: { password: "\${EXPORT_PASSWORD}", level: 1 }
EOF

FAILED=()
N=() NR=() C=() CR=()
for i in $(seq "$RUNS"); do
  sync
  log "native 7zz a -mhe=on -mx=1, $i/$RUNS"
  rm -f "$DIR/native.7z"
  # the password on stdin, as cerberus gives it
  measure "native-$i" sh -c "printf '%s\n' \"\$EXPORT_PASSWORD\" | 7zz a -t7z -mhe=on -mx=1 -snl -bso0 -bsp0 -p '$DIR/native.7z' '$CORPUS/.'" ||
    FAILED+=("native 7zz failed (see $DIR/native-$i.log)")
  N+=("$(wall_s "native-$i")") NR+=("$(rss_kib "native-$i")")
  rm -f "$DIR/native.7z"
  sync
  log "cerberus export, $i/$RUNS"
  measure "cerberus-$i" node "$BIN" export -c "$DIR/bench.yaml" --to "$DIR/out" --year 2026 --replace ||
    FAILED+=("cerberus export exited $(exit_of "cerberus-$i") (see $DIR/cerberus-$i.log)")
  C+=("$(wall_s "cerberus-$i")") CR+=("$(rss_kib "cerberus-$i")")
done
NATIVE_S="$(echo "${N[*]}" | median)"
CERB_S="$(echo "${C[*]}" | median)"
CERB_RSS="$(echo "${CR[*]}" | max_of)"
RATIO="$(awk -v n="$NATIVE_S" -v c="$CERB_S" 'BEGIN { printf "%.2f", n / c }')"
ARCHIVE_BYTES="$(stat -c %s "$DIR/out/bench-2026.7z" 2>/dev/null || echo 0)"
awk -v r="$RATIO" -v m="$MIN_RATIO" 'BEGIN { exit !(r < m) }' && FAILED+=("cerberus export ran at $RATIO× native 7zz, under $MIN_RATIO×")
[ "$CERB_RSS" -le $(( LIMIT_MB * 1000000 / 1024 )) ] || FAILED+=("cerberus export peaked at $(mb "$CERB_RSS") MB, over $LIMIT_MB MB")

DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/$DATE-$(hostname -s)-export.md"
mkdir -p "$ROOT/bench/results"
{
  echo "# cerberus export benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, $(uname -sr)"
  echo "- node $(node --version), cerberus $(node -p 'require("./package.json").version'), $(7zz i 2>/dev/null | sed -n 's/^\(7-Zip[^:]*\):.*/\1/p' | head -1)"
  echo "- corpus: $SIZE ($SIZE_BYTES bytes), $FILES files, seed \"$SEED\"; archive $(mb $(( ARCHIVE_BYTES / 1024 ))) MB"
  echo "- each row: $RUNS runs, the median counts; peak RSS: the largest process of the highest run"
  echo
  echo '| what | seconds | MB/s | CPU s | peak RSS (MB) | runs (s) |'
  echo '| --- | ---: | ---: | ---: | ---: | --- |'
  echo "| native \`7zz a -p -mhe=on -mx=1\` | $NATIVE_S | $(mbs "$SIZE_BYTES" "$NATIVE_S") | $(cpu_s native-1) | $(mb "$(echo "${NR[*]}" | max_of)") | ${N[*]} |"
  echo "| \`cerberus export\` (hash, archive, 7-Zip test, entry check) | $CERB_S | $(mbs "$SIZE_BYTES" "$CERB_S") | $(cpu_s cerberus-1) | $(mb "$CERB_RSS") | ${C[*]} |"
  echo
  echo "cerberus ÷ native throughput: **$RATIO×** (target ≥ $MIN_RATIO×); peak RSS target < $LIMIT_MB MB."
  failed_list
} >"$OUT"
publish_report
