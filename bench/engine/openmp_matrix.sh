#!/usr/bin/env bash
# OpenMP or not: single-stream and 8-stream tok/s of the embedded engine, built both ways, in
# interleaved rounds (so that load from other processes hits every variant alike), optionally
# while BUSY extra busy-loop processes compete for the cores.
#
#   bench/engine/openmp_matrix.sh NO_OMP_BIN OMP_BIN [ROUNDS] [BUSY]
#
# NO_OMP_BIN / OMP_BIN: the `throughput` example built without / with `--features openmp`, e.g.
#   CARGO_TARGET_DIR=/tmp/t-noomp cargo build --release -p drover-engine --example throughput
#   CARGO_TARGET_DIR=/tmp/t-omp   cargo build --release -p drover-engine --example throughput --features openmp
# Prints one line per run: round, variant, threads, load average, 1-stream and 8-stream tok/s.
set -euo pipefail
no_omp=$1 omp=$2 rounds=${3:-5} busy=${4:-0}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq 1 "$busy"); do
  python3 -c 'while True: pass' &
  pids+=($!)
done
run() { # name bin threads [env...]
  local name=$1 bin=$2 threads=$3; shift 3
  local out
  out=$(env "$@" timeout 300 "$bin" --levels 1,8 --repeat 1 --max-tokens 48 --threads "$threads" 2>&1) || { echo "$name failed: $out" >&2; return; }
  local one eight
  one=$(awk '$1=="1"{print $2}' <<<"$out")
  eight=$(awk '$1=="8"{print $2}' <<<"$out")
  printf '%s\t%-18s\tthreads=%s\tload=%s\t1-stream=%s\t8-stream=%s\n' "$round" "$name" "$threads" "$(cut -d' ' -f1 /proc/loadavg)" "$one" "$eight"
}
for round in $(seq 1 "$rounds"); do
  run no-openmp "$no_omp" 2
  run openmp "$omp" 2
  run openmp-passive "$omp" 2 OMP_WAIT_POLICY=passive
  run no-openmp "$no_omp" 1
  run openmp "$omp" 1
done
