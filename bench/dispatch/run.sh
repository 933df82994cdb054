#!/usr/bin/env bash
# The dispatcher is never the bottleneck: end-to-end tasks/s of `drover run` against
# `drover sim --preset instant` on this machine, beside (a) a raw HTTP load generator (wrk)
# against the same server and (b) the seed's Python loop (openai client + ThreadPoolExecutor);
# then the same job over 256 simulated backends, and peak RSS at 100k and 1M tasks.
#   bench/dispatch/run.sh            (N=200000 by default; needs wrk and the venv's openai)
#   PARTS=cost bench/dispatch/run.sh (only some parts: any of main,256,cost,rss; default all)
set -euo pipefail
cd "$(dirname "$0")/../.."
DROVER=${DROVER:-target/release/drover}
PY=${DROVER_PYTHON:-.venv/bin/python}
N=${N:-200000}
tmp=$(mktemp -d)
SIM_PID=
trap 'stop_sim; rm -rf "$tmp"' EXIT

start_sim() { # start_sim PORTS_SPEC COUNT → sets SIM_PID and B (the backend list)
  "$DROVER" sim --ports "$1" --preset instant > "$tmp/sim-$2.out" 2>&1 &
  SIM_PID=$!
  local n=0
  for _ in $(seq 300); do n=$(grep -c listening "$tmp/sim-$2.out" || true); [ "$n" -ge "$2" ] && break; sleep 0.1; done
  B=$(grep -o '127.0.0.1:[0-9]*' "$tmp/sim-$2.out" | paste -sd,)
}
stop_sim() { kill "$SIM_PID" 2>/dev/null || true; wait "$SIM_PID" 2>/dev/null || true; }
rate() { python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"{s['throughput']['tasks_per_s']:.0f}\")" "$1"; }

python3 bench/dispatch/make_tasks.py "$N" > "$tmp/tasks.jsonl"
python3 bench/dispatch/make_tasks.py 20000 > "$tmp/tasks20k.jsonl"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"

PARTS=${PARTS:-main,256,cost,rss}
part() { [[ ",$PARTS," == *",$1,"* ]]; }

if part main; then
start_sim 0 1
for i in 1 2 3; do
  "$DROVER" run "$tmp/tasks.jsonl" -o "$tmp/out.jsonl" --overwrite -b "$B" -q --summary "$tmp/s.json"
  echo "drover run, 1 backend, $N tasks: $(rate "$tmp/s.json") tasks/s"
done
port=${B##*:}
wrk -t2 -c64 -d10s -s bench/dispatch/post.lua "http://127.0.0.1:$port/v1/chat/completions" | grep -E "Requests/sec"
for w in 4 64; do
  VLLM_PORTS=$port MAX_WORKERS=$w MODEL=drover-sim-instant "$PY" bench/baselines/seed_threadpool.py "$tmp/tasks20k.jsonl" "$tmp/seed.jsonl" | sed "s/^/MAX_WORKERS=$w /"
done
stop_sim
fi

if part 256; then
start_sim "$(python3 -c 'print(",".join(["0"]*256))')" 256
for i in 1 2; do
  "$DROVER" run "$tmp/tasks.jsonl" -o "$tmp/out.jsonl" --overwrite -b "$B" -q --summary "$tmp/s.json"
  echo "drover run, 256 backends, $N tasks: $(rate "$tmp/s.json") tasks/s"
done
stop_sim
fi

# drover's own cost per task (its CPU time, not the server's) at the same total concurrency:
# 1 backend x 1024 in flight against 256 backends x 4, each sim in its own process. The total
# is pinned (--mode concurrent --workers 1024): in adaptive mode the trim takes a lone instant
# backend's limit down to 16 in some runs, and the two sides then ran at different loads.
cost() { # cost BACKENDS LABEL
  /usr/bin/time -f "%M %U %S" -o "$tmp/t" "$DROVER" run "$tmp/tasks.jsonl" -o "$tmp/out.jsonl" --overwrite \
    -b "$1" -q --summary "$tmp/s.json" --mode concurrent --workers 1024
  read -r kb user sys < "$tmp/t"
  echo "$2: $(rate "$tmp/s.json") tasks/s, drover CPU $(python3 -c "print(round(($user + $sys) / $N * 1e6, 1))") us/task, peak RSS $((kb / 1024)) MB"
}
if part cost; then
start_sim 0 1; B1=$B; S1=$SIM_PID
start_sim "$(python3 -c 'print(",".join(["0"]*256))')" 256; B256=$B
for i in 1 2 3; do cost "$B1" "1 backend x 1024"; cost "$B256" "256 backends x 4"; done
stop_sim; kill "$S1" 2>/dev/null; wait "$S1" 2>/dev/null || true
fi

if part rss; then
start_sim 0 1
for n in 100000 1000000; do
  python3 bench/dispatch/make_tasks.py "$n" > "$tmp/rss.jsonl"
  /usr/bin/time -f "%M" -o "$tmp/rss" "$DROVER" run "$tmp/rss.jsonl" -o "$tmp/out.jsonl" --overwrite -b "$B" -q --summary "$tmp/s.json"
  echo "peak RSS at $n tasks: $(( $(cat "$tmp/rss") / 1024 )) MB ($(rate "$tmp/s.json") tasks/s)"
done
stop_sim
fi
