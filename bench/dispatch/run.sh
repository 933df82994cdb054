#!/usr/bin/env bash
# The dispatcher is never the bottleneck: end-to-end tasks/s of `drover run` against
# `drover sim --preset instant` on this machine, beside (a) a raw HTTP load generator (wrk)
# against the same server and (b) the seed's Python loop (openai client + ThreadPoolExecutor);
# then the same job over 256 simulated backends, and peak RSS at 100k and 1M tasks.
#   bench/dispatch/run.sh            (N=200000 by default; needs wrk and the venv's openai)
#   PARTS=cost bench/dispatch/run.sh (only some parts: any of main,256,cost,cost-instant,rss;
#                                     default all but cost-instant)
set -euo pipefail
cd "$(dirname "$0")/../.."
DROVER=${DROVER:-target/release/drover}
PY=${DROVER_PYTHON:-.venv/bin/python}
N=${N:-200000}
tmp=$(mktemp -d)
SIM_PID=; SIM_PIDS=(); SIM_PREFIX=()
trap 'stop_sim "${SIM_PIDS[@]}"; rm -rf "$tmp"' EXIT

# start_sim PORTS_SPEC COUNT [SIM_ARGS...] → sets SIM_PID and B (the backend list). SIM_ARGS
# default to --preset instant; SIM_PREFIX (e.g. taskset) goes before the command.
start_sim() {
  local spec=$1 n=$2; shift 2
  [ $# -gt 0 ] || set -- --preset instant
  rm -f "$tmp/sim-$n.out"   # an earlier sim of the same size must not lend its ports
  "${SIM_PREFIX[@]}" "$DROVER" sim --ports "$spec" "$@" > "$tmp/sim-$n.out" 2>&1 &
  SIM_PID=$!; SIM_PIDS+=("$SIM_PID")
  for _ in $(seq 300); do [ "$(grep -c listening "$tmp/sim-$n.out" 2> /dev/null || true)" -ge "$n" ] && break; sleep 0.1; done
  B=$(grep -o '127.0.0.1:[0-9]*' "$tmp/sim-$n.out" | paste -sd,)
}
stop_sim() { # stop_sim [PIDS...] (default: the last started)
  [ $# -gt 0 ] || set -- "$SIM_PID"
  kill "$@" 2>/dev/null || true; wait "$@" 2>/dev/null || true
}
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

# drover's own cost per task (CPU time of the `drover run` process, not the server's) against
# the number of backends, the total in flight held at 1,024 (--max-per-backend 1024/B), with
# everything else held equal:
# - every answer is held 20 ms and counted running meanwhile (`--preset instant --api-overhead
#   20ms`), so that every fleet holds the same requests live (rate x 20 ms). Against instant
#   answers the sides differ: the adaptive controller trims a lone instant backend from 1,024
#   to 16 after 2 s ("the server holds less than half of what is in flight"), while 256
#   backends capped at 4 each keep 1,024 live, and drover's cost per task follows the requests
#   live (their connections, buffers and tasks fall out of cache), not the number of backends.
#   PARTS=cost-instant runs that comparison. (--slow-rate 1 --slow-delay 20ms does not do: it
#   delays before the engine, its gauges show nothing running, and the trim fires there too.)
# - the sims run on the last core and drover on the others (taskset, where there are >= 2
#   cores): a sim sharing drover's core evicts drover's caches and adds its noise to drover's
#   CPU time; real servers are on other machines.
# DROVER_CORES / SIM_CORES (taskset lists) override that split, e.g. on a larger machine
# DROVER_CORES=0-1 SIM_CORES=2-5 to give drover the 2 cores of the target. COMPARE="A B ..."
# names other drover binaries whose rows are interleaved with $DROVER's in every round, each
# with its own ratios (the sims are $DROVER's).
pin_drover=(); pin_sim=()
if [ "$(nproc)" -ge 2 ] && command -v taskset > /dev/null; then
  last=$(( $(nproc) - 1 ))
  pin_drover=(taskset -c "${DROVER_CORES:-0-$(( last - 1 ))}"); pin_sim=(taskset -c "${SIM_CORES:-$last}")
fi
# cost_run BIN BACKENDS COUNT → one line: binary, count, CPU s, tasks/s, p50 latency ms, RSS MB.
# CPU time and peak RSS come from the kernel's accounting of the child (no GNU time needed).
cost_run() {
  python3 - "$tmp/s.json" "$1" "$3" "${pin_drover[@]}" "$1" run "$tmp/tasks.jsonl" -o "$tmp/out.jsonl" \
    --overwrite -b "$2" -q --summary "$tmp/s.json" --max-per-backend $(( 1024 / $3 )) <<'PY'
import json, resource, subprocess, sys
summary, binary, count, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
subprocess.run(cmd, check=True)
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
s = json.load(open(summary))
cpu = ru.ru_utime + ru.ru_stime
print(binary, count, cpu, round(s["throughput"]["tasks_per_s"]), s["latency_ms"]["p50"], ru.ru_maxrss // 1024)
PY
}
cost_table() { # cost_table LABEL SIM_ARGS... : SIZES (1 16 64 256) backends, ROUNDS (5) interleaved rounds
  local label=$1; shift
  local sizes pids=() lists=() bins
  read -r -a sizes <<< "${SIZES:-1 16 64 256}"
  read -r -a bins <<< "$DROVER ${COMPARE:-}"
  local SIM_PREFIX=("${pin_sim[@]}")
  for n in "${sizes[@]}"; do
    start_sim "$(python3 -c "print(','.join(['0'] * $n))")" "$n" "$@"
    pids+=("$SIM_PID"); lists+=("$B")
  done
  # Every round runs each binary at each size; even rounds in the reverse order, so that a drift
  # of the machine's speed within a round (this VM's drifts by up to a third over ten minutes)
  # biases odd rounds' ratios one way and even rounds' the other instead of all the same way.
  local cases=() r c
  for bin in "${bins[@]}"; do for i in "${!sizes[@]}"; do cases+=("$bin $i"); done; done
  for r in $(seq "${ROUNDS:-5}"); do
    local order=("${cases[@]}")
    (( r % 2 )) || mapfile -t order < <(printf '%s\n' "${cases[@]}" | tac)
    for c in "${order[@]}"; do
      read -r bin i <<< "$c"
      cost_run "$bin" "${lists[$i]}" "${sizes[$i]}"
    done
  done > "$tmp/cost.txt"
  stop_sim "${pids[@]}"
  echo "$label ($N tasks, 1,024 in flight in all, drover ${pin_drover[*]:-unpinned}, sims ${pin_sim[*]:-unpinned}):"
  python3 - "$tmp/cost.txt" "$N" <<'PY'
import sys, collections, statistics
rows = collections.defaultdict(list)
n_tasks = int(sys.argv[2])
for line in open(sys.argv[1]):
    b, n, cpu, rate, p50, mb = line.split()
    rows[(b, int(n))].append((float(cpu) / n_tasks * 1e6, int(rate), float(p50), int(mb)))
# The machine's speed drifts between rounds: each round's ratio is to that round's run of the
# smallest fleet by the same binary, and the median of those is the figure; binaries compare
# by the same round's runs at the same fleet size.
first = next(iter(rows))[0]
for b in dict.fromkeys(k[0] for k in rows):
    sizes = sorted(n for bb, n in rows if bb == b)
    base = rows[(b, sizes[0])]
    print(f" {b}:")
    for n in sizes:
        r = rows[(b, n)]; us = statistics.median(x[0] for x in r)
        ratio = statistics.median(x[0] / y[0] for x, y in zip(r, base))
        vs = "" if b == first else f", {statistics.median(x[0] / y[0] for x, y in zip(r, rows[(first, n)])):.3f}x {first}"
        print(f"  {n:3} backends: {us:5.2f} us/task, {ratio:.3f}x the {sizes[0]}-backend run{vs} (median of rounds;"
              f" runs {' / '.join(f'{x[0]:.2f}' for x in r)}), {statistics.median(x[1] for x in r):.0f} tasks/s,"
              f" p50 latency {statistics.median(x[2] for x in r)} ms, RSS {max(x[3] for x in r)} MB")
PY
}
if part cost; then
  cost_table "answers held 20 ms" --preset instant --api-overhead 20ms
fi
if part cost-instant; then
  cost_table "instant answers" --preset instant
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
