#!/usr/bin/env bash
# Cryptomator repositories: write throughput of a first backup, peak RSS of that backup and
# of its restore, and the time of a no-change `sync up` over many small files, beside the
# machine's floor (`tar -c | cat` read speed, `openssl speed` for AES-256-GCM and SHA-256).
#
#   bash bench/vault.sh
#
# Environment:
#   BENCH_SIZE          corpus of the backup and restore rows (default 2GiB; 200MiB for a quick run)
#   BENCH_SEED          corpus seed (default cerberus-bench)
#   BENCH_SYNC_FILES    files in the sync corpus (default 50000; 0 leaves the sync rows out)
#   BENCH_RUNS          runs of each timed row; the median counts (default 3)
#   BENCH_DIR           where corpora, repositories and restores go (default /tmp/cerberus-vault-bench)
#   BENCH_MIN_MBPS      backup throughput target, MB/s of source bytes (default 150)
#   BENCH_LIMIT_MB      peak RSS limit of backup and restore, MB of 10^6 bytes (default 200)
#   BENCH_SYNC_LIMIT_S  no-change sync up limit, seconds (default 5)
#   BENCH_KEEP          1 keeps BENCH_DIR (default 0: removed on exit)
#
# Exits 1 when a target is missed, a run fails, or the restore differs from the source.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZE="${BENCH_SIZE:-2GiB}"
SEED="${BENCH_SEED:-cerberus-bench}"
SYNC_FILES="${BENCH_SYNC_FILES:-50000}"
RUNS="${BENCH_RUNS:-3}"
DIR="${BENCH_DIR:-/tmp/cerberus-vault-bench}"
MIN_MBPS="${BENCH_MIN_MBPS:-150}"
LIMIT_MB="${BENCH_LIMIT_MB:-200}"
SYNC_LIMIT_S="${BENCH_SYNC_LIMIT_S:-5}"
KEEP="${BENCH_KEEP:-0}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

need_gnu_time
command -v openssl >/dev/null || apt_install openssl openssl
ensure_build
SIZE_BYTES="$(to_bytes "$SIZE")" || die "BENCH_SIZE=$SIZE is not a size (use e.g. 2GiB or 500MiB)"
[ "$RUNS" -ge 1 ] || die "BENCH_RUNS must be at least 1"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
cleanup() { if [ "$KEEP" != 1 ]; then rm -rf "$DIR"; fi; }
trap cleanup EXIT

export TZ=UTC
export VAULT_PASSWORD='bench password, not a secret'
unset CERBERUS_KEY_PASSPHRASE CERBERUS_KEY_PASSPHRASE_FILE CERBERUS_PRIVATE_KEY_FILE

# ---- measuring ---------------------------------------------------------------------------
MEASURE_DIR="$DIR" # measure, rss_kib, wall_s, cpu_s, exit_of, mb, mbs: bench/lib.sh
load() { cut -d' ' -f1-3 /proc/loadavg; }

FAILED=()
ROWS=""
row() { ROWS+="| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"$'\n'; }

config() { # config NAME SOURCE REPO: a one-target cryptomator job
  cat >"$DIR/$1.yaml" <<EOF
jobs:
  bench:
    source: { paths: ["$2"] }
    encryption: { kind: cryptomator, password: "\${VAULT_PASSWORD}" }
    targets:
      - { name: local, type: local, path: $3 }
    timezone: UTC
EOF
}
# Every run writes a new repository folder, and none is deleted before the end: right after
# deleting thousands of files, ext4's inode allocator searches past the recently freed ones,
# which made file creation (and so the next run) up to twice as slow on this machine.
fresh() { # fresh NAME: a new repository (its config's path) and an empty state for the job NAME
  rm -rf "$DIR/$1-state"
  CERBERUS_STATE_DIR="$DIR/$1-state" node "$BIN" init -c "$DIR/$1.yaml" >/dev/null 2>"$DIR/$1-init.log" || die "cerberus init failed (see $DIR/$1-init.log)"
}
run() { # run NAME LABEL ARGS...: cerberus ARGS under GNU time, with the state of job NAME
  local job="$1" label="$2"; shift 2
  if ! CERBERUS_STATE_DIR="$DIR/$job-state" measure "$label" node "$BIN" "$@" -c "$DIR/$job.yaml" >"$DIR/$label.out"; then
    FAILED+=("cerberus $* exited $(exit_of "$label") (see $DIR/$label.log)")
  fi
}

# ---- corpora -----------------------------------------------------------------------------
log "generating a $SIZE corpus in $DIR (seed $SEED)"
node bench/corpus.mjs "$DIR/corpus" "$SIZE_BYTES" "$SEED" | tee "$DIR/corpus.summary" >&2
FILES="$(find "$DIR/corpus" -type f | wc -l)"
if [ "$SYNC_FILES" -gt 0 ]; then
  log "generating $SYNC_FILES small files"
  node bench/smallfiles.mjs "$DIR/small" "$SYNC_FILES" "$SEED" | tee "$DIR/small.summary" >&2
fi
LOAD_BEFORE="$(load)"

# ---- the floor ---------------------------------------------------------------------------
# reads the page cache: the corpus was just written, as the backups below read it
log 'floor: tar -c | cat, openssl speed'
T=()
for i in $(seq "$RUNS"); do
  measure "tar-$i" sh -c "tar -C '$DIR/corpus' -cf - . | cat >/dev/null"
  T+=("$(wall_s "tar-$i")")
done
TAR_S="$(echo "${T[*]}" | median)"
row 'floor: `tar -c \| cat >/dev/null` of the corpus (page cache)' "$TAR_S" "$(mbs "$SIZE_BYTES" "$TAR_S")" "$(cpu_s tar-1)" '-' "${T[*]}" '-'
# openssl prints 1000s of bytes per second; the 16384-byte column
ossl() { openssl speed -seconds 2 -evp "$1" 2>/dev/null | awk -v a="$1" 'tolower($1) == tolower(a) || $1 == toupper(a) { printf "%.0f", $NF / 1000 }'; }
for alg in aes-256-gcm sha256; do
  r="$(ossl "$alg")"
  row "floor: \`openssl speed -evp $alg\`, 16 KiB blocks, one core" '-' "${r:--}" '-' '-' '-' '-'
done

# ---- backup and restore ------------------------------------------------------------------
B=() R=() RR=() RRS=()
for i in $(seq "$RUNS"); do
  config backup "$DIR/corpus" "$DIR/repos/backup-$i"
  fresh backup
  sync
  log "cerberus backup $i/$RUNS"
  run backup "backup-$i" backup
  B+=("$(wall_s "backup-$i")")
  R+=("$(rss_kib "backup-$i")")
done
BACKUP_S="$(echo "${B[*]}" | median)"
BACKUP_RSS="$(echo "${R[*]}" | max_of)"
MBPS="$(mbs "$SIZE_BYTES" "$BACKUP_S")"
result=pass
if awk -v r="$MBPS" -v m="$MIN_MBPS" 'BEGIN { exit !(r < m) }'; then result='**FAIL**'; FAILED+=("backup ran at $MBPS MB/s, under $MIN_MBPS"); fi
row "cerberus backup, first (whole vault)" "$BACKUP_S" "$MBPS (≥ $MIN_MBPS: $result)" "$(cpu_s backup-1)" "$(mb "$BACKUP_RSS")" "${B[*]}" "$(for k in "${R[@]}"; do printf '%s ' "$(mb "$k")"; done)"

for i in $(seq "$RUNS"); do
  rm -rf "$DIR/restore"
  log "cerberus restore $i/$RUNS"
  run backup "restore-$i" restore --at latest --to "$DIR/restore"
  RR+=("$(wall_s "restore-$i")")
  RRS+=("$(rss_kib "restore-$i")")
done
RESTORE_S="$(echo "${RR[*]}" | median)"
RESTORE_RSS="$(echo "${RRS[*]}" | max_of)"
row "cerberus restore --at latest" "$RESTORE_S" "$(mbs "$SIZE_BYTES" "$RESTORE_S")" "$(cpu_s restore-1)" "$(mb "$RESTORE_RSS")" "${RR[*]}" "$(for k in "${RRS[@]}"; do printf '%s ' "$(mb "$k")"; done)"
LIMIT_KIB=$(( LIMIT_MB * 1000000 / 1024 ))
for p in backup:"$BACKUP_RSS" restore:"$RESTORE_RSS"; do
  [ "${p#*:}" -le "$LIMIT_KIB" ] || FAILED+=("cerberus ${p%%:*} peaked at $(mb "${p#*:}") MB, over the $LIMIT_MB MB limit")
done
IDENTICAL=no
if [ -d "$DIR/restore" ] && diff -r -q "$DIR/corpus" "$DIR/restore" >"$DIR/diff.txt" 2>&1; then IDENTICAL=yes; else FAILED+=("the restore differs from the source (see $DIR/diff.txt)"); fi
rm -rf "$DIR/restore"

# ---- sync up, no change ------------------------------------------------------------------
if [ "$SYNC_FILES" -gt 0 ]; then
  config sync "$DIR/small" "$DIR/repos/sync"
  fresh sync
  log "cerberus sync up of $SYNC_FILES files (first, not gated)"
  run sync sync-first sync up
  row "cerberus sync up, first ($SYNC_FILES new files; not gated)" "$(wall_s sync-first)" "$(mbs "$(du -sb --apparent-size "$DIR/small" | cut -f1)" "$(wall_s sync-first)")" "$(cpu_s sync-first)" "$(mb "$(rss_kib sync-first)")" '-' '-'
  S=() SR=()
  for i in $(seq "$RUNS"); do
    log "cerberus sync up, no change $i/$RUNS"
    run sync "sync-$i" sync up
    S+=("$(wall_s "sync-$i")")
    SR+=("$(rss_kib "sync-$i")")
    grep -q ': 0 added, 0 changed, 0 deleted;' "$DIR/sync-$i.log" || FAILED+=("no-change sync up $i changed something (see $DIR/sync-$i.log)")
  done
  SYNC_S="$(echo "${S[*]}" | median)"
  result=pass
  if awk -v s="$SYNC_S" -v m="$SYNC_LIMIT_S" 'BEGIN { exit !(s >= m) }'; then result='**FAIL**'; FAILED+=("no-change sync up took $SYNC_S s, not under $SYNC_LIMIT_S"); fi
  row "cerberus sync up, no change ($SYNC_FILES files)" "$SYNC_S (< $SYNC_LIMIT_S: $result)" '-' "$(cpu_s sync-1)" "$(mb "$(echo "${SR[*]}" | max_of)")" "${S[*]}" '-'
fi

# ---- report ------------------------------------------------------------------------------
DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/$DATE-$(hostname -s)-vault.md"
mkdir -p "$ROOT/bench/results"
CPU="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
{
  echo "# cerberus vault benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores ($CPU), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, $(uname -sr); load average $LOAD_BEFORE before, $(load) after"
  echo "- node $(node --version), cerberus $(node -p 'require("./package.json").version'), $(openssl version)"
  echo "- corpus: $SIZE ($SIZE_BYTES bytes), $FILES files, seed \"$SEED\", in $DIR"
  sed -n 's/^  /  - /p' "$DIR/corpus.summary"
  [ "$SYNC_FILES" -gt 0 ] && echo "- sync corpus: $(cat "$DIR/small.summary")"
  echo "- one local target on the same disk as the corpus: objects up to 256 KiB written to a temp file and renamed, made durable together by \`sync -f\` (every 64 MiB in the background, and before the commit); larger ones temp file, fsync, rename, fsync of the folder"
  echo "- each timed row: $RUNS runs, the median counts (seconds, MB/s); peak RSS is the highest run; CPU is user + system of the first run"
  echo "- restore identical to the source: $IDENTICAL"
  echo "- MB = 10^6 bytes; MB/s = source bytes / wall time"
  echo
  echo '| what | seconds | MB/s | CPU s | peak RSS (MB) | runs (s) | runs RSS (MB) |'
  echo '| --- | ---: | ---: | ---: | ---: | --- | --- |'
  printf '%s' "$ROWS"
  echo
  echo "Targets: backup ≥ $MIN_MBPS MB/s; backup and restore < $LIMIT_MB MB peak RSS; no-change sync up < $SYNC_LIMIT_S s."
  failed_list
} >"$OUT"
publish_report
