#!/usr/bin/env bash
# Runs every check and test of liveproc: formatting, clippy (server and wasm), unit and
# integration tests on SQLite and PostgreSQL, then Playwright in Chromium against the release build.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
started=$(date +%s)
# CI builds once: incremental caches would only cost disk.
export CARGO_INCREMENTAL=0
tools_test

log "cargo fmt --check"
cargo fmt --all -- --check

log "clippy: server (ssr)"
cargo clippy -p server -p pixels -p domain -p app --all-targets -- -D warnings
log "clippy: dashboard (hydrate, wasm32)"
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

log "PostgreSQL"
LIVEPROC_TEST_POSTGRES_URL=$(start_postgres)
export LIVEPROC_TEST_POSTGRES_URL
case "$LIVEPROC_TEST_POSTGRES_URL" in
  postgres://*) log "PostgreSQL at ${LIVEPROC_TEST_POSTGRES_URL/:liveproc-test@/:***@}" ;;
  *) echo "start_postgres printed no usable URL: '$LIVEPROC_TEST_POSTGRES_URL'" >&2; exit 1 ;;
esac
for _ in $(seq 30); do psql "$LIVEPROC_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null 2>&1 && break; sleep 1; done
psql "$LIVEPROC_TEST_POSTGRES_URL" -qAtc 'select 1' >/dev/null

log "unit and integration tests (SQLite and PostgreSQL)"
cargo nextest run -p server -p pixels -p domain -p app --no-fail-fast

log "cargo leptos build --release"
cargo leptos build --release

log "end-to-end (Playwright, Chromium)"
bash scripts/e2e.sh

log "API property run (schemathesis over the OpenAPI document)"
bash scripts/api-fuzz.sh 90

log "soak (shortened: 3 publishers, 2 clients, 60 s; the 10-minute run is in design/reliability.md)"
python3 scripts/soak.py --streams 3 --clients 2 --seconds 60

log "all tests passed in $(( $(date +%s) - started )) s"
