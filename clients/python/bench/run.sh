#!/usr/bin/env bash
# The Python client benchmark in one run: first the Rust CLI loads DATA's base into a fresh
# server (`freshvec upsert --batch 1024 --concurrency 4`, the baseline of what the server
# ingests on this machine now), then a second fresh server gets client_bench.py (upload,
# then search through the package and through the raw stubs).
#   clients/python/bench/run.sh DATA [client_bench.py args]
# Needs a Python with the package installed (pip install clients/python) and a release build.
set -euo pipefail
data=$1; shift
root=$(cd "$(dirname "$0")/../../.." && pwd)
bin=${FRESHVEC_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/freshvec}
dirs=()
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  rm -rf "${dirs[@]}"
}
trap cleanup EXIT
start() {
  local dir
  dir=$(mktemp -d)
  dirs+=("$dir")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$bin" serve --listen "127.0.0.1:$port" --peer-listen 127.0.0.1:0 --metrics-listen off \
    --data-dir "$dir/data" 2>"$dir/log" &
  pid=$!
  until "$bin" health --server "127.0.0.1:$port" >/dev/null 2>&1; do sleep 0.1; done
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=; }

dim=$(python3 -c 'import struct,sys; print(struct.unpack("<i", open(sys.argv[1],"rb").read(4))[0])' "$data/base.fvecs")
start
"$bin" collections create rust --dimension "$dim" --metric l2 --server "127.0.0.1:$port" >/dev/null
echo -n "baseline, Rust CLI: "
"$bin" upsert --collection rust --fvecs "$data/base.fvecs" --batch 1024 --concurrency 4 \
  --server "127.0.0.1:$port"
stop
start
python "$root/clients/python/bench/client_bench.py" --data "$data" --server "127.0.0.1:$port" "$@"
