#!/usr/bin/env bash
# Durability figures on one TEXMEX folder, in one script run (never concurrently):
#   1. LanceDB (the shared peers script) for its update throughput;
#   2. freshvec with --durable: base imported and checkpointed, each update batch journaled
#      with an fsync before it is applied;
#   3. freshvec --reopen in a fresh process: restart from that checkpoint plus the journal
#      tail of every update, its memory and its searches;
#   4. freshvec in memory, for the fresh bulk build time and memory to compare against.
#
#   scripts/durable.sh DATA_DIR OUT_DIR [DURABLE_DIR]
set -euo pipefail
data=$1; out=$2; ddir=${3:-$out/durable-$(basename "$data")}
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PEERS_PY:-$HOME/.venvs/peers/bin/python}
shared=${SHARED_BENCH:-$here/../shared/bench}
name=$(basename "$data")
bin=$here/target/release/freshvec
mkdir -p "$out"
cargo build --release -q -p freshvec-server --manifest-path "$here/Cargo.toml"
"$py" "$shared/peers.py" --data "$data" --peers lancedb --reps "${REPS:-1}" --out "$out/peers-durable-$name.json"
"$bin" bench --data "$data" --durable "$ddir" --json "$out/freshvec-durable-$name.json"
"$bin" bench --data "$data" --durable "$ddir" --reopen --json "$out/freshvec-reopen-$name.json"
"$bin" bench --data "$data" --json "$out/freshvec-memory-$name.json"
python3 - "$out" "$name" <<'PY'
import json, sys
out, name = sys.argv[1], sys.argv[2]
peers = {r["peer"]: r for r in json.load(open(f"{out}/peers-durable-{name}.json"))["results"]}
d = json.load(open(f"{out}/freshvec-durable-{name}.json"))
r = json.load(open(f"{out}/freshvec-reopen-{name}.json"))
m = json.load(open(f"{out}/freshvec-memory-{name}.json"))
lance = peers["lancedb"]["update_qps"]
print(f"| {name} | durable update_qps {d['update_qps']:,.0f} | lancedb {lance:,.0f} | {d['update_qps'] / lance:.2f}x |")
print(f"- restart {r['restart_s']:.3f} s (checkpoint at {r['restored_from']}, {r['replayed']} journal entries replayed) "
      f"vs fresh in-memory bulk build {m['build_s']:.3f} s: {r['restart_s'] / m['build_s']:.1%}")
print(f"- rss after reopen {r['rss_after_open_mb']:.0f} MiB (before opening {r['rss_before_open_mb']:.0f}); "
      f"in-memory run: peak {m['peak_rss_mb']:.0f} MiB, index {m['stats']['memory_mb']:.0f} MiB; raw vectors {r['raw_vectors_mb']:.0f} MiB")
print(f"- reopened search: {r['search_qps']:,.0f} qps, recall {r['recall_at_k']:.4f}; in memory {m['search_qps']:,.0f} qps, recall {m['recall_at_k']:.4f}")
PY
