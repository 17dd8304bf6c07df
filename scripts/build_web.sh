#!/usr/bin/env bash
# Rebuild the web UI into src/connectrpc_catalog/static/ (the bundle the Python
# package serves; commit the result). Needs Node.js 20+ and npm.
#
#   scripts/build_web.sh
#
# Steps: npm ci (exact versions from web/package-lock.json), regenerate the
# catalog.v1 TypeScript client into web/src/gen/ with buf + protoc-gen-es, type
# check, and build with vite.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/web"

npm ci --no-audit --no-fund --loglevel=error
npx --no-install buf generate --template buf.gen.yaml ../proto
npm run --silent build
echo "web UI built into src/connectrpc_catalog/static/"
