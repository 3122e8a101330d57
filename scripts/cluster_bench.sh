#!/usr/bin/env bash
# Replication figures, all in one run on this machine (a benchmark, never a test):
#   1. write throughput of one node, then of a three-node cluster (batches of BATCH vectors
#      from DATA/base.fvecs, fsync on), and their ratio;
#   2. the time a follower takes to install a snapshot of the whole of DATA/base.fvecs after
#      the leader purged its log past the follower's;
#   3. the time to elect a new leader after the leader is killed with SIGKILL.
#
# Usage: scripts/cluster_bench.sh DATA_DIR [OUT_DIR]
#   ROWS (default: every row), BATCH (1024), CONCURRENCY (4) set the write load.
set -euo pipefail

data=${1:?usage: $0 DATA_DIR [OUT_DIR]}
out=${2:-$(mktemp -d)}
rows=${ROWS:-}
batch=${BATCH:-1024}
conc=${CONCURRENCY:-4}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$root/target/release/freshvec
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
mkdir -p "$out"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

dim=$(python3 -c "import struct,sys; print(struct.unpack('<i', open(sys.argv[1],'rb').read(4))[0])" "$data/base.fvecs")
limit=()
[ -n "$rows" ] && limit=(--limit "$rows")

port() { python3 -c "import socket,sys; s=socket.socket(); s.bind((sys.argv[1],0)); print(s.getsockname()[1])" "$1"; }
declare -A api peer pid
start() { # start ID PEERS
  local id=$1
  "$bin" serve --node-id "$id" --listen "127.0.0.$((20 + id)):${api[$id]}" \
    --peer-listen "127.0.0.$((20 + id)):${peer[$id]}" --peers "$2" --metrics-listen off \
    --data-dir "$work/node$id" --snapshot-entries 1000000 --keep-entries 10 \
    2>>"$out/node$id.log" &
  pid[$id]=$!
  pids+=("$!")
}
addr() { echo "127.0.0.$((20 + $1)):${api[$1]}"; }
field() { # field ID REGEX: the first number after REGEX in `freshvec status`
  "$bin" status --server "$(addr "$1")" 2>/dev/null | grep -oE "$2 [0-9]+" | head -1 | grep -oE '[0-9]+$' || true
}
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local until=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    [ $SECONDS -lt $until ] || { echo "timed out: $what" >&2; exit 1; }
    sleep 0.05
  done
}
is_leader() { "$bin" status --server "$(addr "$1")" 2>/dev/null | grep -q ROLE_LEADER; }
leader=""
find_leader() { # find_leader IDS...: sets $leader to the first of IDS that leads
  for i in "$@"; do
    if is_leader "$i"; then leader=$i; return 0; fi
  done
  return 1
}
installed() { [ "$(field "$1" "installed")" = "$2" ]; }
applied_at_least() { [ "$(field "$1" "applied")" -ge "$2" ] 2>/dev/null; }
for id in 1 2 3; do api[$id]=$(port "127.0.0.$((20 + id))"); peer[$id]=$(port "127.0.0.$((20 + id))"); done
all="1=127.0.0.21:${peer[1]},2=127.0.0.22:${peer[2]},3=127.0.0.23:${peer[3]}"

load() { # load ID: create the collection and write the dataset through node ID
  "$bin" collections create bench --dimension "$dim" --server "$(addr "$1")" >/dev/null
  "$bin" upsert --collection bench --fvecs "$data/base.fvecs" --batch "$batch" \
    --concurrency "$conc" "${limit[@]}" --server "$(addr "$1")" 2>/dev/null | tail -1
}
rate() { grep -oE '[0-9]+ vectors/s' <<<"$1" | grep -oE '^[0-9]+'; }

echo "== one node"
start 1 "1=127.0.0.21:${peer[1]}"
wait_for 30 "node 1 leads" is_leader 1
single=$(load 1); echo "$single"
kill -9 "${pid[1]}"; wait "${pid[1]}" 2>/dev/null || true
rm -rf "$work/node1"

echo "== three nodes"
for id in 1 2 3; do start "$id" "$all"; done
wait_for 60 "a leader" find_leader 1 2 3
replicated=$(load "$leader"); echo "$replicated"
s=$(rate "$single"); r=$(rate "$replicated")
echo "replicated/single: $(python3 -c "print(f'{$r/$s:.2f}')") ($r vs $s vectors/s)"

echo "== snapshot install"
follower=$(( leader % 3 + 1 ))
kill -9 "${pid[$follower]}"; wait "${pid[$follower]}" 2>/dev/null || true
# Writes the follower misses (the first batch again), then a snapshot and a purge past them.
"$bin" upsert --collection bench --fvecs "$data/base.fvecs" --limit "$batch" --batch "$batch" \
  --server "$(addr "$leader")" 2>/dev/null | tail -1
"$bin" cluster snapshot --server "$(addr "$leader")"
"$bin" cluster purge --server "$(addr "$leader")"
t0=$(date +%s.%N)
start "$follower" "$all"
target=$(field "$leader" "applied")
wait_for 600 "follower install" installed "$follower" 1
wait_for 600 "follower catch-up" applied_at_least "$follower" "$target"
t1=$(date +%s.%N)
install_ms=$(field "$follower" "last install")
echo "follower $follower installed the snapshot in ${install_ms} ms (first chunk to swap); restart to caught up $(python3 -c "print(f'{$t1-$t0:.2f}')") s"

echo "== leader election after SIGKILL"
kill -9 "${pid[$leader]}"
t0=$(date +%s.%N)
others=(); for id in 1 2 3; do [ "$id" != "$leader" ] && others+=("$id"); done
old=$leader
wait_for 60 "a new leader" find_leader "${others[@]}"
t1=$(date +%s.%N)
echo "node $leader leads after node $old was killed: new leader after $(python3 -c "print(f'{($t1-$t0)*1000:.0f}')") ms (election timeout 800-1600 ms)"
