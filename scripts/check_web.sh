#!/usr/bin/env bash
# Check that the committed web bundle (src/connectrpc_catalog/static/) and the
# generated client (web/src/gen/) are exactly what the current source builds.
# Exit 0 when they are, 1 (with a diff summary) when they are stale.
#
#   scripts/check_web.sh
#
# It runs `npm ci`, then generates and builds into temporary directories inside
# web/ and compares them with the committed files; nothing committed is touched.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
web="$root/web"
static="$root/src/connectrpc_catalog/static"
cd "$web"

if ! command -v npm >/dev/null 2>&1; then
  echo "check_web: npm not found; install Node.js 20+ to check the web bundle" >&2
  exit 2
fi

npm ci --no-audit --no-fund --loglevel=error

tmp="$(mktemp -d "$web/.check-web.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

stale=0

npx --no-install buf generate --template buf.gen.yaml --output "$tmp/gen-root" ../proto
if ! diff -r "$tmp/gen-root/src/gen" "$web/src/gen" >"$tmp/gen.diff"; then
  echo "check_web: web/src/gen/ is stale: proto/ changed since the TypeScript client was generated." >&2
  head -40 "$tmp/gen.diff" >&2
  stale=1
fi

CATALOG_WEB_OUT="$tmp/static" npm run --silent build >"$tmp/build.log" 2>&1 || {
  cat "$tmp/build.log" >&2
  echo "check_web: the web UI does not build (see above)." >&2
  exit 1
}
if [ ! -d "$static" ]; then
  echo "check_web: $static is missing; run scripts/build_web.sh and commit the result." >&2
  exit 1
fi
if ! diff -r "$tmp/static" "$static" >"$tmp/static.diff"; then
  echo "check_web: src/connectrpc_catalog/static/ is stale: it is not the build of the current web/ source." >&2
  head -20 "$tmp/static.diff" | cut -c1-200 >&2
  stale=1
fi

if [ "$stale" -ne 0 ]; then
  echo "check_web: FAILED — run scripts/build_web.sh and commit web/src/gen/ and src/connectrpc_catalog/static/." >&2
  exit 1
fi
echo "check_web: web bundle and generated client are up to date."
