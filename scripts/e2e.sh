#!/usr/bin/env bash
# Starts the release server on a fresh data folder and runs the Playwright tests against it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/end2end/node_modules/.bin:$PATH"
data=$(mktemp -d)
port=${E2E_PORT:-3939}
export E2E_BASE_URL="http://127.0.0.1:$port"
export E2E_API_KEY="e2e-operator-key-$(date +%s)"
rtmp_port=${E2E_RTMP_PORT:-19350}
export E2E_RTMP="rtmp://127.0.0.1:$rtmp_port"
target/release/liveproc --http "127.0.0.1:$port" --rtmp "127.0.0.1:$rtmp_port" --data "$data" \
  --admin-key "$E2E_API_KEY" > "$data/server.log" 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
for _ in $(seq 1 100); do
  curl -fs "$E2E_BASE_URL/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fs "$E2E_BASE_URL/healthz" >/dev/null || { cat "$data/server.log"; exit 1; }
(cd end2end && npx playwright test "$@") || { echo "--- server log"; tail -n 50 "$data/server.log"; exit 1; }
