#!/usr/bin/env bash
# Runs the whole test suite on Debian/Ubuntu: formatting, clippy, the tests,
# then a short run of every fuzz target (FUZZ_SECONDS each, default 15).
# It first installs what the tests need: Dovecot (IMAP + submission, started
# per test on loopback high ports by the harness), the PostgreSQL server
# (the harness starts one private instance per test binary on a loopback high
# port; the distribution's own cluster is neither used nor needed), a C
# compiler and make (ring and jemalloc are built from source), OpenSSL
# headers for the independent Web Push decryptor the tests use, and
# kubernetes-validate (from PyPI, into a virtualenv under ~/.cache) for the
# offline check of deploy/kubernetes, the API contract tools (PyPI and
# npm, under ~/.cache; Node.js and npm from the distribution), and for the
# web app's browser tests the distribution's Chromium with playwright-core
# and axe-core (npm, beside the contract tools). Needs root or sudo for the installs and
# for Dovecot and PostgreSQL, which the harness runs as system users of their
# own.
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
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
[ -x "${TEST_CHROMIUM:-/usr/bin/chromium}" ] || missing+=(chromium)
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
# Nor is the distribution's PostgreSQL cluster, which the install may have
# started: the harness runs its own server from /usr/lib/postgresql/*/bin.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" { print $1, $2 }' |
    while read -r version cluster; do
      as_root pg_ctlcluster "$version" "$cluster" stop || true
    done
fi

# kubernetes-validate checks deploy/kubernetes offline (a test runs it from
# this fixed place); pinned, so that a new release cannot change the verdict.
k8s_validate_version=1.37.0
k8s_venv="${XDG_CACHE_HOME:-$HOME/.cache}/lemonade-tests/kubernetes-validate"
if [ "$("$k8s_venv/bin/kubernetes-validate" --version 2>/dev/null)" != "$k8s_validate_version" ]; then
  echo "installing kubernetes-validate $k8s_validate_version into $k8s_venv"
  rm -rf "$k8s_venv"
  python3 -m venv "$k8s_venv"
  "$k8s_venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$k8s_validate_version"
fi

# The API contract test (tests/contract/) checks the served OpenAPI document
# with openapi-spec-validator and Redocly CLI, generates a client with
# openapi-python-client, and decodes every answer with the proto compiled
# by grpcio-tools (its protoc) for the protobuf runtime. All pinned, in
# their own places under the cache; TEST_CONTRACT_PYTHON and
# TEST_CONTRACT_NODE point the test elsewhere (not LEMONADE_*: the gateway
# refuses environment variables of its prefix that are no configuration key).
contract_py_pins=(openapi-spec-validator==0.9.0 openapi-python-client==0.29.1
  grpcio-tools==1.85.4 protobuf==7.36.2 http_ece==1.2.1 cryptography==51.0.1)
# 1.x: the 2.x line needs a newer Node.js than Debian 12 ships (18.19).
redocly_version=1.34.5
contract_py="${TEST_CONTRACT_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/lemonade-tests/contract-python}"
contract_node="${TEST_CONTRACT_NODE:-${XDG_CACHE_HOME:-$HOME/.cache}/lemonade-node}"
if [ "$(cat "$contract_py/pins" 2>/dev/null)" != "${contract_py_pins[*]}" ]; then
  echo "installing ${contract_py_pins[*]} into $contract_py"
  rm -rf "$contract_py"
  python3 -m venv "$contract_py"
  "$contract_py/bin/pip" install --quiet --disable-pip-version-check "${contract_py_pins[@]}"
  echo "${contract_py_pins[*]}" >"$contract_py/pins"
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "installing: nodejs npm"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm
fi
# Redocly CLI 1.34 runs on Node.js 18.17+.
node -e 'const [a, b] = process.versions.node.split(".").map(Number);
  process.exit(a > 18 || (a === 18 && b >= 17) ? 0 : 1)' || {
  echo "Redocly CLI needs Node.js 18.17+; this is $(node --version)" >&2
  exit 1
}
if [ "$("$contract_node/node_modules/.bin/redocly" --version 2>/dev/null | head -n1)" != "$redocly_version" ]; then
  echo "installing @redocly/cli $redocly_version into $contract_node"
  mkdir -p "$contract_node"
  npm install --prefix "$contract_node" --save-exact --no-fund --no-audit --loglevel=error \
    "@redocly/cli@$redocly_version"
fi
# The web app's browser tests (tests/send/web_app.rs) drive Chromium with
# playwright-core and check each screen with axe-core, from the same prefix.
# playwright-core 1.60 is the last release that runs on Node.js 18, which
# Debian 12 and Ubuntu 24.04 ship; it drives their Chromium over CDP.
web_node_pins=(playwright-core@1.60.0 axe-core@4.14.1)
web_pins_have() {
  node -e 'const [dir, ...pins] = process.argv.slice(1);
    process.exit(pins.every((p) => { const i = p.lastIndexOf("@");
      try { return require(dir + "/node_modules/" + p.slice(0, i) + "/package.json").version === p.slice(i + 1); }
      catch { return false; } }) ? 0 : 1)' "$contract_node" "${web_node_pins[@]}"
}
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || {
  echo "the browser tests' playwright-core needs Node.js 18+; this is $(node --version)" >&2
  exit 1
}
if ! web_pins_have; then
  echo "installing ${web_node_pins[*]} into $contract_node"
  npm install --prefix "$contract_node" --save-exact --no-fund --no-audit --loglevel=error "${web_node_pins[@]}"
fi
export TEST_CONTRACT_PYTHON="$contract_py" TEST_CONTRACT_NODE="$contract_node"

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
