#!/usr/bin/env bash
# How many requests/s the `instant` preset sustains (the ceiling of the dispatcher benchmark).
# Closed-loop reqwest clients on keep-alive connections, 16-token chat answers, 5 s per point:
#   1. server in the client's process (shares its runtime and the cores);
#   2. a separate `drover sim --preset instant` process (shares only the cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --quiet --release -p drover-sim --example instant_rps
cargo build --quiet --release -p drover --no-default-features
target=${CARGO_TARGET_DIR:-$root/target}
bench=$target/release/examples/instant_rps
for c in 16 64 256; do "$bench" --concurrency "$c" --seconds 5; done

out=$(mktemp)
"$target/release/drover" sim --preset instant --ports 0 >"$out" &
sim=$!
trap 'kill -TERM $sim 2>/dev/null; wait $sim 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q listening "$out" && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$out")
for c in 16 64; do "$bench" --concurrency "$c" --seconds 5 --url "$url"; done
"$bench" --concurrency 64 --seconds 5 --url "$url" --stream
