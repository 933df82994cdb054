#!/usr/bin/env bash
# GPU proof (issue: prove the headline on a real GPU engine). Runs on the lent GPU machine in
# the repo root, with .gpu/ (drover binary, shared/gpu recipe files) and .whl/ carried; see
# docs/benchmarks.md. Starts 4 `transformers serve --continuous-batching` instances on one GPU
# (ports 8001-8004, as the seed runs its fleet), then:
#   1. one plain `drover run` of 1,000 tasks with its HTML report (RUN=0 skips it);
#   2. `drover bench` of the seed's modes: serial and concurrent with N = 4, each stopped at
#      SEED_BUDGET and rated on the tokens it received (SEED=0 skips it);
#   3. `drover bench` of adaptive and the fixed sweep (SWEEP; SWEEP1 for the first time) on
#      TASKS tasks, each to the end, REPEAT times (bench.json, bench-2.json, ...);
# and stops the fleet. Everything lands in $OUT/results.tgz (machine.sh: the device returns few
# files), with the logs beside it; the adaptive limits' changes, hedges and retries are logged
# (DROVER_LOG) into run.log and bench.log, and after each step the engines' answers by HTTP
# status and their error lines are counted into engine-health.txt.
. bench/gpu/fleet1.sh
B=8001,8002,8003,8004
LOG=drover::limit=debug,drover::hedge=debug,drover::retry=debug
health() { # health STEP: answers by status and error lines per engine since the fleet started
  for f in /tmp/engine-logs/serve-*.log; do
    echo "$1 $(basename "$f"): $(grep -o 'HTTP/1.1" [0-9]*' "$f" | sort | uniq -c | tr -s ' ' | paste -sd,)" \
      "errors: $(grep -ciE 'error|traceback' "$f")" \
      "engine failures: $(grep -cE 'OutOfMemoryError|^RuntimeError' "$f")"
  done >> "$OUT/engine-health.txt"
}
if [ "${RUN:-1}" = 1 ]; then
  python3 - <<'PY' > /tmp/run1000.jsonl
import json, random
random.seed(11)
words = "the report shows quarterly revenue growth across regions while costs remained stable analysts expect".split()
for i in range(1000):
    print(json.dumps({"id": f"gpu-{i}", "prompt": " ".join(random.choice(words) for _ in range(150)), "max_tokens": 128}))
PY
  DROVER_LOG=$LOG timeout 200 "$D" run /tmp/run1000.jsonl -o /tmp/run1000.results.jsonl -b $B --max-wait 30s \
    --report "$OUT/run.html" --summary "$OUT/run-summary.json" > "$OUT/run.log" 2>&1
  wc -l /tmp/run1000.results.jsonl >> "$OUT/run.log"; grep -v DEBUG "$OUT/run.log" | tail -8
  health run
fi
if [ "${SEED:-1}" = 1 ]; then
  "$D" bench -b $B --tasks 1000 --prompt-tokens 200 --max-tokens 128 --modes serial,concurrent \
    --budget ${SEED_BUDGET:-40s} --json "$OUT/bench-seed.json" > "$OUT/bench-seed.log" 2>&1
  tail -6 "$OUT/bench-seed.log"
fi
for i in $(seq ${REPEAT:-1}); do
  sfx=$([ "$i" = 1 ] || echo "-$i")
  DROVER_LOG=$LOG "$D" bench -b $B --tasks ${TASKS:-1500} --prompt-tokens 200 --max-tokens 128 --modes adaptive \
    --sweep $([ "$i" = 1 ] && echo "${SWEEP1:-${SWEEP:-1024,2048}}" || echo "${SWEEP:-1024,2048}") --budget ${BUDGET:-300s} \
    --json "$OUT/bench$sfx.json" --report "$OUT/bench$sfx.html" > "$OUT/bench$sfx.log" 2>&1
  grep -v DEBUG "$OUT/bench$sfx.log" | tail -10
  health "bench$sfx"
done
.gpu/serve-tf.sh stop
for f in /tmp/engine-logs/serve-*.log; do tail -5 "$f"; done > "$OUT/engine-tail.txt" 2>&1
