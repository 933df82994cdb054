#!/usr/bin/env bash
# Aggregate generation throughput of the embedded engine at 1, 4, 8 and 16 concurrent requests,
# in-process and through the HTTP front. See docs/benchmarks.md for recorded numbers.
#
#   bench/engine/throughput.sh [extra args for the example, e.g. --threads 1 --repeat 5]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p drover-engine --example throughput
bin=${CARGO_TARGET_DIR:-target}/release/examples/throughput
echo "# $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "## engine (in-process submit)"
"$bin" --levels 1,4,8,16 "$@"
echo "## HTTP (non-streaming /v1/chat/completions on 127.0.0.1)"
"$bin" --levels 1,4,8,16 --http "$@"
