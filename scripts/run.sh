#!/usr/bin/env bash
# Builds liveproc (release) and runs it on the embedded default: SQLite + local disk in ./data.
# Extra arguments go to the server, e.g. scripts/run.sh --http 0.0.0.0:3000
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
tools_build
log "cargo leptos build --release"
cargo leptos build --release
# SRT ingest on by default here (the binary leaves it off unless --srt or LIVEPROC_SRT is set).
export LIVEPROC_SRT="${LIVEPROC_SRT:-127.0.0.1:9710}"
log "starting target/release/liveproc $* (SRT on $LIVEPROC_SRT)"
exec target/release/liveproc "$@"
