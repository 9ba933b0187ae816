#!/usr/bin/env bash
# Builds liveproc (release) and runs it on the embedded default: SQLite + local disk in ./data.
# Extra arguments go to the server, e.g. scripts/run.sh --http 0.0.0.0:3000
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
tools_build
log "cargo leptos build --release"
cargo leptos build --release
log "starting target/release/liveproc $*"
exec target/release/liveproc "$@"
