#!/usr/bin/env bash
# Side-by-side benchmark: every peer of both shared peer scripts and freshvec on the same
# TEXMEX folder, one after the other in one script run (never concurrently: the machine has two
# cores), then one table and one recall/QPS plot of all of them.
#
#   scripts/compare.sh DATA_DIR OUT_DIR [extra freshvec bench flags...]
#
# PEERS picks peers.py's peers (default lancedb,faiss,hnswlib,flat); STRONG_PEERS picks
# strong_peers.py's (default: all of them, Qdrant's engine included); ENCODINGS the freshvec
# posting encodings (default int8). freshvec sweeps nprobe and measures its calibrated default
# and target recalls 0.9, 0.95 and 0.99. Writes OUT_DIR/NAME.md (the table) and
# OUT_DIR/NAME-recall-qps.svg. Needs a Python venv with the shared bench requirements
# (PEERS_PY, default ~/.venvs/peers/bin/python) and the shared bench folder (SHARED_BENCH,
# default ../shared/bench).
set -euo pipefail
data=$1; out=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
py=${PEERS_PY:-$HOME/.venvs/peers/bin/python}
shared=${SHARED_BENCH:-$here/../shared/bench}
name=$(basename "$data")
mkdir -p "$out"
cargo build --release -q -p freshvec-server --manifest-path "$here/Cargo.toml"
"$py" "$shared/peers.py" --data "$data" --peers "${PEERS:-lancedb,faiss,hnswlib,flat}" \
  --reps "${REPS:-1}" --sweep --out "$out/peers-$name.json"
strong=()
if [ "${STRONG_PEERS-all}" != none ]; then
  sp=()
  [ "${STRONG_PEERS:-all}" != all ] && sp=(--peers "$STRONG_PEERS")
  "$py" "$shared/strong_peers.py" "$data" "$out/strong-$name.json" "${sp[@]}"
  strong=("$out/strong-$name.json")
fi
ours=()
for e in ${ENCODINGS:-int8}; do
  "$here/target/release/freshvec" bench --data "$data" --sweep --encoding "$e" \
    --sweep-nprobe "${SWEEP_NPROBE:-4,8,16,24,32,48,64,96,128,192,256}" --targets 0.9,0.95,0.99 \
    --json "$out/freshvec-$name-$e.json" "$@"
  ours+=("$out/freshvec-$name-$e.json")
done
python3 "$here/scripts/summarize.py" "$out/peers-$name.json" "${strong[@]}" "${ours[@]}" | tee "$out/$name.md"
python3 "$here/scripts/plot_sweep.py" "$out/$name-recall-qps.svg" "$name: recall@10 against QPS, one query at a time" \
  "$out/peers-$name.json" "${strong[@]}" "${ours[@]}"
echo "wrote $out/$name.md and $out/$name-recall-qps.svg"
