#!/usr/bin/env bash
# Reproduces the simulator's calibration table (docs/benchmarks.md): the five checks of
# vllm-facts.md §6, measured over HTTP with closed-loop streaming clients against one in-process
# simulated instance at time scale 0.25 (results converted back to simulated time).
#
#   bench/sim/calibrate.sh            # full run, ~2 minutes of wall time
#   bench/sim/calibrate.sh --quick    # shorter windows, noisier
#   bench/sim/calibrate.sh --only 3   # one check
# Exits non-zero if a check misses its tolerance (±20%).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
exec cargo run --quiet --release -p drover-sim --example calibrate -- "$@"
