#!/usr/bin/env bash
# Starts the release server on a fresh data folder and runs the Playwright tests against it.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
port=${E2E_PORT:-3939}
export E2E_BASE_URL="http://127.0.0.1:$port"
export E2E_API_KEY="e2e-operator-key-$(date +%s)"
rtmp_port=${E2E_RTMP_PORT:-19350}
export E2E_RTMP="rtmp://127.0.0.1:$rtmp_port"
# Webhook tests post to a receiver on loopback.
start_release_server "$port" "$rtmp_port" "$E2E_API_KEY" --webhooks-allow-private
(cd end2end && npx playwright test "$@") \
  || { echo "--- server log"; tail -n 50 "$server_data/server.log"; exit 1; }
