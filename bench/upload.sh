#!/usr/bin/env bash
# Upload benchmark, in two parts:
#
# 1. Throughput of one large upload to a local Apache mod_dav: `curl -T` against cerberus's own
#    put (bench/upload-put.mjs: the built backend with its retry, concurrency and timeout
#    layers; MKCOL, Content-Length PUT to a temp name, MOVE, PROPFIND size check), the same
#    file, the same server, alternating order, best of BENCH_ROUNDS each. Gate: cerberus
#    reaches at least BENCH_MIN_RATIO (0.8) of curl's rate. `verify: readback` is an extra row,
#    not gated.
# 2. Peak RSS of a full `cerberus backup` of the corpus to one target of each type in
#    BENCH_BACKENDS (local folder, the Apache, s3rver), under GNU time. Gate: each peak under
#    BENCH_LIMIT_MB.
#
#   bash bench/upload.sh
#
# Environment:
#   BENCH_SIZE         corpus size (default 2GiB; e.g. 200MiB for a quick run)
#   BENCH_SEED         corpus seed (default cerberus-bench)
#   BENCH_LIMIT_MB     peak RSS limit for cerberus, in MB of 10^6 bytes (default 200)
#   BENCH_BACKENDS     targets for part 2 (default "local webdav s3"; "" skips part 2)
#   BENCH_UPLOAD_SIZE  size of the file of part 1 (default 1GiB; at most the corpus as a tar)
#   BENCH_ROUNDS       attempts of each upload in part 1 (default 3; 0 skips part 1)
#   BENCH_MIN_RATIO    part 1's gate, cerberus / curl (default 0.8)
#   BENCH_VOLUME_SIZE  the job's volumeSize (default 512MiB, cerberus's default)
#   BENCH_KEEP         1 to keep the repositories and server data in bench/.work/upload (default 0)
#
# cerberus's put reads the file in chunks of the size `cerberus backup` reads a volume with
# (bench/upload-put.mjs finds it in dist/jobs/backup.js). Part 1 has one more row, not gated: the
# same put with the other chunk size (64 KiB, Node's default, when the backup reads 1 MiB; else
# 1 MiB), to show what the chunk size does.
#
# Servers (Apache with its own config, s3rver via test/helpers/s3rver-main.mjs) listen on
# 127.0.0.1 only, keep their data in bench/.work/upload (gitignored, on disk) and are stopped on
# exit. Passwords are made up per run and reach curl through a config file (-K) and cerberus
# through the environment, never through argv.
#
# Exits 0 when every gate passes and every backup succeeds, 1 otherwise.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

SIZE="${BENCH_SIZE:-2GiB}"
SEED="${BENCH_SEED:-cerberus-bench}"
LIMIT_MB="${BENCH_LIMIT_MB:-200}"
BACKENDS="${BENCH_BACKENDS-local webdav s3}"
UPLOAD_SIZE="${BENCH_UPLOAD_SIZE:-1GiB}"
ROUNDS="${BENCH_ROUNDS:-3}"
MIN_RATIO="${BENCH_MIN_RATIO:-0.8}"
VOLUME_SIZE="${BENCH_VOLUME_SIZE:-512MiB}"
KEEP="${BENCH_KEEP:-0}"
PASSPHRASE='bench passphrase, not a secret'

# shellcheck source=bench/lib.sh
. bench/lib.sh

for b in $BACKENDS; do
  case "$b" in local | webdav | s3) ;; *) die "BENCH_BACKENDS: unknown backend $b (use local, webdav, s3)" ;; esac
done
[[ "$ROUNDS" =~ ^[0-9]+$ ]] || die "BENCH_ROUNDS=$ROUNDS is not a number"
NEED_DAV=0
NEED_S3=0
[ "$ROUNDS" -gt 0 ] && NEED_DAV=1
[[ " $BACKENDS " == *" webdav "* ]] && NEED_DAV=1
[[ " $BACKENDS " == *" s3 "* ]] && NEED_S3=1

# ---- tools -------------------------------------------------------------------------------
need_gnu_time
if [ "$NEED_DAV" = 1 ]; then need_dav; fi

# ---- build, work dir and corpus (shared with bench/memory.sh) -----------------------------
ensure_build
SIZE_BYTES="$(to_bytes "$SIZE")" || die "BENCH_SIZE=$SIZE is not a size (use e.g. 2GiB or 500MiB)"
UPLOAD_BYTES="$(to_bytes "$UPLOAD_SIZE")" || die "BENCH_UPLOAD_SIZE=$UPLOAD_SIZE is not a size"
ensure_corpus "$SIZE_BYTES" "$SEED" "$SIZE"

RUN="$WORK/upload"
rm -rf "$RUN"
mkdir -p "$RUN"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

# ---- servers -----------------------------------------------------------------------------
cleanup() {
  set +e
  dav_stop
  s3rver_stop
  rm -f "$RUN/curlrc"
  if [ "$KEEP" != 1 ]; then rm -rf "$RUN/apache/data" "$RUN/s3rver" "$RUN"/repo-* "$RUN"/state-* "$RUN/upload.bin"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Apache httpd with mod_dav_fs (dav_start, bench/lib.sh), as test/helpers/apache.ts sets it up:
# own config, port and folders; nothing of the system's Apache setup is used.
DAV_USER=bench
DAV_PASSWORD="$(random_secret)"
export DAV_USER DAV_PASSWORD

S3_KEY=S3RVER
S3_SECRET=S3RVER
export S3_KEY S3_SECRET

[ "$NEED_DAV" = 1 ] && dav_start "$RUN/apache" "$DAV_USER" "$DAV_PASSWORD" "${RUN#"$ROOT"/}/apache"
[ "$NEED_S3" = 1 ] && s3rver_start "$RUN/s3rver" bench

# curl reads the password from a config file, not argv
CURLRC="$RUN/curlrc"
(umask 077 && printf 'user = "%s:%s"\n' "$DAV_USER" "$DAV_PASSWORD" >"$CURLRC")
dav() { curl -sS -K "$CURLRC" -o /dev/null -w '%{http_code}' "$@"; }

# ---- keys and configs --------------------------------------------------------------------
export TZ=UTC
export CERBERUS_KEY_PASSPHRASE="$PASSPHRASE"
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
unset CERBERUS_KEY_PASSPHRASE_FILE CERBERUS_PRIVATE_KEY_FILE CERBERUS_DEBUG
log 'keygen'
node "$BIN" keygen --out "$RUN/keys" --email bench@example.org >/dev/null

# config NAME TARGET-YAML: a job backing up the corpus to one target
config() {
  cat >"$RUN/$1.yaml" <<EOF
jobs:
  bench:
    source: { paths: ["$CORPUS"] }
    encryption: { kind: openpgp, recipients: [keys/cerberus.pub.asc] }
    targets:
      - $2
    timezone: UTC
    volumeSize: $VOLUME_SIZE
EOF
}
# \${...}: interpolated by cerberus from the environment, so no secret is in a file or argv
DAV_TARGET="url: \"${DAV_URL:-}\", username: \${DAV_USER}, password: \${DAV_PASSWORD}"
S3_TARGET="endpoint: \"http://127.0.0.1:${S3_PORT:-0}\", bucket: bench, accessKeyId: \${S3_KEY}, secretAccessKey: \${S3_SECRET}"

# ---- measuring ---------------------------------------------------------------------------
MEASURE_DIR="$RUN" # measure, rss_kib, wall_s, cpu_s, exit_of, mb, mbs: bench/lib.sh
# CPU seconds (user + system) used so far by Apache's processes
apache_cpu() {
  local p t=0 tick
  tick="$(getconf CLK_TCK)"
  for p in $(pgrep -g "$DAV_PID" || true); do
    t=$(( t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0) ))
  done
  awk -v t="$t" -v k="$tick" 'BEGIN { printf "%.2f", t / k }'
}

FAILED=()

# ---- part 1: one large upload, curl against cerberus ---------------------------------------
PUT_ROWS=''
RATIO=''
if [ "$ROUNDS" -gt 0 ]; then
  FILE="$RUN/upload.bin"
  # the chunk size a backup reads volumes with, and the other one for the what-if row
  BACKUP_HWM="$(node bench/upload-put.mjs --backup-hwm)" || die 'bench/upload-put.mjs cannot tell how a backup reads volumes'
  if [ "$BACKUP_HWM" = 65536 ]; then WHATIF_HWM=1048576; else WHATIF_HWM=65536; fi
  chunk() { awk -v b="$1" 'BEGIN { if (b % 1048576 == 0) printf "%d MiB", b / 1048576; else if (b % 1024 == 0) printf "%d KiB", b / 1024; else printf "%d bytes", b }'; }
  log "making the upload file: the corpus as a tar, cut to at most $UPLOAD_SIZE"
  # head closing the pipe ends tar with SIGPIPE: expected
  (set +o pipefail; tar -C "$CORPUS" -cf - . 2>/dev/null | head -c "$UPLOAD_BYTES" >"$FILE")
  PUT_BYTES="$(stat -c %s "$FILE")"
  [ "$PUT_BYTES" -gt 0 ] || die "could not make $FILE"

  config put "{ name: dav, type: webdav, $DAV_TARGET, path: put }
      - { name: dav-readback, type: webdav, $DAV_TARGET, path: put, verify: readback }"
  [ "$(dav -X MKCOL "$DAV_URL/put/")" = 201 ] || die "MKCOL $DAV_URL/put/ failed"

  declare -A BEST=() RUNS=() CPU=() SRV=()
  # attempt KIND: one upload, its time added to RUNS[KIND]
  attempt() {
    local kind="$1" s c srv0 out code
    dav -X DELETE "$DAV_URL/put/$kind.bin" >/dev/null
    # no dirty pages of the last attempt left to write back during this one
    sync
    srv0="$(apache_cpu)"
    case "$kind" in
      curl)
        # curl's own total time: from connecting to the last byte of the answer
        if ! out="$(/usr/bin/time -f '%U %S' -o "$RUN/curl.cpu" curl -sS -K "$CURLRC" -T "$FILE" -o /dev/null \
          -w '%{http_code} %{time_total}' "$DAV_URL/put/$kind.bin" 2>"$RUN/put-curl.log")"; then
          FAILED+=("curl -T failed (see $RUN/put-curl.log)")
          return
        fi
        read -r code s <<<"$out"
        s="$(awk -v s="$s" 'BEGIN { printf "%.3f", s }')"
        [ "$code" = 201 ] || { FAILED+=("curl -T answered $code"); return; }
        c="$(awk '{ printf "%.2f", $1 + $2 }' "$RUN/curl.cpu")"
        ;;
      put | readback | whatif)
        local target=dav hwm=''
        [ "$kind" = readback ] && target=dav-readback
        [ "$kind" = whatif ] && hwm="$WHATIF_HWM"
        if ! out="$(BENCH_PUT_HWM="$hwm" node bench/upload-put.mjs "$RUN/put.yaml" "$target" "$FILE" "$kind.bin" 2>"$RUN/put-$kind.log")"; then
          FAILED+=("cerberus put ($kind) failed (see $RUN/put-$kind.log)")
          return
        fi
        s="$(node -p 'JSON.parse(process.argv[1]).seconds.toFixed(3)' "$out")"
        c="$(node -p 'JSON.parse(process.argv[1]).cpu.toFixed(2)' "$out")"
        ;;
    esac
    local size
    size="$(stat -c %s "$RUN/apache/data/put/$kind.bin" 2>/dev/null || echo 0)"
    [ "$size" = "$PUT_BYTES" ] || FAILED+=("after the $kind upload the server holds $size bytes, not $PUT_BYTES")
    SRV[$kind]="${SRV[$kind]:-} $(awk -v a="$srv0" -v b="$(apache_cpu)" 'BEGIN { printf "%.2f", b - a }')"
    RUNS[$kind]="${RUNS[$kind]:-} $s"
    CPU[$kind]="${CPU[$kind]:-} $c"
    log "  $kind: $s s ($(mbs "$PUT_BYTES" "$s") MB/s), client CPU $c s"
  }
  log "part 1: $ROUNDS rounds of curl -T / cerberus put / put with verify: readback / put reading $(chunk "$WHATIF_HWM") chunks, $PUT_BYTES bytes each"
  for ((r = 1; r <= ROUNDS; r++)); do
    # alternating order: none always goes first, or right after the same other one
    if ((r % 2)); then order='curl put readback whatif'; else order='whatif readback put curl'; fi
    for k in $order; do attempt "$k"; done
  done

  # best (shortest) attempt of a kind, and the CPU figures of that attempt
  pick() { # pick KIND -> "seconds client-cpu server-cpu"
    paste <(tr ' ' '\n' <<<"${RUNS[$1]:-}") <(tr ' ' '\n' <<<"${CPU[$1]:-}") <(tr ' ' '\n' <<<"${SRV[$1]:-}") |
      awk 'NF == 3 && (best == "" || $1 < best) { best = $1; c = $2; v = $3 } END { if (best != "") print best, c, v }'
  }
  put_row() { # put_row KIND LABEL
    local best c v
    read -r best c v <<<"$(pick "$1")" || true
    [ -n "${best:-}" ] || return 0
    BEST[$1]="$best"
    local runs
    runs="$(tr ' ' '\n' <<<"${RUNS[$1]}" | awk 'NF { printf "%s%.2f", (n++ ? ", " : ""), $1 }')"
    PUT_ROWS+="| $2 | $best | $(mbs "$PUT_BYTES" "$best") | $runs | $c | $v |"$'\n'
  }
  put_row curl 'curl -T'
  put_row put "cerberus put (verify: size), reads of $(chunk "$BACKUP_HWM")"
  put_row readback "cerberus put (verify: readback), reads of $(chunk "$BACKUP_HWM"); not gated"
  put_row whatif "cerberus put (verify: size), reads of $(chunk "$WHATIF_HWM"); what-if, not gated"
  if [ -n "${BEST[curl]:-}" ] && [ -n "${BEST[put]:-}" ]; then
    RATIO="$(awk -v c="${BEST[curl]}" -v p="${BEST[put]}" 'BEGIN { printf "%.2f", c / p }')"
    if awk -v r="$RATIO" -v m="$MIN_RATIO" 'BEGIN { exit !(r >= m) }'; then
      PUT_RESULT=pass
    else
      PUT_RESULT='**FAIL**'
      FAILED+=("cerberus put reached $RATIO × curl's rate, under the $MIN_RATIO required")
    fi
  else
    PUT_RESULT='**FAIL**'
    FAILED+=('part 1 did not produce both a curl and a cerberus time')
  fi
  [ "$KEEP" = 1 ] || dav -X DELETE "$DAV_URL/put/" >/dev/null
fi

# ---- part 2: a whole backup to each backend, peak RSS -------------------------------------
BACKUP_ROWS=''
LIMIT_KIB=$(( LIMIT_MB * 1000000 / 1024 ))
for b in $BACKENDS; do
  case "$b" in
    local) target='{ name: local, type: local, path: repo-local }'; stored="$RUN/repo-local" ;;
    webdav) target="{ name: dav, type: webdav, $DAV_TARGET, path: backup }"; stored="$RUN/apache/data/backup" ;;
    s3) target="{ name: s3, type: s3, $S3_TARGET, prefix: backup }"; stored="$RUN/s3rver/data/bench/backup" ;;
  esac
  config "backup-$b" "$target"
  export CERBERUS_STATE_DIR="$RUN/state-$b"
  log "part 2: cerberus init + backup to $b"
  if ! node "$BIN" init -c "$RUN/backup-$b.yaml" >"$RUN/init-$b.out" 2>"$RUN/init-$b.log"; then
    FAILED+=("cerberus init ($b) failed (see $RUN/init-$b.log)")
    continue
  fi
  sync
  if ! measure "backup-$b" node "$BIN" backup -c "$RUN/backup-$b.yaml" >"$RUN/backup-$b.out"; then
    FAILED+=("cerberus backup to $b exited $(exit_of "backup-$b") (see $RUN/backup-$b.log)")
  fi
  k="$(rss_kib "backup-$b")"
  s="$(wall_s "backup-$b")"
  st="$(du -sb "$stored" 2>/dev/null | cut -f1 || echo 0)"
  if [ "$k" -le "$LIMIT_KIB" ] && [ "$(exit_of "backup-$b")" = 0 ]; then r=pass; else r='**FAIL**'; fi
  [ "$k" -le "$LIMIT_KIB" ] || FAILED+=("cerberus backup to $b peaked at $(mb "$k") MB, over the $LIMIT_MB MB limit")
  BACKUP_ROWS+="| $b | $s | $(mbs "$SIZE_BYTES" "$s") | $(cpu_s "backup-$b") | $(awk -v b="${st:-0}" 'BEGIN { printf "%.1f", b / 1e6 }') | $(mb "$k") | $LIMIT_MB | $r |"$'\n'
  log "  $s s, peak RSS $(mb "$k") MB"
  # the next backup should not pay for this one's dirty pages, nor the disk fill up
  if [ "$KEEP" != 1 ]; then rm -rf "$stored" "$RUN/state-$b"; fi
done

# ---- report ------------------------------------------------------------------------------
DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/upload-$DATE.md"
mkdir -p "$ROOT/bench/results"
CPU_NAME="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
{
  echo "# cerberus upload benchmark, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) cores ($CPU_NAME), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, $(uname -sr)"
  echo "- node $(node --version), cerberus $(node -p 'require("./package.json").version'), $("$DAV_APACHE" -v 2>/dev/null | sed -n 's/^Server version: //p'), $(curl --version | head -1 | cut -d' ' -f1-2)"
  echo "- load average (1, 5, 15 min) before: $LOAD_BEFORE, after: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shows here)"
  echo "- corpus: $SIZE ($SIZE_BYTES bytes), $FILES files in $DIRS folders, seed \"$SEED\""
  if [ -f "$CORPUS.summary" ]; then sed -n 's/^  /  - /p' "$CORPUS.summary"; fi
  echo "- MB = 10^6 bytes; seconds are wall-clock time on a shared machine"
  if [ -n "$PUT_ROWS" ]; then
    echo
    echo "## One upload of $PUT_BYTES bytes to Apache mod_dav on 127.0.0.1"
    echo
    echo "The corpus as a tar, cut to at most $UPLOAD_SIZE; best of $ROUNDS, alternating order, \`sync\` before each."
    echo "curl: \`curl -T\` (one PUT), its \`time_total\`. cerberus: \`backend.put()\` of the built backend"
    echo "(MKCOL, PUT to a temp name with Content-Length, MOVE, PROPFIND size check), timed around the call."
    echo "CPU: user + system seconds of the client during the upload, and of Apache's processes."
    echo "The file is read in chunks of $(chunk "$BACKUP_HWM") (\`highWaterMark\`), as \`cerberus backup\` reads a volume; the what-if row reads $(chunk "$WHATIF_HWM") chunks."
    echo
    echo '| upload | best s | MB/s | runs (s) | client CPU s | Apache CPU s |'
    echo '| --- | ---: | ---: | --- | ---: | ---: |'
    printf '%s' "$PUT_ROWS"
    echo
    echo "cerberus / curl: **${RATIO:--}** (required: at least $MIN_RATIO): $PUT_RESULT"
  fi
  if [ -n "$BACKUP_ROWS" ]; then
    echo
    echo "## cerberus backup of the corpus to one target"
    echo
    echo "volumeSize $VOLUME_SIZE, compression none; under \`/usr/bin/time -v\`. CPU: user + system seconds."
    echo
    echo '| target | seconds | MB/s | CPU s | stored (MB) | peak RSS (MB) | limit (MB) | result |'
    echo '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
    printf '%s' "$BACKUP_ROWS"
  fi
  failed_list
} >"$OUT"
publish_report
