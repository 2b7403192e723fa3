#!/usr/bin/env bash
# Runs the whole test suite on Debian/Ubuntu: formatting, clippy, the tests,
# then a short run of every fuzz target (FUZZ_SECONDS each, default 15).
# It first installs what the tests need: Dovecot (IMAP + submission, started per test on loopback high ports
# by the harness), a C compiler and make (ring and jemalloc are built from
# source), and OpenSSL headers for the independent Web Push decryptor the
# tests use. Needs root or sudo for the installs and for Dovecot, which the
# harness runs with a mail user of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v dovecot >/dev/null 2>&1 || missing+=(dovecot-imapd dovecot-submissiond)
dpkg -s dovecot-submissiond >/dev/null 2>&1 || missing+=(dovecot-submissiond)
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The distribution's Dovecot service is not needed (and may hold ports 143/993);
# the tests start their own instances.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet dovecot 2>/dev/null; then
  as_root systemctl stop dovecot || true
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a current Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fmt --check
(cd fuzz && cargo fmt --check)
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked 2>&1 | tee "$scratch/tests.log"

# Fuzzing on the stable toolchain: coverage-guided, without a sanitizer (the
# crate forbids unsafe code), with debug assertions so that an overflow
# panics as it would in the tests.
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
fuzz_seconds="${FUZZ_SECONDS:-15}"
fuzz_flags=(--sanitizer none --debug-assertions)
cargo fuzz build "${fuzz_flags[@]}"
new_inputs="$scratch/fuzz"
for target in $(cargo fuzz list); do
  echo "fuzzing $target for ${fuzz_seconds}s"
  mkdir -p "$new_inputs/$target"
  # New inputs go to a scratch directory; the committed seeds are only read.
  log="$new_inputs/$target.log"
  if ! cargo fuzz run "${fuzz_flags[@]}" "$target" "$new_inputs/$target" "fuzz/corpus/$target" -- \
    -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 >"$log" 2>&1; then
    grep -m1 -A4 'panicked' "$log" >&2 || tail -n 40 "$log" >&2
    grep -A1 '^Reproduce with' "$log" >&2 || true
    echo "fuzz target $target failed; the input is in fuzz/artifacts/$target" >&2
    exit 1
  fi
  grep -E '^Done' "$log" || true
done

# One closing line for the whole run: every test binary's counts added up.
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$scratch/tests.log"
