#!/usr/bin/env bash
# Starts a local three-node cluster for trying cluster mode: a private
# PostgreSQL on 127.0.0.1:$PG_PORT (default 55432) and three gateway nodes,
# node1..node3, on 127.0.0.1:8081..8083, each configured by
# deploy/cluster.example.toml with its own address, id and directories in
# the environment. Ctrl-C stops the nodes (each hands its accounts over on
# the way out), then the database.
#
# Everything lives in ./cluster-data: the database (pg/), the cluster's keys
# (keys/, made once by `lemonade keygen`), each node's data dir with a copy
# of the keys (node1/..node3/) and the directory the nodes share (shared/).
# A second run carries on with the same accounts; remove the directory to
# start afresh. To watch a failover, `kill -9` one node's pid (printed
# below): the others take its accounts over once its lease has run out.
#
# Installs the PostgreSQL server and a C toolchain when missing (root or
# sudo). As root, PostgreSQL runs as the postgres user, which must be able
# to reach ./cluster-data.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

missing=()
command -v cc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || missing+=(make)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ "${#missing[@]}" -gt 0 ]; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install a current Rust toolchain (https://rustup.rs), then run this again" >&2
  exit 1
fi

cargo build --locked --release
bin="${CARGO_TARGET_DIR:-target}/release/lemonade"

data="$PWD/cluster-data"
pg_bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
pg_port="${PG_PORT:-55432}"
url="postgres://postgres@127.0.0.1:$pg_port/lemonade"
pids=()

stop_all() {
  trap - EXIT INT TERM
  if [ "${#pids[@]}" -gt 0 ]; then
    echo "stopping the nodes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
  echo "stopping PostgreSQL"
  as_postgres "$pg_bin/pg_ctl" -D "$data/pg" -m fast stop >/dev/null 2>&1 || true
}

start_postgres() {
  if [ ! -f "$data/pg/PG_VERSION" ]; then
    mkdir -p -m 700 "$data/pg"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$data/pg"
    if ! as_postgres test -w "$data/pg"; then
      echo "the postgres user cannot write $data/pg: put the checkout where it can, or run as another user than root" >&2
      exit 1
    fi
    as_postgres "$pg_bin/initdb" -D "$data/pg" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
    # TCP on loopback only; no unix socket to place.
    printf "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" >>"$data/pg/postgresql.conf"
  fi
  trap stop_all EXIT
  trap 'exit 130' INT TERM
  as_postgres "$pg_bin/pg_ctl" -D "$data/pg" -l "$data/pg/server.log" -w -o "-p $pg_port" start >/dev/null
  local psql=("$pg_bin/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres -tA)
  if [ -z "$("${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'lemonade'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE lemonade"
  fi
}

# The cluster's keys, made once, and a copy in each node's data dir.
prepare_dirs() {
  if [ ! -f "$data/keys/master.key" ]; then
    "$bin" keygen "$data/keys"
  fi
  mkdir -p "$data/shared"
  for i in 1 2 3; do
    mkdir -p -m 700 "$data/node$i"
    install -m 600 "$data/keys/master.key" "$data/keys/vapid.pk8" "$data/node$i/"
  done
}

start_node() {
  local i=$1
  # Each line of the node's log is prefixed with its name. The prefixing
  # ignores Ctrl-C and SIGTERM: it ends when the node closes its output,
  # so the node's last lines get through and it never logs into a closed
  # pipe.
  env LEMONADE_LISTEN="127.0.0.1:808$i" \
    LEMONADE_DATA_DIR="$data/node$i" \
    LEMONADE_STORE_POSTGRES_URL="$url" \
    LEMONADE_STORE_SHARED_DIR="$data/shared" \
    LEMONADE_CLUSTER_NODE_ID="node$i" \
    LEMONADE_LOG_FORMAT=text \
    "$bin" serve --config deploy/cluster.example.toml \
    > >(trap '' INT TERM; sed -u "s/^/node$i | /") 2>&1 &
  pids+=("$!")
  echo "node$i: http://127.0.0.1:808$i (pid $!)"
}

mkdir -p "$data"
start_postgres
prepare_dirs
echo "database: $url"
for i in 1 2 3; do
  start_node "$i"
done
echo "Ctrl-C stops the cluster"
wait "${pids[@]}" || true
