#!/usr/bin/env bash
# Side-by-side benchmark: the shared peers and freshvec on the same TEXMEX folder, one after
# the other in one script run (never concurrently: the machine has two cores).
#
#   scripts/compare.sh DATA_DIR OUT_DIR [extra freshvec bench flags...]
#
# freshvec runs once per posting encoding in ENCODINGS (default "int8 f32"); PEERS picks the
# peers (default lancedb,faiss,hnswlib,flat).
# Needs a Python venv with the shared bench requirements (PEERS_PY, default
# ~/.venvs/peers/bin/python) and the shared bench folder (SHARED_BENCH, default ../shared/bench).
set -euo pipefail
data=$1; out=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PEERS_PY:-$HOME/.venvs/peers/bin/python}
shared=${SHARED_BENCH:-$here/../shared/bench}
name=$(basename "$data")
mkdir -p "$out"
cargo build --release -q -p freshvec-server --manifest-path "$here/Cargo.toml"
"$py" "$shared/peers.py" --data "$data" --peers ${PEERS:-lancedb,faiss,hnswlib,flat} \
  --reps "${REPS:-1}" --sweep --out "$out/peers-$name.json"
ours=()
for e in ${ENCODINGS:-int8 f32}; do
  "$here/target/release/freshvec" bench --data "$data" --sweep --encoding "$e" \
    --json "$out/freshvec-$name-$e.json" "$@"
  ours+=("$out/freshvec-$name-$e.json")
done
python3 "$here/scripts/summarize.py" "$out/peers-$name.json" "${ours[@]}"
