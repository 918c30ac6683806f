#!/usr/bin/env bash
# The unit tests under the Node.js the Docker image runs (scripts/node-lts.sh), beside the main
# run under the machine's Node. Left out: what drives the built CLI or servers (e2e, storage,
# helpers) and what checks the image or the Jenkinsfiles themselves (docker, groovy).
set -euo pipefail
cd "$(dirname "$0")/.."
node_bin="$(scripts/node-lts.sh)"
echo "unit tests under Node $("$node_bin" --version) (the image's Node LTS)" >&2
exec "$node_bin" node_modules/vitest/vitest.mjs run \
  --exclude 'test/e2e/**' --exclude 'test/storage/**' --exclude 'test/helpers/**' \
  --exclude 'test/docker/**' --exclude 'test/pipelines/groovy.test.ts' "$@"
