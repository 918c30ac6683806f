#!/usr/bin/env bash
# Side by side: cerberus (OpenPGP and Cryptomator repositories) and the usual tools (tar | gpg,
# restic, borg, duplicity, rclone crypt) on one seeded document corpus, on this machine and
# disk, with encryption on and compression off everywhere. Scenarios, each a whole process
# under /usr/bin/time -v, BENCH_RUNS runs each (the median counts, peak RSS is the highest):
#
#   1. first full backup to a local folder (a fresh repository each run)
#   2. a backup with nothing changed
#   3. a backup after 1 % of the files changed and 0.5 % were added (bench/mutate.mjs: the
#      same seeded change for every tool)
#   4. a full restore of the newest point, checked against the source (sizes and sha256)
#   5. a single-file restore from the newest point (a changed file of 1-20 MiB), checked byte
#      for byte
#   6. a first full backup to WebDAV: Apache httpd with mod_dav on 127.0.0.1 (borg: n/a)
#
# and the machine's floor: `openssl speed` (AES-256-CFB, AES-256-GCM, SHA-256) and
# `tar -c | cat` of the corpus. Writes a Markdown report to bench/results/<date>-<host>.md.
#
#   bash bench/compare.sh                                  # medium: 2 GiB, 40,000 files
#   BENCH_PRESET=small BENCH_RUNS=1 bash bench/compare.sh  # a quick run
#
# Environment:
#   BENCH_PRESET     small (200 MiB, 5,000 files), medium (2 GiB, 40,000) or large (10 GiB,
#                    100,000); default medium
#   BENCH_SEED       corpus and change seed (default cerberus-bench)
#   BENCH_RUNS       runs of each scenario (default 3)
#   BENCH_TOOLS      default: cerberus-openpgp cerberus-cryptomator tar-gpg restic borg duplicity rclone
#   BENCH_SCENARIOS  default: first nochange changed restore single webdav (first always runs)
#   BENCH_DIR        work folder, on disk (not tmpfs); default bench/.work/compare
#   BENCH_LIMIT_MB   peak RSS limit of every cerberus scenario, MB of 10^6 bytes (default 200)
#   BENCH_KEEP       1 keeps BENCH_DIR (corpus, repositories, logs; the corpus is then reused)
#
# Exits 1 when a cerberus scenario peaks at or over BENCH_LIMIT_MB, a restore differs from the
# source, or any tool fails. The other targets (the "Targets" table) are shown, not enforced.

# shellcheck disable=SC2016 # single quotes: scripts for bash -c and Markdown with backticks
set -euo pipefail
set -E
trap 'log "stopped at line $LINENO: $BASH_COMMAND"' ERR

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PRESET="${BENCH_PRESET:-medium}"
SEED="${BENCH_SEED:-cerberus-bench}"
RUNS="${BENCH_RUNS:-3}"
ALL_TOOLS='cerberus-openpgp cerberus-cryptomator tar-gpg restic borg duplicity rclone'
TOOLS="${BENCH_TOOLS:-$ALL_TOOLS}"
SCENARIOS="${BENCH_SCENARIOS:-first nochange changed restore single webdav}"
DIR="${BENCH_DIR:-$ROOT/bench/.work/compare}"
LIMIT_MB="${BENCH_LIMIT_MB:-200}"
KEEP="${BENCH_KEEP:-0}"

# shellcheck source=bench/lib.sh
. bench/lib.sh

T0="$(date +%s)"
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS=$RUNS is not a positive number"
PRESET_INFO="$(node bench/corpus.mjs --preset-info "$PRESET" 2>/dev/null)" || die "BENCH_PRESET=$PRESET: use small, medium or large"
read -r SIZE_BYTES _ <<<"$PRESET_INFO"
for t in $TOOLS; do [[ " $ALL_TOOLS " == *" $t "* ]] || die "BENCH_TOOLS: unknown tool $t (use: $ALL_TOOLS)"; done
for s in $SCENARIOS; do
  case "$s" in first | nochange | changed | restore | single | webdav) ;; *) die "BENCH_SCENARIOS: unknown scenario $s" ;; esac
done
has() { [[ " $2 " == *" $1 "* ]]; }
want() { has "$1" "$SCENARIOS"; }
uses() { has "$1" "$TOOLS"; }

# ---- tools -------------------------------------------------------------------------------
need_gnu_time
command -v openssl >/dev/null || apt_install openssl openssl
if uses tar-gpg || uses duplicity; then command -v gpg >/dev/null || apt_install gpg gnupg; fi
if uses restic; then command -v restic >/dev/null || apt_install restic restic; fi
if uses borg; then command -v borg >/dev/null || apt_install borg borgbackup; fi
if uses duplicity; then command -v duplicity >/dev/null || apt_install duplicity duplicity; fi
# restic reaches WebDAV through rclone
if uses rclone || { uses restic && want webdav; }; then command -v rclone >/dev/null || apt_install rclone rclone; fi
if want webdav; then need_dav; fi

# ---- work folder -------------------------------------------------------------------------
# everything in it is removed (at the start and on exit): only a new, empty folder or one this
# script made (it has the marker) will do
if [ -d "$DIR" ] && [ ! -f "$DIR/.cerberus-compare" ] && [ -n "$(ls -A "$DIR")" ]; then
  die "BENCH_DIR=$DIR holds other files; give a new or empty folder (everything in it is deleted)"
fi
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"
touch "$DIR/.cerberus-compare"
[ "$(stat -f -c %T "$DIR")" != tmpfs ] || die "BENCH_DIR=$DIR is on tmpfs (memory); use a folder on disk"
CORPUS="$DIR/corpus"
SIDE="$DIR/mutation"
LOGS="$DIR/logs"
MEASURE_DIR="$LOGS" # measure, rss_kib, wall_s, cpu_s, exit_of, mb, mbs: bench/lib.sh
MUTATED=0
FAILED=()
DATE="$(date -u +%Y-%m-%d)"
OUT="$ROOT/bench/results/$DATE-$(hostname -s).md"
KEPT_LOGS="${OUT%.md}-logs"
unset GNUPGHOME # the bench's own, set below; the cleanup stops its agent
cleanup() {
  set +e
  dav_stop
  if [ -n "${GNUPGHOME:-}" ] && [ -d "$GNUPGHOME" ]; then gpgconf --homedir "$GNUPGHOME" --kill all >/dev/null 2>&1; fi
  # a failed run's logs outlive the work folder
  if [ "${#FAILED[@]}" -gt 0 ] && [ "$KEEP" != 1 ] && [ -d "$LOGS" ]; then
    rm -rf "$KEPT_LOGS"
    cp -r "$LOGS" "$KEPT_LOGS"
  fi
  if [ "$KEEP" = 1 ]; then
    # a kept corpus is reused: put it back as generated
    if [ "$MUTATED" = 1 ]; then node "$ROOT/bench/mutate.mjs" revert "$CORPUS" "$SIDE"; fi
  else
    rm -rf "$DIR"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# what a kept run left: all but the corpus, put back as generated
if [ -d "$SIDE" ]; then log 'undoing the change a stopped run left in the corpus'; node bench/mutate.mjs revert "$CORPUS" "$SIDE"; fi
find "$DIR" -mindepth 1 -maxdepth 1 ! -name .cerberus-compare ! -name corpus ! -name 'corpus.*' ! -name 'listing-*.tsv' ! -name mutation.summary -exec rm -rf {} +

# the repositories of a tool's runs, a restore and a copy of the corpus side by side
avail="$(df -B1 --output=avail "$DIR" | tail -1)"
need=$(( SIZE_BYTES * (RUNS + 3) ))
[ -f "$DIR/corpus.done" ] || need=$(( need + SIZE_BYTES ))
[ "$avail" -ge "$need" ] || die "$DIR has $(( avail / 1000000000 )) GB free; this run needs about $(( need / 1000000000 )) GB"

# ---- build: a copy of dist/, so a rebuild during the run does not change what is measured ---
CERBERUS_VERSION="$(node -p 'require("./package.json").version')"
GIT_HEAD="$(git rev-parse --short HEAD 2>/dev/null || echo '?')"
GIT_DIRTY="$(git status --porcelain -- src 2>/dev/null | wc -l)"
CROOT="$DIR/cerberus"
CBIN="$CROOT/dist/bin/cerberus.js"
DIST_TIME='-'
if uses cerberus-openpgp || uses cerberus-cryptomator; then
  ensure_build
  mkdir -p "$CROOT"
  cp -a dist "$CROOT/dist"
  cp package.json "$CROOT/"
  ln -s "$ROOT/node_modules" "$CROOT/node_modules"
  DIST_TIME="$(date -u -r "$BIN" +'%Y-%m-%d %H:%M UTC')"
fi

# every tool's caches, configs and temp files in DIR, nothing in the real home
mkdir -p "$DIR/home" "$DIR/tmp" "$LOGS"
export HOME="$DIR/home" TMPDIR="$DIR/tmp" TZ=UTC LC_ALL=C.UTF-8
unset XDG_CONFIG_HOME XDG_CACHE_HOME XDG_STATE_HOME XDG_DATA_HOME
unset CERBERUS_KEY_PASSPHRASE_FILE CERBERUS_PRIVATE_KEY_FILE CERBERUS_DEBUG RESTIC_REPOSITORY RESTIC_PASSWORD BORG_REPO GNUPGHOME

# ---- corpus ------------------------------------------------------------------------------
if [ -d "$CORPUS" ] && [ "$(cat "$DIR/corpus.done" 2>/dev/null)" = "$PRESET $SEED" ]; then
  log "reusing the $PRESET corpus in $CORPUS"
else
  rm -f "$DIR/corpus.done" "$DIR"/listing-*
  log "generating the $PRESET corpus (seed $SEED) in $CORPUS"
  node bench/corpus.mjs "$CORPUS" --preset "$PRESET" --seed "$SEED" | tee "$DIR/corpus.summary" >&2
  echo "$PRESET $SEED" >"$DIR/corpus.done"
fi
FILES="$(find "$CORPUS" -type f | wc -l)"
DIRS="$(find "$CORPUS" -mindepth 1 -type d | wc -l)"

# the source as it is before and after the change; the change is tried (and undone) once here
# type, size (not of folders: ext4 never shrinks them), modification time and path of every entry
stat_listing() { (cd "$1" && find . -printf '%y %s %T@ %P\n' | awk '$1 == "d" { $2 = "-" } 1' | LC_ALL=C sort); }
if [ ! -f "$DIR/listing-changed.tsv" ]; then
  log 'hashing the corpus, before and after the change'
  node bench/treesum.mjs "$CORPUS" >"$DIR/listing-orig.tsv"
  node bench/mutate.mjs apply "$CORPUS" "$SIDE" "$SEED" >"$DIR/mutation.summary"
  MUTATED=1
  node bench/treesum.mjs "$CORPUS" >"$DIR/listing-changed.tsv"
  node bench/mutate.mjs revert "$CORPUS" "$SIDE"
  MUTATED=0
  node bench/treesum.mjs "$CORPUS" | cmp -s - "$DIR/listing-orig.tsv" || die 'bench/mutate.mjs revert did not restore the corpus'
fi
SINGLE="$(sed -n 's/^single //p' "$DIR/mutation.summary")"
[ -n "$SINGLE" ] || die 'bench/mutate.mjs named no file for the single-file restore'
ORIG_LISTING="$(stat_listing "$CORPUS")"
contents() { awk -F'\t' -v OFS='\t' '{ print $1, $2, $3, $5 }' "$1"; }
mtimes() { awk -F'\t' -v OFS='\t' '$1 == "f" { print $4, $5 }' "$1"; }
sum_bytes() { awk -F'\t' '$1 == "f" { s += $2 } END { printf "%d", s }' "$1"; }
ORIG_BYTES="$(sum_bytes "$DIR/listing-orig.tsv")"
CHANGED_BYTES="$(sum_bytes "$DIR/listing-changed.tsv")"
CHANGED_FILES="$(awk -F'\t' '$1 == "f"' "$DIR/listing-changed.tsv" | wc -l)"
SINGLE_BYTES="$(awk -F'\t' -v p="$SINGLE" '$1 == "f" && $5 == p { print $2 }' "$DIR/listing-changed.tsv")"

mutate() { # mutate apply|revert: the seeded change, the same for every tool
  if [ "$1" = apply ]; then
    node bench/mutate.mjs apply "$CORPUS" "$SIDE" "$SEED" >/dev/null
    MUTATED=1
  else
    node bench/mutate.mjs revert "$CORPUS" "$SIDE"
    MUTATED=0
    [ "$(stat_listing "$CORPUS")" = "$ORIG_LISTING" ] || die 'the corpus differs from before the change after undoing it'
  fi
}
# every tool starts with the corpus read once just before (in the page cache, as it was
# written a moment ago for the first one)
warm() { tar -C "$CORPUS" -cf - . | cat >/dev/null; }

# ---- the floor -----------------------------------------------------------------------------
log 'floor: openssl speed, tar -c | cat'
ossl() { # MB/s of one core on 16 KiB blocks
  openssl speed -seconds 3 -bytes 16384 -evp "$1" 2>/dev/null |
    awk -v a="$1" 'tolower($1) == tolower(a) { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }'
}
FLOOR_CFB="$(ossl aes-256-cfb)"
FLOOR_GCM="$(ossl aes-256-gcm)"
FLOOR_SHA="$(ossl sha256)"
TAR_RUNS=()
for i in $(seq "$RUNS"); do
  measure "floor-tar.$i" sh -c 'tar -C "$1" -cf - . | cat >/dev/null' _ "$CORPUS"
  TAR_RUNS+=("$(wall_s "floor-tar.$i")")
done
TAR_S="$(echo "${TAR_RUNS[*]}" | median)"

# ---- secrets and keys ----------------------------------------------------------------------
# secrets reach the tools through the environment or files, never argv
export CERBERUS_KEY_PASSPHRASE='bench passphrase, not a secret'
export VAULT_PASSWORD='bench vault password, not a secret'
export BORG_PASSPHRASE='bench borg passphrase, not a secret'
export PASSPHRASE='' # duplicity: the bench's gpg key has no passphrase
mkdir -p "$DIR/secrets"
chmod 700 "$DIR/secrets"
printf %s 'bench restic password, not a secret' >"$DIR/secrets/restic"
export RESTIC_PASSWORD_FILE="$DIR/secrets/restic"
if uses rclone || { uses restic && want webdav; }; then
  export RCLONE_CONFIG="$DIR/home/rclone.conf"
  : >"$RCLONE_CONFIG"
  export RCLONE_CONFIG_BENCHCRYPT_TYPE=crypt
  RCLONE_CONFIG_BENCHCRYPT_PASSWORD="$(printf '%s\n' 'bench rclone password, not a secret' | rclone obscure -)"
  export RCLONE_CONFIG_BENCHCRYPT_PASSWORD
fi
if uses cerberus-openpgp; then
  node "$CBIN" keygen --out "$DIR/keys" --email bench@example.org >"$LOGS/keygen.out"
fi
if uses tar-gpg || uses duplicity; then
  export GNUPGHOME="$DIR/gnupg"
  mkdir -m 700 "$GNUPGHOME"
  # Ed25519 with a Cv25519 encryption subkey, like cerberus keygen's; no passphrase
  gpg --batch --quiet --passphrase '' --pinentry-mode loopback \
    --quick-gen-key 'cerberus bench <bench@example.org>' future-default default never 2>"$LOGS/gpg-keygen.log"
  FPR="$(gpg --batch --list-keys --with-colons 2>/dev/null | awk -F: '$1 == "fpr" { print $10; exit }')"
  [ -n "$FPR" ] || die "gpg made no key (see $LOGS/gpg-keygen.log)"
fi

# ---- WebDAV --------------------------------------------------------------------------------
if want webdav; then
  DAV_USER=bench
  DAV_PASSWORD="$(random_secret)"
  export DAV_USER DAV_PASSWORD
  export FTP_PASSWORD="$DAV_PASSWORD" # duplicity's webdav backend reads it
  dav_start "$DIR/apache" "$DAV_USER" "$DAV_PASSWORD"
  CURLRC="$DIR/secrets/curlrc"
  (umask 077 && printf 'user = "%s:%s"\n' "$DAV_USER" "$DAV_PASSWORD" >"$CURLRC")
  [ "$(curl -sS -K "$CURLRC" -o /dev/null -w '%{http_code}' -X MKCOL "$DAV_URL/bench/")" = 201 ] || die "MKCOL $DAV_URL/bench/ failed"
  if uses rclone || uses restic; then
    export RCLONE_CONFIG_BENCHDAV_TYPE=webdav RCLONE_CONFIG_BENCHDAV_URL="$DAV_URL" RCLONE_CONFIG_BENCHDAV_VENDOR=other RCLONE_CONFIG_BENCHDAV_USER="$DAV_USER"
    RCLONE_CONFIG_BENCHDAV_PASS="$(printf '%s\n' "$DAV_PASSWORD" | rclone obscure -)"
    export RCLONE_CONFIG_BENCHDAV_PASS
  fi
fi

# ---- the tools -----------------------------------------------------------------------------
# cmd TOOL ACTION RUN-DIR [PHASE]: sets CMD, the command line of one step. ACTION: init, backup
# (PHASE first, nochange or changed), restore (into $RESTORE), single (into $ONE), dav-init,
# dav-backup (RUN-DIR is then the run's local state; the data goes to $DAV_URL/bench/NAME).
# ROOT_OF / ONE_OF: where a restore puts the corpus's root / the single file.
cerberus_config() { # cerberus_config RUN-DIR KIND TARGET-YAML
  local enc
  if [ "$2" = openpgp ]; then enc="{ kind: openpgp, recipients: [\"$DIR/keys/cerberus.pub.asc\"] }"; else enc='{ kind: cryptomator, password: "${VAULT_PASSWORD}" }'; fi
  cat >"$1/cerberus.yaml" <<EOF
jobs:
  bench:
    source: { paths: ["$CORPUS"] }
    encryption: $enc
    targets:
      - $3
    timezone: UTC
EOF
}
cmd() {
  local tool="$1" action="$2" r="$3" phase="${4:-}" name
  name="$tool-$(basename "$r")"
  case "$tool:$action" in
    cerberus-*:init)
      cerberus_config "$r" "${tool#cerberus-}" "{ name: local, type: local, path: \"$r/repo\" }"
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" init -c "$r/cerberus.yaml") ;;
    cerberus-*:dav-init)
      # shellcheck disable=SC2016 # ${DAV_USER}, ${DAV_PASSWORD}: cerberus reads them from the environment
      cerberus_config "$r" "${tool#cerberus-}" "{ name: dav, type: webdav, url: \"$DAV_URL\", username: \"\${DAV_USER}\", password: \"\${DAV_PASSWORD}\", path: \"bench/$name\" }"
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" init -c "$r/cerberus.yaml") ;;
    cerberus-*:backup | cerberus-*:dav-backup)
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" backup -c "$r/cerberus.yaml" --json) ;;
    cerberus-openpgp:restore)
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" restore -c "$r/cerberus.yaml" --at latest --to "$RESTORE" --key "$DIR/keys/cerberus.key.asc")
      ROOT_OF="$RESTORE" ;;
    cerberus-openpgp:single)
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" restore -c "$r/cerberus.yaml" --at latest --path "$SINGLE" --to "$ONE" --key "$DIR/keys/cerberus.key.asc")
      ONE_OF="$ONE/$SINGLE" ;;
    cerberus-cryptomator:restore)
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" restore -c "$r/cerberus.yaml" --at latest --to "$RESTORE")
      ROOT_OF="$RESTORE" ;;
    cerberus-cryptomator:single)
      CMD=(env CERBERUS_STATE_DIR="$r/state" node "$CBIN" restore -c "$r/cerberus.yaml" --at latest --path "$SINGLE" --to "$ONE")
      ONE_OF="$ONE/$SINGLE" ;;

    # a full archive each time: tar | gpg has no incremental form; the newest archive replaces
    # the one before once it is written
    tar-gpg:init) CMD=(mkdir -p "$r/repo") ;;
    tar-gpg:backup)
      CMD=(bash -c 'set -o pipefail; tar -C "$1" -cf - . | gpg --batch --quiet --trust-model always -z 0 -r "$2" -e -o "$3"' _ "$CORPUS" "$FPR" "$r/repo/$phase.tar.gpg") ;;
    tar-gpg:restore)
      mkdir -p "$RESTORE"
      CMD=(bash -c 'set -o pipefail; gpg --batch --quiet -d "$1" | tar -C "$2" -xf -' _ "$r/repo/$(cat "$r/newest").tar.gpg" "$RESTORE")
      ROOT_OF="$RESTORE" ;;
    tar-gpg:single)
      CMD=(bash -c 'set -o pipefail; gpg --batch --quiet -d "$1" | tar -C "$2" -xf - "./$3"' _ "$r/repo/$(cat "$r/newest").tar.gpg" "$ONE" "$SINGLE")
      ONE_OF="$ONE/$SINGLE" ;;
    tar-gpg:dav-init) CMD=(curl -sS -f -K "$CURLRC" -o /dev/null -X MKCOL "$DAV_URL/bench/$name/") ;;
    tar-gpg:dav-backup)
      # curl -T - sends the stream as it comes (chunked), one PUT
      CMD=(bash -c 'set -o pipefail; tar -C "$1" -cf - . | gpg --batch --quiet --trust-model always -z 0 -r "$2" -e | curl -sS -f -K "$3" -T - -o /dev/null "$4"' _ "$CORPUS" "$FPR" "$CURLRC" "$DAV_URL/bench/$name/corpus.tar.gpg") ;;

    restic:init) CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "$r/repo" init --repository-version 2) ;;
    restic:backup) CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "$r/repo" --compression off backup "$CORPUS") ;;
    restic:restore)
      CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "$r/repo" restore latest --target "$RESTORE")
      ROOT_OF="$RESTORE$CORPUS" ;;
    restic:single)
      CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "$r/repo" restore latest --target "$ONE" --include "$CORPUS/$SINGLE")
      ONE_OF="$ONE$CORPUS/$SINGLE" ;;
    restic:dav-init) CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "rclone:benchdav:bench/$name" init --repository-version 2) ;;
    restic:dav-backup) CMD=(env RESTIC_CACHE_DIR="$r/cache" restic -r "rclone:benchdav:bench/$name" --compression off backup "$CORPUS") ;;

    borg:init) CMD=(env BORG_BASE_DIR="$r/base" borg init -e repokey "$r/repo") ;;
    borg:backup) CMD=(env BORG_BASE_DIR="$r/base" borg create --compression none "$r/repo::$phase" "$CORPUS") ;;
    borg:restore)
      mkdir -p "$RESTORE"
      CMD=(env BORG_BASE_DIR="$r/base" bash -c 'cd "$1" && exec borg extract "$2"' _ "$RESTORE" "$r/repo::$(cat "$r/newest")")
      ROOT_OF="$RESTORE$CORPUS" ;;
    borg:single)
      CMD=(env BORG_BASE_DIR="$r/base" bash -c 'cd "$1" && exec borg extract "$2" "$3"' _ "$ONE" "$r/repo::$(cat "$r/newest")" "${CORPUS#/}/$SINGLE")
      ONE_OF="$ONE$CORPUS/$SINGLE" ;;

    duplicity:init) CMD=(mkdir -p "$r/repo") ;;
    duplicity:backup | duplicity:dav-backup)
      local kind=incremental url="file://$r/repo"
      if [ "$phase" = first ]; then kind=full; fi
      if [ "$action" = dav-backup ]; then url="webdav://$DAV_USER@127.0.0.1:$DAV_PORT/dav/bench/$name"; fi
      CMD=(duplicity "$kind" --encrypt-key "$FPR" --gpg-options '--compress-level 0' --archive-dir "$r/cache" --name bench "$CORPUS" "$url") ;;
    duplicity:restore)
      CMD=(duplicity restore --archive-dir "$r/cache" --name bench "file://$r/repo" "$RESTORE")
      ROOT_OF="$RESTORE" ;;
    duplicity:single)
      CMD=(duplicity restore --archive-dir "$r/cache" --name bench --file-to-restore "$SINGLE" "file://$r/repo" "$ONE/file")
      ONE_OF="$ONE/file" ;;
    duplicity:dav-init) CMD=(true) ;;

    rclone:init) CMD=(mkdir -p "$r/repo") ;;
    rclone:backup) CMD=(env RCLONE_CONFIG_BENCHCRYPT_REMOTE="$r/repo" rclone sync "$CORPUS" benchcrypt:) ;;
    rclone:restore)
      CMD=(env RCLONE_CONFIG_BENCHCRYPT_REMOTE="$r/repo" rclone copy benchcrypt: "$RESTORE")
      ROOT_OF="$RESTORE" ;;
    rclone:single)
      CMD=(env RCLONE_CONFIG_BENCHCRYPT_REMOTE="$r/repo" rclone copyto "benchcrypt:$SINGLE" "$ONE/file")
      ONE_OF="$ONE/file" ;;
    rclone:dav-init) CMD=(true) ;;
    rclone:dav-backup) CMD=(env RCLONE_CONFIG_BENCHCRYPT_REMOTE="benchdav:bench/$name" rclone sync "$CORPUS" benchcrypt:) ;;

    *) return 1 ;; # not supported (borg has no WebDAV)
  esac
}

# ---- running and recording -----------------------------------------------------------------
declare -A WALL=() CPUS=() RSS=() STORED=() NOTE=() LEVELS=() MTIMES=()
# timed SCENARIO TOOL RUN: CMD under GNU time; records its wall, CPU and peak RSS
timed() {
  local sc="$1" tool="$2" i="$3" name="$2.$1.$3" k="$1|$2"
  log "$tool: $sc, run $i/$RUNS"
  if measure "$name" "${CMD[@]}" >"$LOGS/$name.out"; then
    WALL[$k]+=" $(wall_s "$name")"
    CPUS[$k]+=" $(cpu_s "$name")"
    RSS[$k]+=" $(rss_kib "$name")"
    log "  $(wall_s "$name") s, CPU $(cpu_s "$name") s, peak RSS $(mb "$(rss_kib "$name")") MB"
    return 0
  fi
  FAILED+=("$tool: $sc, run $i, exited $(exit_of "$name" || echo '?') (see logs/$name.log)")
  NOTE[$k]=failed
  log "  failed: $(tail -3 "$LOGS/$name.log" | tr '\n' ' ')"
  return 1
}
untimed() { # untimed LOG-NAME: CMD, its output to logs
  "${CMD[@]}" >"$LOGS/$1.out" 2>"$LOGS/$1.log" || { FAILED+=("$1 failed (see logs/$1.log)"); return 1; }
}
bytes_of() { du -sb "$1" 2>/dev/null | cut -f1 || echo 0; }
# cerberus's own account of a backup: level, parent, files stored
cerberus_level() {
  node -e '
    const j = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
    const t = j.targets[0];
    console.log(`${t.level}${t.parent ? ` (parent ${t.parent})` : ""}, ${t.stats.storedFiles} files stored`);
  ' "$1" 2>/dev/null || echo '?'
}
check_restore() { # check_restore TOOL RUN ROOT: the restored tree against the source
  local tool="$1" i="$2" got="$LOGS/$1.restore.$2.tsv" k="restore|$1"
  if [ ! -d "$3" ]; then FAILED+=("$tool: restore $i wrote nothing at $3"); NOTE[$k]=failed; return; fi
  node bench/treesum.mjs "$3" >"$got"
  if ! diff <(contents "$EXPECTED") <(contents "$got") >"$LOGS/$tool.restore.$i.diff"; then
    FAILED+=("$tool: restore $i differs from the source (see logs/$tool.restore.$i.diff)")
    NOTE[$k]='**differs**'
  fi
  if diff -q <(mtimes "$EXPECTED") <(mtimes "$got") >/dev/null; then MTIMES[$tool]=yes; else MTIMES[$tool]=no; fi
}

# backup_again SCENARIO LABEL: scenarios 2 and 3, one more backup into each run's repository
# (uses bench_tool's tool and base)
backup_again() {
  local s="$1" label="$2" i r before
  for i in $(seq "$RUNS"); do
    r="$base/$i"
    before="$(bytes_of "$r/repo")"
    cmd "$tool" backup "$r" "$s"
    sync
    timed "$s" "$tool" "$i" || break
    if [ "$tool" = tar-gpg ]; then
      NOTE["$s|$tool"]='a full re-run'
      rm -f "$r/repo/$(cat "$r/newest").tar.gpg"
    fi
    echo "$s" >"$r/newest"
    STORED["$s|$tool"]+=" $(( $(bytes_of "$r/repo") - before ))"
    if [ "$i" = 1 ] && [[ "$tool" == cerberus-* ]]; then LEVELS[$tool]+="; $label: $(cerberus_level "$LOGS/$tool.$s.1.out")"; fi
  done
}

bench_tool() {
  local tool="$1" base="$DIR/t/$1" i r
  rm -rf "$base"
  mkdir -p "$base"
  warm
  # 1. first full backup: a fresh repository each run; each run's repository is kept for 2-5
  for i in $(seq "$RUNS"); do
    r="$base/$i"
    mkdir -p "$r"
    cmd "$tool" init "$r"
    untimed "$tool.init.$i" || return 0
    cmd "$tool" backup "$r" first
    sync
    timed first "$tool" "$i" || return 0
    echo first >"$r/newest"
    STORED["first|$tool"]+=" $(bytes_of "$r/repo")"
    if [ "$i" = 1 ] && [[ "$tool" == cerberus-* ]]; then LEVELS[$tool]="first: $(cerberus_level "$LOGS/$tool.first.1.out")"; fi
  done
  # 2. nothing changed
  if want nochange; then backup_again nochange 'no change'; fi
  # 3. 1 % changed, 0.5 % added
  EXPECTED="$DIR/listing-orig.tsv"
  if want changed; then
    mutate apply
    EXPECTED="$DIR/listing-changed.tsv"
    backup_again changed changed
  fi
  # 4. full restore of the newest point
  if want restore; then
    RESTORE="$DIR/restore"
    for i in $(seq "$RUNS"); do
      rm -rf "$RESTORE"
      cmd "$tool" restore "$base/$i"
      sync
      timed restore "$tool" "$i" || break
      check_restore "$tool" "$i" "$ROOT_OF"
    done
    rm -rf "$RESTORE"
  fi
  # 5. one file from the newest point
  if want single; then
    ONE="$DIR/one"
    for i in $(seq "$RUNS"); do
      rm -rf "$ONE"
      mkdir -p "$ONE"
      cmd "$tool" single "$base/$i"
      sync
      timed single "$tool" "$i" || break
      if ! cmp -s "$CORPUS/$SINGLE" "$ONE_OF"; then
        FAILED+=("$tool: single-file restore $i does not equal the source ($ONE_OF)")
        NOTE["single|$tool"]='**differs**'
      fi
    done
    rm -rf "$ONE"
  fi
  if [ "$MUTATED" = 1 ]; then mutate revert; fi
  if [ "$KEEP" != 1 ]; then rm -rf "$base"; fi
  # 6. first full backup to WebDAV
  if want webdav; then
    if [ "$tool" = borg ]; then NOTE["webdav|$tool"]='n/a (no WebDAV)'; return 0; fi
    warm
    for i in $(seq "$RUNS"); do
      r="$base/dav-$i"
      mkdir -p "$r"
      cmd "$tool" dav-init "$r"
      untimed "$tool.dav-init.$i" || break
      cmd "$tool" dav-backup "$r" first
      sync
      timed webdav "$tool" "$i" || break
      STORED["webdav|$tool"]+=" $(bytes_of "$DIR/apache/data/bench/$tool-dav-$i")"
      if [ "$KEEP" != 1 ]; then rm -rf "$DIR/apache/data/bench/$tool-dav-$i" "$r"; fi
    done
  fi
}

for tool in $TOOLS; do
  log "---- $tool"
  bench_tool "$tool"
done
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
ELAPSED=$(( $(date +%s) - T0 ))

# ---- report --------------------------------------------------------------------------------
med() { if [ -n "${WALL[$1]:-}" ]; then echo "${WALL[$1]}" | median; fi; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b == 0) print "-"; else printf "%.2f", a / b }'; }
fmt_mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
label() {
  case "$1" in
    tar-gpg) echo 'tar \| gpg' ;;
    *) echo "$1" ;;
  esac
}
scenario_table() { # scenario_table SCENARIO BYTES-FOR-MB/s|- STORED-HEADER|-
  local sc="$1" bytes="$2" stored_h="$3" tool k m base head='| tool | median s |' line='| --- | ---: |' row
  base="$(med "$sc|cerberus-openpgp")"
  if [ "$bytes" != - ]; then head+=' MB/s |'; line+=' ---: |'; fi
  head+=' CPU s | peak RSS (MB) |'
  line+=' ---: | ---: |'
  if [ "$stored_h" != - ]; then head+=" $stored_h |"; line+=' ---: |'; fi
  echo "$head runs (s) | ÷ cerberus-openpgp |"
  echo "$line --- | ---: |"
  for tool in $TOOLS; do
    k="$sc|$tool"
    if [ -z "${WALL[$k]:-}" ]; then
      row="| $(label "$tool") | ${NOTE[$k]:-not run} |"
      if [ "$bytes" != - ]; then row+=' |'; fi
      row+=' | |'
      if [ "$stored_h" != - ]; then row+=' |'; fi
      echo "$row | |"
      continue
    fi
    m="$(med "$k")"
    row="| $(label "$tool")${NOTE[$k]:+ (${NOTE[$k]})} | $m |"
    if [ "$bytes" != - ]; then row+=" $(mbs "$bytes" "$m") |"; fi
    row+=" $(echo "${CPUS[$k]}" | median) | $(mb "$(echo "${RSS[$k]}" | max_of)") |"
    if [ "$stored_h" != - ]; then
      if [ -n "${STORED[$k]:-}" ]; then row+=" $(fmt_mb "$(echo "${STORED[$k]}" | median)") |"; else row+=' - |'; fi
    fi
    echo "$row ${WALL[$k]# } | $(ratio "$m" "$base") |"
  done
}
# target LABEL VALUE LIMIT UNIT: "pass", or the gap; VALUE and LIMIT are seconds (lower is better)
target() {
  local name="$1" v="$2" lim="$3" what="$4"
  if [ -z "$v" ] || [ -z "$lim" ]; then echo "| $name | - | not measured |"; return; fi
  # names through the environment: awk -v would read the backslash of "\|"
  N="$name" W="$what" awk -v v="$v" -v l="$lim" 'BEGIN {
    if (v <= l) r = "pass"; else r = sprintf("gap: %.2f× (%.2f s over)", v / l, v - l)
    printf "| %s | %.2f s against %s %.2f s | %s |\n", ENVIRON["N"], v, ENVIRON["W"], l, r
  }'
}
scaled() { awk -v a="$1" -v f="$2" 'BEGIN { if (a == "") print ""; else printf "%.2f", a * f }'; }

RSS_ROWS=''
for tool in cerberus-openpgp cerberus-cryptomator; do
  uses "$tool" || continue
  for sc in first nochange changed restore single webdav; do
    k="$sc|$tool"
    [ -n "${RSS[$k]:-}" ] || continue
    peak="$(echo "${RSS[$k]}" | max_of)"
    if awk -v k="$peak" -v l="$LIMIT_MB" 'BEGIN { exit !(k * 1024 >= l * 1e6) }'; then
      FAILED+=("$tool: $sc peaked at $(mb "$peak") MB, not under the $LIMIT_MB MB limit")
      RSS_ROWS+="${RSS_ROWS:+, }$tool $sc $(mb "$peak") MB"
    fi
  done
done
MAX_CERB_RSS="$(for tool in cerberus-openpgp cerberus-cryptomator; do for sc in first nochange changed restore single webdav; do echo "${RSS[$sc|$tool]:-}"; done; done | tr '\n' ' ' | max_of || true)"
case "$PRESET" in
  medium) NOCHANGE_LIMIT=3 NOCHANGE_NOTE='3 s (40,000 files)' ;;
  large) NOCHANGE_LIMIT=7.5 NOCHANGE_NOTE='7.5 s (3 s for 40,000 files, scaled to 100,000)' ;;
  *) NOCHANGE_LIMIT='' NOCHANGE_NOTE="3 s is for the medium preset's 40,000 files; shown only" ;;
esac

mkdir -p "$ROOT/bench/results"
CPU_NAME="$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"
ver() { "$@" 2>/dev/null | head -1 || echo '-'; }
{
  echo "# cerberus beside other backup tools, $(date -u +'%Y-%m-%d %H:%M UTC')"
  echo
  echo "\`BENCH_PRESET=$PRESET BENCH_RUNS=$RUNS bash bench/compare.sh\`; the run took $(( ELAPSED / 60 )) min $(( ELAPSED % 60 )) s."
  echo
  echo '## Machine'
  echo
  echo "- $(nproc) cores ($CPU_NAME), $(free -m | awk '/^Mem:/ { print $2 }') MiB RAM, $(uname -sr); $(df --output=fstype "$DIR" | tail -1) file system at $DIR"
  echo "- load average (1, 5, 15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER (other work on the machine shows here)"
  echo "- cerberus $CERBERUS_VERSION (git $GIT_HEAD$([ "$GIT_DIRTY" -gt 0 ] && echo ", $GIT_DIRTY uncommitted changes in src/"), dist/ built $DIST_TIME), node $(node --version)"
  echo "- $(ver gpg --version), $(ver restic version | cut -d' ' -f1-2), $(ver borg --version), $(ver duplicity --version), $(ver rclone version | cut -d' ' -f1-2), $(ver openssl version | cut -d' ' -f1-2), $(ver tar --version)$(want webdav && echo ", $("$DAV_APACHE" -v 2>/dev/null | sed -n 's/^Server version: //p'), $(ver curl --version | cut -d' ' -f1-2)")"
  echo
  echo '## Corpus'
  echo
  echo "Preset \`$PRESET\`, seed \"$SEED\": $FILES files in $DIRS folders, $ORIG_BYTES bytes (\`node bench/corpus.mjs DIR --preset $PRESET\`)."
  echo
  sed -n 's/^  /- /p' "$DIR/corpus.summary" 2>/dev/null || true
  echo "- the change before scenario 3 (\`bench/mutate.mjs\`, the same for every tool, undone after each): $(sed -n 's/^changed /changed /p' "$DIR/mutation.summary"); added $(sed -n 's/^added //p' "$DIR/mutation.summary"); afterwards $CHANGED_FILES files, $CHANGED_BYTES bytes"
  echo "- single-file restore: \`$SINGLE\` ($SINGLE_BYTES bytes, one of the changed files)"
  echo
  echo '## Floor (this machine, one core)'
  echo
  echo '| what | MB/s |'
  echo '| --- | ---: |'
  echo "| \`openssl speed -evp aes-256-cfb\` (OpenPGP's cipher mode), 16 KiB blocks | ${FLOOR_CFB:--} |"
  echo "| \`openssl speed -evp aes-256-gcm\` (Cryptomator's), 16 KiB blocks | ${FLOOR_GCM:--} |"
  echo "| \`openssl speed -evp sha256\`, 16 KiB blocks | ${FLOOR_SHA:--} |"
  echo "| \`tar -c \| cat >/dev/null\` of the corpus, from the page cache (median of $RUNS: ${TAR_RUNS[*]} s) | $(mbs "$ORIG_BYTES" "$TAR_S") |"
  echo
  echo '## Method'
  echo
  echo "- every step is one process (or pipeline) under \`/usr/bin/time -v\`: wall clock, CPU (user + system, children included), peak RSS (\"Maximum resident set size\": the largest single process, for a pipeline its largest member). $RUNS run(s) of each; seconds and CPU are medians, peak RSS the highest run. MB = 10^6 bytes; MB/s = source bytes / median wall time."
  echo "- each tool's repositories, caches and state are in their own folders under the work folder; scenario 1 makes a new repository in each run, and scenarios 2-5 use those repositories (run i on repository i). \`sync\` before every timed step, so no writeback of the step before lands in it."
  echo "- page cache: the corpus is read once (\`tar -c | cat\`) before each tool starts, so every tool begins with the corpus in memory (the machine has far more RAM than the corpus); restores read repositories that were just written. No caches are dropped (the machine is shared)."
  echo "- restores are checked: the restored tree's listing of type, size and sha256 of every path must equal the source's, else the bench fails; the single file must equal the source byte for byte."
  echo "- ÷ cerberus-openpgp: this tool's median wall time divided by cerberus-openpgp's (above 1: cerberus is faster)."
  echo
  echo 'Settings:'
  echo
  echo '- **cerberus-openpgp**: `cerberus init`, `backup`, `restore --at latest --to DIR --key ...` and `restore --path FILE`; one local target, `timezone: UTC`, defaults otherwise (volumeSize 512MiB, no compression; WebDAV: `verify: size`, concurrency 4); a Cv25519 key from `cerberus keygen`, its passphrase in `CERBERUS_KEY_PASSPHRASE`. The second and third backup of a day are *daily* generations, differential against the first (the quarterly).'
  echo '- **cerberus-cryptomator**: the same with `encryption: { kind: cryptomator, password: ${VAULT_PASSWORD} }`: every generation a whole vault, made by hard links from the one before plus what changed.'
  echo '- **tar | gpg**: `tar -C SRC -cf - . | gpg -e -z 0 -r KEY -o FILE` (GnuPG, an Ed25519/Cv25519 key made for the bench, no compression); no incremental form, so the no-change and changed rows are full re-runs (a new archive replacing the old); restore `gpg -d | tar -x`, one file `gpg -d | tar -x ./PATH` (reads the whole archive). WebDAV: the same piped into `curl -T -` (one chunked PUT).'
  echo '- **restic**: `init --repository-version 2`, `--compression off`, password file in `RESTIC_PASSWORD_FILE`, cache in the run folder; `restore latest --target`, one file with `--include`. WebDAV: `-r rclone:REMOTE:` with an rclone webdav remote (rclone runs as restic'"'"'s child, its CPU counts).'
  echo '- **borg**: `init -e repokey` (AES-256-CTR + HMAC-SHA256), `BORG_PASSPHRASE`, `create --compression none`, `extract`, one file `extract ARCHIVE PATH`; base dir (cache, keys) in the run folder. No WebDAV.'
  echo '- **duplicity**: `full` then `incremental`, `--encrypt-key` (the gpg key above), `--gpg-options "--compress-level 0"`, volumes of 200 MB (default), archive dir in the run folder; `restore`, one file `--file-to-restore`. WebDAV: `webdav://`, password in `FTP_PASSWORD`.'
  echo '- **rclone**: a crypt remote (standard file name encryption, the password `rclone obscure`d, all through `RCLONE_CONFIG_*` variables) over a local folder or a webdav remote; `rclone sync` to back up, `rclone copy` / `copyto` to restore; default transfers (4) and checkers (8). A mirror: it keeps no older versions.'
  echo
  echo '## Results'
  echo
  echo "### 1. First full backup to a local folder ($(fmt_mb "$ORIG_BYTES") MB, $FILES files)"
  echo
  scenario_table first "$ORIG_BYTES" 'stored (MB)'
  echo
  echo '### 2. Backup again, nothing changed'
  echo
  scenario_table nochange - '-'
  echo
  echo '### 3. Backup after 1 % of the files changed and 0.5 % were added'
  echo
  scenario_table changed - 'added to the repository (MB)'
  echo
  echo "### 4. Full restore of the newest point ($(fmt_mb "$CHANGED_BYTES") MB)"
  echo
  scenario_table restore "$CHANGED_BYTES" '-'
  echo
  if [ "${#MTIMES[@]}" -gt 0 ]; then
    m=''
    for tool in $TOOLS; do if [ -n "${MTIMES[$tool]:-}" ]; then m+="${m:+, }$(label "$tool") ${MTIMES[$tool]}"; fi; done
    echo "Files' modification times restored as in the source (shown, not checked): $m."
    echo
  fi
  echo "### 5. Restore of one file ($SINGLE_BYTES bytes) from the newest point"
  echo
  scenario_table single - '-'
  echo
  echo "### 6. First full backup to WebDAV (Apache mod_dav on 127.0.0.1, Basic auth)"
  echo
  echo "Apache runs on the same 2 cores; its CPU is not in the CPU column."
  echo
  scenario_table webdav "$ORIG_BYTES" 'stored (MB)'
  echo
  for tool in cerberus-openpgp cerberus-cryptomator; do
    if [ -n "${LEVELS[$tool]:-}" ]; then echo "- $tool generations (run 1): ${LEVELS[$tool]}"; fi
  done
  echo
  echo '## Targets'
  echo
  echo 'Shown, not enforced, except peak RSS (the run fails when a cerberus scenario reaches the limit).'
  echo
  echo '| target | measured | result |'
  echo '| --- | --- | --- |'
  target 'first full backup, cerberus-openpgp ≤ restic' "$(med 'first|cerberus-openpgp')" "$(med 'first|restic')" restic
  target 'first full backup, cerberus-openpgp ≤ 1.25 × tar \| gpg' "$(med 'first|cerberus-openpgp')" "$(scaled "$(med 'first|tar-gpg')" 1.25)" '1.25 × tar \| gpg'
  target 'no-change run, cerberus-openpgp ≤ restic' "$(med 'nochange|cerberus-openpgp')" "$(med 'nochange|restic')" restic
  if [ -n "$NOCHANGE_LIMIT" ]; then
    target "no-change run, cerberus-openpgp < $NOCHANGE_NOTE" "$(med 'nochange|cerberus-openpgp')" "$NOCHANGE_LIMIT" limit
  else
    v="$(med 'nochange|cerberus-openpgp')"
    if [ -n "$v" ]; then v="$v s"; else v=-; fi
    echo "| no-change run, cerberus-openpgp < 3 s | $v | $NOCHANGE_NOTE |"
  fi
  target 'no-change run, cerberus-cryptomator ≤ restic' "$(med 'nochange|cerberus-cryptomator')" "$(med 'nochange|restic')" restic
  target '1 % changed run, cerberus-openpgp ≤ restic' "$(med 'changed|cerberus-openpgp')" "$(med 'changed|restic')" restic
  target '1 % changed run, cerberus-cryptomator ≤ restic' "$(med 'changed|cerberus-cryptomator')" "$(med 'changed|restic')" restic
  target 'full restore throughput, cerberus-openpgp ≥ restic (as time: ≤)' "$(med 'restore|cerberus-openpgp')" "$(med 'restore|restic')" restic
  target 'full restore throughput, cerberus-cryptomator ≥ restic (as time: ≤)' "$(med 'restore|cerberus-cryptomator')" "$(med 'restore|restic')" restic
  target 'first full backup, cerberus-cryptomator ≤ 1.5 × restic' "$(med 'first|cerberus-cryptomator')" "$(scaled "$(med 'first|restic')" 1.5)" '1.5 × restic'
  if [ -n "$MAX_CERB_RSS" ]; then
    if [ -n "$RSS_ROWS" ]; then r="**FAIL**: $RSS_ROWS"; else r=pass; fi
    echo "| peak RSS < $LIMIT_MB MB, every cerberus scenario (enforced) | highest $(mb "$MAX_CERB_RSS") MB | $r |"
  fi
  failed_list
  if [ "${#FAILED[@]}" -gt 0 ]; then
    echo
    if [ "$KEEP" = 1 ]; then echo "The \`logs/\` above: \`$LOGS\`."; else echo "The \`logs/\` above: \`${KEPT_LOGS#"$ROOT"/}\`."; fi
  fi
} >"$OUT"
log "done in $(( ELAPSED / 60 )) min $(( ELAPSED % 60 )) s"
publish_report || exit 1
