#!/usr/bin/env bash
# The quick start: a real backup and restore on the local default, no account, no server.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/bin/cerberus.js ] || npm run build
cerberus() { node dist/bin/cerberus.js "$@"; }

export CERBERUS_STATE_DIR="$PWD/.demo/state"
# a demo passphrase; real use: from the environment or a file, never on a command line
export CERBERUS_KEY_PASSPHRASE="${CERBERUS_KEY_PASSPHRASE:-demo passphrase, change me}"
CONFIG=examples/quickstart.yaml

rm -rf .demo && mkdir -p .demo
echo "### 1. a fresh OpenPGP key pair (the backup machine needs only the public key)"
cerberus keygen --out .demo/keys --name "cerberus demo"
echo "### 2. the repository"
cerberus init --config "$CONFIG"
echo "### 3. a backup of examples/sample"
cerberus backup --config "$CONFIG"
echo "### 4. the restore points"
cerberus list --config "$CONFIG"
echo "### 5. restore the latest point into .demo/restored"
cerberus restore --config "$CONFIG" --at latest --to .demo/restored --key .demo/keys/cerberus.key.asc
diff -r examples/sample .demo/restored && echo "### restored tree is identical to examples/sample"
echo "### the repository is in .demo/repo; see .demo/repo/RESTORE.md for restoring with gpg and tar alone"
