#!/usr/bin/env bash
# Builds and runs the gateway with its defaults: the HTTP API on
# 127.0.0.1:8080 and all state (sled store, master key, VAPID key) in ./data.
# Extra arguments go to `lemonade serve` (e.g. --config deploy/lemonade.example.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# A C compiler and make build ring and jemalloc.
if ! command -v cc >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev make
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a current Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi
exec cargo run --locked --release --bin lemonade -- serve "$@"
