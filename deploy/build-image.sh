#!/usr/bin/env bash
# Builds the freshvec image offline: a statically linked binary (gnu target, +crt-static)
# copied into an image FROM scratch. Usage: deploy/build-image.sh [TAG] (default freshvec:latest)
set -euo pipefail
tag=${1:-freshvec:latest}
root=$(cd "$(dirname "$0")/.." && pwd)
target=x86_64-unknown-linux-gnu
CARGO_PROFILE_RELEASE_DEBUG=0 CARGO_PROFILE_RELEASE_STRIP=true \
  RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --quiet --target "$target" -p freshvec-server --manifest-path "$root/Cargo.toml"
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp "${CARGO_TARGET_DIR:-$root/target}/$target/release/freshvec" "$root/deploy/Dockerfile" "$ctx/"
DOCKER_BUILDKIT=0 docker build --quiet -t "$tag" "$ctx" >/dev/null
echo "built $tag"
