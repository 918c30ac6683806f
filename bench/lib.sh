# Shared by the benchmarks (source it after setting ROOT and cd-ing there): logging, Debian
# installs, the build, size parsing and the seeded corpus in bench/.work.

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] error: %s\n' "$*" >&2; exit 1; }

apt_install() {
  if [ "$(id -u)" != 0 ]; then die "$1 is missing; install the Debian package $2"; fi
  log "installing $2"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# GNU time (not the shell keyword): its -v prints "Maximum resident set size"
need_gnu_time() {
  if ! /usr/bin/time -v true >/dev/null 2>&1; then apt_install 'GNU time (/usr/bin/time)' time; fi
  /usr/bin/time -v true >/dev/null 2>&1 || die '/usr/bin/time -v does not work'
  command -v node >/dev/null || die 'node is missing'
}

# npm ci when node_modules is missing; a build when dist/ is older than src/
BIN="$ROOT/dist/bin/cerberus.js"
ensure_build() {
  if [ ! -d node_modules ]; then log 'npm ci'; npm ci --no-audit --no-fund >/dev/null; fi
  if [ ! -f "$BIN" ] || [ -n "$(find src -name '*.ts' -newer "$BIN" -print -quit)" ]; then
    log 'npm run build'
    npm run build >/dev/null
  fi
}

# bytes from 2GiB, 500MiB, 4096 ...
to_bytes() {
  node -e '
    const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(process.argv[1]);
    if (!m) process.exit(1);
    console.log(Math.round(Number(m[1]) * 1024 ** " KMGT".indexOf(m[2].toUpperCase() || " ")));
  ' "$1"
}

# Sets CORPUS, FILES and DIRS: the corpus of SIZE_BYTES and SEED, made once and reused.
WORK="$ROOT/bench/.work"
ensure_corpus() {
  local size_bytes="$1" seed="$2" label="$3"
  mkdir -p "$WORK"
  CORPUS="$WORK/corpus-$size_bytes-$(printf %s "$seed" | sha256sum | cut -c1-8)"
  if [ -f "$CORPUS.done" ] && [ -d "$CORPUS" ]; then
    log "reusing the corpus $CORPUS"
  else
    # corpora of other sizes or seeds would only fill the disk
    rm -rf "$WORK"/corpus-*
    log "generating a $label corpus (seed $seed)"
    node bench/corpus.mjs "$CORPUS" "$size_bytes" "$seed" | tee "$CORPUS.summary" >&2
    touch "$CORPUS.done"
  fi
  FILES="$(find "$CORPUS" -type f | wc -l)"
  DIRS="$(find "$CORPUS" -mindepth 1 -type d | wc -l)"
}

# The end of a report: FAILED (an array of reasons) as a list, when there are any
failed_list() {
  if [ "${#FAILED[@]}" -gt 0 ]; then
    echo
    echo '**Failed:**'
    for f in "${FAILED[@]}"; do echo "- $f"; done
  fi
}

# Shows the report in OUT, says where it is; fails when anything in FAILED did
publish_report() {
  cat "$OUT"
  log "written to ${OUT#"$ROOT"/}"
  [ "${#FAILED[@]}" -eq 0 ]
}

# ---- measuring with GNU time -------------------------------------------------------------
# The caller sets MEASURE_DIR. measure NAME CMD...: runs CMD under GNU time, its stderr to
# $MEASURE_DIR/NAME.log, time's report to $MEASURE_DIR/NAME.time; the rest read that report.
measure() {
  local name="$1"; shift
  /usr/bin/time -v -o "$MEASURE_DIR/$name.time" "$@" 2>"$MEASURE_DIR/$name.log"
}
time_field() { sed -n "s/^\s*$2: //p" "$MEASURE_DIR/$1.time"; }
rss_kib() { time_field "$1" 'Maximum resident set size (kbytes)'; }
wall_s() {
  time_field "$1" 'Elapsed (wall clock) time (h:mm:ss or m:ss)' |
    awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; printf "%.2f", s }'
}
cpu_s() { awk -v u="$(time_field "$1" 'User time (seconds)')" -v s="$(time_field "$1" 'System time (seconds)')" 'BEGIN { printf "%.2f", u + s }'; }
exit_of() { time_field "$1" 'Exit status'; }
# KiB (as GNU time reports RSS) to MB of 10^6 bytes
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }'; }
# mbs BYTES SECONDS: MB/s
mbs() { awk -v b="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", b / 1e6 / s; else print "-" }'; }
# median and max of a space-separated list of numbers
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
max_of() { tr ' ' '\n' | grep . | sort -g | tail -1; }
