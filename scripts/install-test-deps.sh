#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine: GnuPG and GNU tar for interop
# checks, GNU time for the benchmarks, Apache with mod_dav for the WebDAV tests, curl for the
# upload benchmark, 7-Zip for the yearly export, groovy and Java 17 for the Jenkinsfiles,
# PostgreSQL and MariaDB (servers and clients) for the database sources, vsftpd and OpenSSH's
# sshd (with openssl for the FTPS certificate) for the remote sources, python3, make and g++ for
# better-sqlite3 (the worker's SQLite on a Node without node:sqlite, built from source by npm).
# Then the npm packages (s3rver and npm-groovy-lint among them), exactly as locked.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v gpg >/dev/null 2>&1 || need+=(gnupg)
command -v tar >/dev/null 2>&1 || need+=(tar)
command -v xargs >/dev/null 2>&1 || need+=(findutils)
[ -x /usr/bin/time ] || need+=(time)
command -v apache2 >/dev/null 2>&1 || [ -x /usr/sbin/apache2 ] || need+=(apache2)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v curl >/dev/null 2>&1 || need+=(curl)
# 7-Zip makes and checks the yearly export
command -v 7zz >/dev/null 2>&1 || need+=(7zip)
# the Jenkinsfiles are compiled with groovy and linted with npm-groovy-lint, both on Java 17
command -v groovy >/dev/null 2>&1 || need+=(groovy)
ls -d /usr/lib/jvm/java-17-openjdk-* >/dev/null 2>&1 || need+=(openjdk-17-jre-headless)
# the database-source tests start their own PostgreSQL cluster (initdb, postgres) and dump it
# with pg_dump; the package's default cluster is created but, as every daemon here, not started
[ -x /usr/lib/postgresql/15/bin/initdb ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
# and their own MariaDB server (mariadb-install-db, mariadbd, in /usr/sbin: not on a user's
# PATH), dumped with mysqldump and loaded back with the mysql client
command -v mariadb-install-db >/dev/null 2>&1 && { command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ]; } || need+=(mariadb-server)
command -v mysqldump >/dev/null 2>&1 && command -v mysql >/dev/null 2>&1 || need+=(mariadb-client)
# the remote-source tests start their own FTPS server (vsftpd: LIST only, so the MDTM path is
# tested; it conflicts with pure-ftpd) and sshd, each with a config of its own on a free port:
# the packages' configs in /etc are never read, and their daemons, as every daemon here, not started
[ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
[ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/sbin/useradd ] && [ -x /usr/sbin/chpasswd ] || need+=(passwd)
# node-gyp builds better-sqlite3 (an optional dependency) where its prebuilt binary cannot be fetched
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v make >/dev/null 2>&1 || need+=(make)
command -v g++ >/dev/null 2>&1 || need+=(g++)

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need ${need[*]}; run as root or: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  # never let a package install start a daemon on this machine
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# node-gyp needs this Node's headers; where they are installed beside it, it need not download them
if [ -z "${npm_config_nodedir:-}" ] && [ -z "$(npm config get nodedir 2>/dev/null | grep -v '^undefined$' || true)" ] \
  && [ -f /usr/include/node/node_version.h ] && [ "$(command -v node)" = /usr/bin/node ]; then
  export npm_config_nodedir=/usr
fi
# -O1: better-sqlite3's build (SQLite's amalgamation, one 9 MB C file) takes half the time it
# takes at gyp's -O3, about 45 s less of every CI run; the tests need SQLite correct, not fast
CFLAGS="${CFLAGS:--O1}" CXXFLAGS="${CXXFLAGS:--O1}" npm ci --no-audit --no-fund
# the worker reads SQLite with node:sqlite where Node has it (22.5 and later), else with better-sqlite3
if ! node -e 'process.exit(process.getBuiltinModule?.("node:sqlite") ? 0 : 1)' 2>/dev/null && ! node -e 'require("better-sqlite3")' 2>/dev/null; then
  echo "install-test-deps: better-sqlite3 did not build (npm rebuild better-sqlite3 --foreground-scripts shows why); Node $(node --version) has no node:sqlite" >&2
  exit 1
fi
# the Node.js the Docker image runs, from the npm registry: the image tests and a unit-test run use it
scripts/node-lts.sh >/dev/null
