#!/usr/bin/env bash
# gRPC throughput against the embedded engine, in one script run on one machine: a server is
# started on a free port, `freshvec bench --server` loads the TEXMEX folder through the API and
# measures searches with 1, 4 and 16 concurrent clients; the server stops; then the embedded
# bench runs the same queries with 1, 4 and 16 threads.
#
#   scripts/grpc.sh DATA_DIR OUT_DIR
set -euo pipefail
data=$1; out=$2
here=$(cd "$(dirname "$0")/.." && pwd)
bin=$here/target/release/freshvec
name=$(basename "$data")
mkdir -p "$out"
cargo build --release -q -p freshvec-server --manifest-path "$here/Cargo.toml"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ddir=$(mktemp -d)
"$bin" serve --listen "127.0.0.1:$port" --peer-listen 127.0.0.1:0 --data-dir "$ddir" \
  --metrics-listen off 2> "$out/server-$name.log" &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$ddir"' EXIT
for _ in $(seq 1 300); do
  "$bin" health --server "127.0.0.1:$port" >/dev/null 2>&1 && break
  sleep 0.1
done
for c in 1 4 16; do
  "$bin" bench --server "127.0.0.1:$port" --data "$data" --concurrency $c --json "$out/grpc-$name-c$c.json"
done
kill -TERM $server; wait $server || true
for t in 1 4 16; do
  "$bin" bench --data "$data" --threads $t --json "$out/embedded-$name-t$t.json"
done
python3 - "$out" "$name" <<'PY'
import json, sys
out, name = sys.argv[1], sys.argv[2]
print(f"| {name} | clients | gRPC qps | p50 ms | p99 ms | recall | embedded qps (threads) | p50 ms | p99 ms | recall | gRPC / embedded |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for n in (1, 4, 16):
    g = json.load(open(f"{out}/grpc-{name}-c{n}.json"))
    e = json.load(open(f"{out}/embedded-{name}-t{n}.json"))
    print(f"| {name} | {n} | {g['search_qps']:,.0f} | {g['p50_ms']:.3f} | {g['p99_ms']:.3f} | {g['recall_at_k']:.4f} | "
          f"{e['search_qps']:,.0f} | {e['p50_ms']:.3f} | {e['p99_ms']:.3f} | {e['recall_at_k']:.4f} | {g['search_qps'] / e['search_qps']:.2f} |")
PY
