#!/usr/bin/env bash
# Memory benchmark: peak RSS of `cerberus backup` and `cerberus restore` of a large corpus,
# with `tar -c | gpg -e` and `gpg -d | tar -x` of the same corpus beside them for scale.
#
#   bash bench/memory.sh
#
# Environment:
#   BENCH_SIZE         corpus size (default 2GiB; e.g. 200MiB for a quick run)
#   BENCH_SEED         corpus seed (default cerberus-bench)
#   BENCH_LIMIT_MB     peak RSS limit for cerberus, in MB of 10^6 bytes (default 200)
#   BENCH_VOLUME_SIZE  the job's volumeSize (default 512MiB, cerberus's default)
#   BENCH_GPG          0 to skip the gpg rows (default 1)
#   BENCH_KEEP         1 to keep the repository and restored trees in bench/.work (default 0)
#
# Exits 0 when every cerberus phase stays under the limit and the restore is identical
# to the source (content, modes, modification times), 1 otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZE="${BENCH_SIZE:-2GiB}"
SEED="${BENCH_SEED:-cerberus-bench}"
LIMIT_MB="${BENCH_LIMIT_MB:-200}"
VOLUME_SIZE="${BENCH_VOLUME_SIZE:-512MiB}"
WITH_GPG="${BENCH_GPG:-1}"
KEEP="${BENCH_KEEP:-0}"
PASSPHRASE='bench passphrase, not a secret'

# shellcheck source=bench/lib.sh
. bench/lib.sh

# ---- tools -------------------------------------------------------------------------------
need_gnu_time
if [ "$WITH_GPG" = 1 ] && ! command -v gpg >/dev/null; then apt_install gpg gnupg; fi

# ---- build, work dir and corpus ----------------------------------------------------------
ensure_build
SIZE_BYTES="$(to_bytes "$SIZE")" || die "BENCH_SIZE=$SIZE is not a size (use e.g. 2GiB or 500MiB)"
ensure_corpus "$SIZE_BYTES" "$SEED" "$SIZE"

RUN="$WORK/memory"
rm -rf "$RUN"
mkdir -p "$RUN"
cleanup() {
  if [ -n "${GNUPGHOME:-}" ] && [ -d "$GNUPGHOME" ]; then gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1 || true; fi
  if [ "$KEEP" != 1 ]; then rm -rf "$RUN/repo" "$RUN/restore" "$RUN/state" "$RUN/gpg-restore" "$RUN/corpus.tar.gpg"; fi
}
trap cleanup EXIT

# ---- measuring ---------------------------------------------------------------------------
MEASURE_DIR="$RUN" # measure, rss_kib, wall_s, exit_of, mb, mbs: bench/lib.sh

export TZ=UTC
export CERBERUS_KEY_PASSPHRASE="$PASSPHRASE"
export CERBERUS_STATE_DIR="$RUN/state"
unset CERBERUS_KEY_PASSPHRASE_FILE CERBERUS_PRIVATE_KEY_FILE

log 'keygen + init'
FPR="$(node "$BIN" keygen --out "$RUN/keys" --email bench@example.org | sed -n 's/^fingerprint \([0-9A-Fa-f]*\).*/\1/p')"
[ -n "$FPR" ] || die 'cerberus keygen printed no fingerprint'
cat >"$RUN/cerberus.yaml" <<EOF
jobs:
  bench:
    source: { paths: ["$CORPUS"] }
    encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc] }
    targets:
      - { name: local, type: local, path: repo }
    timezone: UTC
    volumeSize: $VOLUME_SIZE
EOF
node "$BIN" init -c "$RUN/cerberus.yaml" >/dev/null

FAILED=()

log "cerberus backup of $CORPUS"
if ! measure backup node "$BIN" backup -c "$RUN/cerberus.yaml" >"$RUN/backup.out"; then
  FAILED+=("cerberus backup exited $(exit_of backup) (see $RUN/backup.log)")
fi
log "cerberus restore"
if ! measure restore node "$BIN" restore -c "$RUN/cerberus.yaml" --at latest --to "$RUN/restore" --key "$RUN/keys/cerberus.key.asc" >"$RUN/restore.out"; then
  FAILED+=("cerberus restore exited $(exit_of restore) (see $RUN/restore.log)")
fi

log 'comparing the restore with the source'
IDENTICAL=no
listing() { (cd "$1" && find . -mindepth 1 -printf '%y %m %s %T@ %P %l\n' | LC_ALL=C sort); }
if [ -d "$RUN/restore" ]; then
  if diff -r -q "$CORPUS" "$RUN/restore" >"$RUN/diff.txt" 2>&1; then
    # file sizes of folders differ between trees; compare them without
    if diff <(listing "$CORPUS" | awk '$1 == "d" { $3 = "-" } 1') <(listing "$RUN/restore" | awk '$1 == "d" { $3 = "-" } 1') >>"$RUN/diff.txt"; then
      IDENTICAL=yes
    else
      FAILED+=("the restore's modes or times differ from the source (see $RUN/diff.txt)")
    fi
  else
    FAILED+=("the restore's contents differ from the source (see $RUN/diff.txt)")
  fi
else
  FAILED+=('nothing was restored')
fi
REPO_BYTES="$(du -sb "$RUN/repo" 2>/dev/null | cut -f1 || echo 0)"
VOLUMES="$(find "$RUN/repo" -name 'data.tar.gpg.*' 2>/dev/null | wc -l)"

if [ "$WITH_GPG" = 1 ]; then
  log 'tar -c | gpg -e of the same corpus'
  export GNUPGHOME="$RUN/gnupg"
  mkdir -m 700 "$GNUPGHOME"
  gpg --batch --quiet --import "$RUN/keys/cerberus.pub.asc" 2>/dev/null
  gpg --batch --quiet --pinentry-mode loopback --passphrase "$PASSPHRASE" --import "$RUN/keys/cerberus.key.asc" 2>/dev/null
  # -z 0: no compression, like cerberus's default (encryption.compression: none)
  set +e
  measure gpg-tar tar -C "$CORPUS" -cf - . | measure gpg-enc gpg --batch --trust-model always -z 0 -r "$FPR" -e -o "$RUN/corpus.tar.gpg"
  st=("${PIPESTATUS[@]}")
  [ "${st[0]}${st[1]}" = 00 ] || FAILED+=("tar -c | gpg -e failed (${st[*]})")
  mkdir "$RUN/gpg-restore"
  measure gpg-dec gpg --batch --pinentry-mode loopback --passphrase "$PASSPHRASE" -d "$RUN/corpus.tar.gpg" | measure gpg-untar tar -C "$RUN/gpg-restore" -xf -
  st=("${PIPESTATUS[@]}")
  [ "${st[0]}${st[1]}" = 00 ] || FAILED+=("gpg -d | tar -x failed (${st[*]})")
  set -e
  GPG_BYTES="$(stat -c %s "$RUN/corpus.tar.gpg" 2>/dev/null || echo 0)"
fi

# ---- report ------------------------------------------------------------------------------
LIMIT_KIB=$(( LIMIT_MB * 1000000 / 1024 ))
ROWS=""
row() { ROWS+="| $1 | $2 | $(mbs "$SIZE_BYTES" "$2") | $3 | $4 | $5 |"$'\n'; }
for phase in backup restore; do
  [ -f "$RUN/$phase.time" ] || continue
  k="$(rss_kib "$phase")"
  if [ "$k" -le "$LIMIT_KIB" ] && [ "$(exit_of "$phase")" = 0 ]; then r=pass; else r='**FAIL**'; fi
  [ "$k" -le "$LIMIT_KIB" ] || FAILED+=("cerberus $phase peaked at $(mb "$k") MB, over the $LIMIT_MB MB limit")
  row "cerberus $phase" "$(wall_s "$phase")" "$(mb "$k")" "$LIMIT_MB" "$r"
done
if [ "$WITH_GPG" = 1 ]; then
  for pair in 'gpg-tar gpg-enc tar -c \| gpg -e' 'gpg-dec gpg-untar gpg -d \| tar -x'; do
    read -r a b label <<<"$pair"
    [ -f "$RUN/$a.time" ] && [ -f "$RUN/$b.time" ] || continue
    # the two run side by side: their peaks add up (at most)
    sum=$(( $(rss_kib "$a") + $(rss_kib "$b") ))
    s="$(wall_s "$b")"
    row "$label (for scale)" "$s" "$(mb "$sum") ($(mb "$(rss_kib "$a")") + $(mb "$(rss_kib "$b")"))" '-' '-'
  done
fi

DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/memory-$DATE.md"
mkdir -p "$ROOT/bench/results"
CPU="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
{
  echo "# cerberus memory benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores ($CPU), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, $(uname -sr)"
  echo "- node $(node --version), cerberus $(node -p 'require("./package.json").version'), $(gpg --version 2>/dev/null | head -1 || echo 'no gpg')"
  echo "- corpus: $SIZE ($SIZE_BYTES bytes), $FILES files in $DIRS folders, seed \"$SEED\""
  if [ -f "$CORPUS.summary" ]; then sed -n 's/^  /  - /p' "$CORPUS.summary"; fi
  echo "- job: one local target, volumeSize $VOLUME_SIZE, compression none; repository $REPO_BYTES bytes in $VOLUMES volumes"
  [ "$WITH_GPG" = 1 ] && echo "- gpg: \`tar -c | gpg -e -z 0\` to one file of ${GPG_BYTES:-0} bytes, then \`gpg -d | tar -x\`; the RSS is the sum of both processes' peaks"
  echo "- restore identical to the source (contents, modes, times): $IDENTICAL"
  echo "- MB = 10^6 bytes; seconds are wall-clock time on a shared machine"
  echo
  echo '| phase | seconds | MB/s | peak RSS (MB) | limit (MB) | result |'
  echo '| --- | ---: | ---: | ---: | ---: | --- |'
  printf '%s' "$ROWS"
  failed_list
} >"$OUT"
publish_report
