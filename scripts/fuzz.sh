#!/usr/bin/env bash
# Fuzzes liveproc's parsers of untrusted bytes with cargo-fuzz (libFuzzer), each target for
# RUNS executions (default 10^6), starting from the committed seeds in fuzz/seeds/.
#   bash scripts/fuzz.sh [TARGET...]      RUNS=1000000 JOBS=1
# The stable test `fuzzing::tests::seeds_and_their_mutations_parse_without_panics` is the short
# run CI does; this is the long, documented one (design/reliability.md). cargo-fuzz needs
# nightly flags: a nightly toolchain is used when present, else stable with RUSTC_BOOTSTRAP=1.
set -euo pipefail
source "$(dirname "$0")/tools.sh"
cd "$ROOT"
cargo_tool cargo-fuzz 0.13.2 cargo-fuzz
toolchain=()
if rustup toolchain list | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
# The server's dependency versions, so the fuzzed code is the code that ships.
cp Cargo.lock fuzz/Cargo.lock
RUNS=${RUNS:-1000000}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(rtmp_session rtsp_session flv_tags h264_access_unit fmp4_read mpegts)
# No AddressSanitizer: the code under test is safe Rust except OpenH264's C++, which OSS-Fuzz
# covers; libFuzzer still catches panics, hangs (-timeout) and runaway memory (-rss_limit_mb).
cargo "${toolchain[@]}" fuzz build --sanitizer none
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log "fuzz $t: $RUNS runs"
  started=$(date +%s)
  cargo "${toolchain[@]}" fuzz run --sanitizer none "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
    -runs="$RUNS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    2>&1 | tee "fuzz/$t.log" | grep -E '^(#[0-9]+ *(DONE|INITED)|stat::|==|SUMMARY|panicked)' || true
  log "fuzz $t: $(( $(date +%s) - started )) s"
done
