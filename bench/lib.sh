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

# ---- a local WebDAV server: Apache httpd with mod_dav_fs (bench/upload.sh, bench/compare.sh) --
# dav_start DIR USER PASSWORD [SHOWN]: Apache with its own config, port, data (DIR/data) and logs
# in DIR, on 127.0.0.1 only, Basic auth for USER; sets DAV_PID (its process group), DAV_PORT and
# DAV_URL (http://127.0.0.1:PORT/dav). SHOWN is DIR as its log line names it (default DIR). As
# root the workers run as www-data, which then owns DIR/data. dav_stop stops it and its
# workers. need_dav installs what is missing.
DAV_APACHE="${APACHE2_BIN:-/usr/sbin/apache2}"
DAV_MODULES="${APACHE2_MODULES:-/usr/lib/apache2/modules}"
DAV_MODS=(mod_mpm_event mod_authz_core mod_authn_core mod_authn_file mod_auth_basic mod_authz_user mod_alias mod_dav mod_dav_fs mod_mime)
DAV_PID=''
need_dav() {
  command -v curl >/dev/null || apt_install curl curl
  [ -x "$DAV_APACHE" ] || apt_install apache2 apache2
  command -v htpasswd >/dev/null || apt_install htpasswd apache2-utils
  local m
  for m in "${DAV_MODS[@]}"; do [ -f "$DAV_MODULES/$m.so" ] || die "$DAV_MODULES/$m.so is missing"; done
}
free_port() {
  node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}
random_secret() { head -c 64 /dev/urandom | base64 -w0 | tr -dc 'A-Za-z0-9' | cut -c1-24; }
dav_start() {
  local dir="$1" user="$2" password="$3" shown="${4:-$1}" port m
  mkdir -p "$dir"/{data,run,logs,lock,htdocs}
  : >"$dir/mime.types"
  port="$(free_port)"
  {
    for m in "${DAV_MODS[@]}"; do echo "LoadModule ${m#mod_}_module \"$DAV_MODULES/$m.so\""; done
    cat <<CONF
ServerRoot "$dir"
ServerName 127.0.0.1
Listen 127.0.0.1:$port
PidFile "$dir/run/httpd.pid"
DefaultRuntimeDir "$dir/run"
Mutex file:$dir/run default
ErrorLog "$dir/logs/error.log"
LogLevel warn
LogFormat "\"%r\" %>s len=%{Content-Length}i te=%{Transfer-Encoding}i %D us" dav
CustomLog "$dir/logs/access.log" dav
StartServers 1
ThreadsPerChild 25
MaxRequestWorkers 50
Timeout 60
LimitRequestBody 0
TypesConfig "$dir/mime.types"
DefaultType none
DocumentRoot "$dir/htdocs"
DavLockDB "$dir/lock/DavLock"
Alias /dav "$dir/data"
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory "$dir/data">
  Dav On
  AuthType Basic
  AuthName "cerberus bench"
  AuthBasicProvider file
  AuthUserFile "$dir/htpasswd"
  Require valid-user
</Directory>
CONF
    if [ "$(id -u)" = 0 ]; then printf 'User www-data\nGroup www-data\n'; fi
  } >"$dir/httpd.conf"
  printf %s "$password" | htpasswd -B -c -i "$dir/htpasswd" "$user" 2>/dev/null
  if [ "$(id -u)" = 0 ]; then
    # the workers run as www-data and must write the data and the lock database
    id -u www-data >/dev/null 2>&1 || die 'running as root, but there is no www-data user for the Apache workers'
    chown www-data:www-data "$dir"
    chown -R www-data:www-data "$dir/data" "$dir/run" "$dir/lock"
    chmod 644 "$dir/htpasswd"
  fi
  # its own process group (setsid), so the workers can be stopped with it
  setsid "$DAV_APACHE" -f "$dir/httpd.conf" -DFOREGROUND </dev/null >/dev/null 2>"$dir/logs/stderr.log" &
  DAV_PID=$!
  for _ in $(seq 200); do
    kill -0 "$DAV_PID" 2>/dev/null || { cat "$dir/logs/stderr.log" "$dir/logs/error.log" >&2 2>/dev/null; DAV_PID=''; die 'apache2 exited'; }
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      # shellcheck disable=SC2034 # for the caller
      DAV_PORT="$port"
      DAV_URL="http://127.0.0.1:$port/dav"
      log "apache2 (pid $DAV_PID) on $DAV_URL, data in $shown/data"
      return
    fi
    sleep 0.1
  done
  die "apache2 does not answer on port $port"
}
dav_stop() {
  [ -n "$DAV_PID" ] || return 0
  kill -TERM -- "-$DAV_PID" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$DAV_PID" 2>/dev/null || break; sleep 0.1; done
  # workers left behind would keep the port
  kill -KILL -- "-$DAV_PID" 2>/dev/null || true
  DAV_PID=''
}

# ---- a local S3: s3rver through the tests' runner (bench/upload.sh, bench/worker.sh) ---------
# s3rver_start DIR BUCKET: data in DIR/data, on 127.0.0.1; sets S3_PID and S3_PORT. The runner
# quits (and removes its data) when its stdin ends, so stdin is a fifo this shell holds open.
# s3rver_stop stops it.
S3_PID=''
S3_FD=''
s3rver_start() {
  local dir="$1" bucket="$2"
  mkdir -p "$dir/data"
  rm -f "$dir/stdin" && mkfifo "$dir/stdin"
  node --openssl-legacy-provider test/helpers/s3rver-main.mjs "{\"port\":0,\"directory\":\"$dir/data\",\"bucket\":\"$bucket\"}" \
    <"$dir/stdin" >"$dir/stdout" 2>"$dir/stderr" &
  S3_PID=$!
  exec {S3_FD}>"$dir/stdin"
  for _ in $(seq 200); do
    kill -0 "$S3_PID" 2>/dev/null || { cat "$dir/stderr" >&2; die 's3rver exited'; }
    S3_PORT="$(sed -n 's/^{"port":\([0-9]*\)}$/\1/p' "$dir/stdout")"
    if [ -n "$S3_PORT" ]; then
      log "s3rver (pid $S3_PID) on http://127.0.0.1:$S3_PORT, data in ${dir#"$ROOT"/}/data"
      return
    fi
    sleep 0.1
  done
  die 's3rver did not report its port'
}
s3rver_stop() {
  if [ -n "$S3_PID" ]; then
    kill -TERM "$S3_PID" 2>/dev/null
    wait "$S3_PID" 2>/dev/null
    S3_PID=''
  fi
  if [ -n "$S3_FD" ]; then exec {S3_FD}>&-; S3_FD=''; fi
  return 0
}
