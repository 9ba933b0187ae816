# Installs what liveproc's builds and tests need, skipping whatever is already there.
# Sourced by scripts/run.sh and scripts/test.sh; safe to run again and again.
#   tools_build : Rust wasm target, cargo-leptos, wasm-bindgen-cli, npm packages (wasm-opt)
#   tools_test  : the above + Debian's chromium, ffmpeg, PostgreSQL
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CARGO_LEPTOS_VERSION=0.3.10   # 0.3.11 needs rustc 1.96
WASM_BINDGEN_VERSION=0.2.129  # must equal the wasm-bindgen crate pinned in Cargo.toml
export PATH="$HOME/.cargo/bin:$ROOT/end2end/node_modules/.bin:$PATH"

log() { printf '\033[1m== %s\033[0m\n' "$*"; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "apt-get install ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

# cargo install takes 15-30 minutes for cargo-leptos on 2 cores: only when missing or another version.
cargo_tool() { # crate version binary
  local crate=$1 version=$2 bin=$3
  if ! "$bin" --version 2>/dev/null | grep -q " $version"; then
    log "cargo install $crate $version (slow, once)"
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
      cargo install "$crate" --locked --version "$version"
  fi
}

tools_build() {
  rustup target list --installed | grep -q wasm32-unknown-unknown \
    || rustup target add wasm32-unknown-unknown
  # openh264's assembly (media issues), pkg-config for -sys crates, cmake for libopus.
  apt_install nasm pkg-config g++ cmake
  cargo_tool cargo-leptos "$CARGO_LEPTOS_VERSION" cargo-leptos
  cargo_tool wasm-bindgen-cli "$WASM_BINDGEN_VERSION" wasm-bindgen
  # wasm-opt from npm's binaryen: Debian's (version 108) silently breaks hydration.
  if [ ! -x "$ROOT/end2end/node_modules/.bin/wasm-opt" ] || [ ! -d "$ROOT/end2end/node_modules/@playwright/test" ] \
     || [ ! -f "$ROOT/end2end/node_modules/hls.js/dist/hls.min.js" ]; then
    log "npm ci (end2end)"
    (cd "$ROOT/end2end" && npm ci --no-audit --no-fund)
  fi
  # The player's hls.js, served from public/ (no CDN).
  mkdir -p "$ROOT/public/vendor"
  cmp -s "$ROOT/end2end/node_modules/hls.js/dist/hls.min.js" "$ROOT/public/vendor/hls.min.js" \
    || cp "$ROOT/end2end/node_modules/hls.js/dist/hls.min.js" "$ROOT/public/vendor/hls.min.js"
}

tools_test() {
  tools_build
  apt_install chromium ffmpeg postgresql curl
  # A real RTSP camera for the RTSP pull tests: GStreamer's RTSP server through Python gi.
  # GStreamer also publishes over RTMP in the interop tests (gst-launch-1.0: rtmp2sink, librtmp's rtmpsink).
  apt_install python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
    gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  command -v cargo-nextest >/dev/null 2>&1 || cargo_tool cargo-nextest 0.9.143 cargo-nextest
}

# Starts the Debian PostgreSQL cluster and prints a URL for the tests (password auth on loopback).
start_postgres() {
  local ver
  ver=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! pg_lsclusters -h | grep -q "^$ver main"; then
    pg_createcluster "$ver" main >&2
  fi
  # pg_ctlcluster prints its systemd warning on stdout; only the URL may reach stdout here.
  pg_lsclusters -h | grep -q "^$ver main .* online" || pg_ctlcluster "$ver" main start >&2
  su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'liveproc-test'\"" >&2
  local port
  port=$(pg_lsclusters -h | awk -v v="$ver" '$1 == v && $2 == "main" { print $3 }')
  echo "postgres://postgres:liveproc-test@127.0.0.1:$port/postgres"
}

# Starts the release server on a fresh data folder ($server_data, its log in server.log) with
# an admin key and any further flags, waits until it answers, and stops it and removes the
# folder when the calling script exits. e2e.sh and api-fuzz.sh use it.
#   start_release_server HTTP_PORT RTMP_PORT ADMIN_KEY [FLAG ...]
start_release_server() {
  local port=$1 rtmp=$2 key=$3
  shift 3
  server_data=$(mktemp -d)
  "$ROOT/target/release/liveproc" --http "127.0.0.1:$port" --rtmp "127.0.0.1:$rtmp" \
    --data "$server_data" --admin-key "$key" "$@" > "$server_data/server.log" 2>&1 &
  server_pid=$!
  trap stop_release_server EXIT
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/healthz" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  cat "$server_data/server.log"
  return 1
}

stop_release_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$server_data"
}
