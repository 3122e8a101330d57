#!/usr/bin/env bash
# The compose test: build the image, bring the three-node cluster of docker-compose.yml up,
# write and search through every node, kill the leader and bring it back, cut a follower off
# the network past a snapshot + purge and see it install the snapshot; `down -v` at the end.
#
# Usage: deploy/compose-test.sh   (needs a Docker engine and docker-compose or docker compose)
#   FRESHVEC_BIN: the client binary to use (default: build target/release/freshvec).
# Uses a project name of its own; prints the time from `up` to a healthy cluster.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  echo "compose test: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
project=freshvec-ci-$$
dc() { "${compose[@]}" -p "$project" -f "$root/docker-compose.yml" "$@"; }
bin=${FRESHVEC_BIN:-$root/target/release/freshvec}
work=$(mktemp -d)
cleanup() {
  status=$?
  if [ $status -ne 0 ]; then
    echo "compose test failed; container logs follow" >&2
    dc logs --tail 40 >&2 || true
  fi
  dc down -v --remove-orphans >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT

step() { echo "== $*"; }
api() { echo "127.0.0.1:$((7857 + 10 * $1))"; } # node1 7867, node2 7877, node3 7887
container() { dc ps -q "node$1"; }
network=$(echo "${project}_freshvec" | tr -d '.')
wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local until=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    [ $SECONDS -lt $until ] || { echo "timed out: $what" >&2; exit 1; }
    sleep 0.2
  done
}
healthy() { [ "$(docker inspect -f '{{.State.Health.Status}}' "$(container "$1")" 2>/dev/null)" = healthy ]; }
all_healthy() { healthy 1 && healthy 2 && healthy 3; }
st() { "$bin" status --server "$(api "$1")" 2>/dev/null; }
field() { st "$1" | grep -oE "$2 [0-9]+" | head -1 | grep -oE '[0-9]+$' || true; }
leader=""
find_leader() {
  for i in "$@"; do
    if st "$i" | grep -q ROLE_LEADER; then leader=$i; return 0; fi
  done
  return 1
}
digests() { st "$1" | awk '/^collection/ {on=1; next} on {print $1, $2, $3}'; }
converged() { # converged IDS...: same applied index and digests on every node
  local a b first=$1; shift
  a="$(field "$first" applied) $(digests "$first")"
  for i in "$@"; do
    b="$(field "$i" applied) $(digests "$i")"
    [ "$a" = "$b" ] || return 1
  done
  [ -n "$(digests "$first")" ]
}
installed_at_least() { [ "$(field "$1" installed)" -ge "$2" ] 2>/dev/null; }

step "building the image and the client"
[ -n "${FRESHVEC_BIN:-}" ] || cargo build --release --quiet -p freshvec-server
"$root/deploy/build-image.sh" freshvec:latest

# Rows for writes: four fvecs files of 500 random 32-dimensional vectors.
python3 - "$work" <<'PY'
import random, struct, sys
random.seed(7)
for f in range(4):
    with open(f"{sys.argv[1]}/part{f}.fvecs", "wb") as out:
        for _ in range(500):
            out.write(struct.pack("<i", 32))
            out.write(struct.pack("<32f", *[random.uniform(-1, 1) for _ in range(32)]))
PY
write() { # write NODE PART FIRST_ID
  "$bin" upsert --collection ci --fvecs "$work/part$2.fvecs" --first-id "$3" --batch 100 \
    --server "$(api "$1")" >/dev/null
}

step "docker compose up"
t0=$SECONDS
start_ns=$(date +%s%N)
dc up -d >/dev/null 2>&1
wait_for 120 "three healthy nodes" all_healthy
echo "healthy three-node cluster $(( ($(date +%s%N) - start_ns) / 1000000 )) ms after up"
wait_for 30 "a leader" find_leader 1 2 3

step "write and search through every node"
"$bin" collections create ci --dimension 32 --server "$(api 2)" >/dev/null
for n in 1 2 3; do write "$n" 0 0; done
for n in 1 2 3; do
  "$bin" search --collection ci --vector "$(python3 -c "print(','.join(['0.1']*32))")" --k 5 \
    --server "$(api "$n")" | grep -q "^ *1 "
done
wait_for 30 "convergence" converged 1 2 3

step "docker kill the leader (node $leader), keep writing, bring it back"
old=$leader
docker kill "$(container "$old")" >/dev/null
others=(); for i in 1 2 3; do [ "$i" != "$old" ] && others+=("$i"); done
wait_for 30 "a new leader" find_leader "${others[@]}"
echo "node $leader leads"
write "${others[0]}" 1 1000
write "${others[1]}" 1 1000
docker start "$(container "$old")" >/dev/null
wait_for 90 "node $old healthy again" healthy "$old"
wait_for 60 "convergence after the restart" converged 1 2 3
echo "digests equal: $(digests 1 | tr '\n' ' ')"

step "cut a follower off, write past a forced snapshot and purge, reconnect"
find_leader 1 2 3
follower=$(( leader % 3 + 1 ))
before=$(field "$follower" installed)
docker network disconnect "$network" "$(container "$follower")"
write "$leader" 2 2000
write "$leader" 3 3000
# Snapshot and purge on both connected nodes: the reconnected follower's higher term may force
# an election, and a new leader that still held the whole log would catch it up from the log.
for n in 1 2 3; do
  [ "$n" = "$follower" ] && continue
  "$bin" cluster snapshot --server "$(api "$n")"
  "$bin" cluster purge --server "$(api "$n")"
done
docker network connect --ip "172.28.0.$((10 + follower))" "$network" "$(container "$follower")"
wait_for 90 "node $follower to install a snapshot" installed_at_least "$follower" $((before + 1))
wait_for 60 "convergence after the snapshot" converged 1 2 3
st "$follower"
echo "compose test passed in $((SECONDS - t0)) s"
