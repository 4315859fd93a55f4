#!/usr/bin/env bash
# For tests/test_frontend.py: Debian's Chromium (driven by playwright-core; no browser download)
# and the pinned npm tools in tests/node (TypeScript, esbuild, vite, playwright-core). Quick when done.
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v chromium >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
# playwright-core needs Node.js 20 or newer: the machine's own (Debian 12's nodejs is 18).
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
  || { echo "Node.js >= 20 is required, found $(node --version)" >&2; exit 1; }

# npm ci installs exactly the lock file; the stamp skips it when node_modules already matches.
cd tests/node
if ! cmp -s package-lock.json node_modules/.installed-from-lock 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-from-lock
fi
echo "$(chromium --version 2>/dev/null); tsc $(node_modules/.bin/tsc --version); esbuild $(node_modules/.bin/esbuild --version); $(node_modules/.bin/vite --version)"
