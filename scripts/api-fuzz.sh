#!/usr/bin/env bash
# Property-based run of the REST API from its own OpenAPI document (schemathesis, from PyPI)
# against the release server on a fresh data folder: every operation gets generated valid and
# invalid requests, then stateful sequences (create → read → update → delete).
#   bash scripts/api-fuzz.sh [SECONDS]     (default 90)
# Checks: no 5xx, answers match the documented status codes, content types, headers and
# response schemas, auth is not ignored, deleted things stay deleted. Left out:
# positive_data_acceptance and negative_data_rejection, because the product's range rules
# (e.g. thumbnail interval 10-3600 s, tag length) are enforced by the API with 400 and are
# not all expressible in the schema, and an empty body is accepted as `{}` on purpose.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
seconds=${1:-90}
venv="$ROOT/target/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  log "pip install schemathesis"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5"
fi
port=${API_FUZZ_PORT:-3949}
key="api-fuzz-operator-key-$(date +%s)"
# schemathesis tries wrong keys on purpose (the ignored_auth check), far more than the
# per-address limit allows a real client; the limit has its own test.
start_release_server "$port" "$((port + 16000))" "$key" --auth-failures-per-minute 1000000
data=$server_data
log "schemathesis: $seconds s against http://127.0.0.1:$port/api/v1/openapi.json"
cd "$data"  # schemathesis keeps its cache in the working folder
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" \
  -H "X-API-Key: $key" --checks all \
  --exclude-checks positive_data_acceptance,negative_data_rejection \
  --max-time "$seconds" --workers 2 \
  || { echo "--- server log"; tail -n 50 "$data/server.log"; exit 1; }
if grep -E ' ERROR |panicked' "$data/server.log"; then
  echo "the server logged errors during the run" >&2
  exit 1
fi
