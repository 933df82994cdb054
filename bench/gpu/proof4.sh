#!/usr/bin/env bash
# The seed's exact setting on a 4-GPU machine: one `transformers serve --continuous-batching`
# instance per GPU (CUDA_VISIBLE_DEVICES per instance), started and stopped by `drover launch
# --cmd`, ports 8001-8004. Then the same measurements as proof.sh: one plain `drover run` of
# 1,000 tasks with its HTML report, and `drover bench` (serial, concurrent N=4, adaptive, fixed
# sweep). Runs on the lent machine from the repo root with .gpu/ and .whl/ carried; results in
# $OUT/results.tgz (machine.sh).
. bench/gpu/machine.sh
"$D" launch --cmd 'python3 -m transformers.cli.transformers serve {model} --continuous-batching --device cuda --dtype bfloat16 --host {host} --port {port} --log-level warning --cb-num-blocks 1500 --cb-max-batch-tokens 8192' \
  --model /tmp/m1b --gpus ${GPUS:-0,1,2,3} --log-dir "$OUT/launch-logs" > /tmp/backends.txt 2> "$OUT/launch.txt" &
launch=$!
until [ -s /tmp/backends.txt ] || ! kill -0 $launch 2>/dev/null; do sleep 1; done
B=$(cat /tmp/backends.txt); echo "launch ready: $B after $((SECONDS - t0))s" | tee -a "$OUT/launch.txt"
[ -n "$B" ] || { cat "$OUT/launch.txt"; exit 1; }
# transformers creates its engine and KV cache on the first request: warm each instance once.
for p in ${B//,/ }; do curl -sf -m 300 "http://127.0.0.1:${p##*:}/v1/completions" -H 'Content-Type: application/json' -d '{"prompt":"warm up","max_tokens":8}' >/dev/null; done
echo "warm after $((SECONDS - t0))s" | tee -a "$OUT/launch.txt"
python3 - <<'PY' > /tmp/run1000.jsonl
import json, random
random.seed(11)
words = "the report shows quarterly revenue growth across regions while costs remained stable analysts expect".split()
for i in range(1000):
    print(json.dumps({"id": f"gpu-{i}", "prompt": " ".join(random.choice(words) for _ in range(150)), "max_tokens": 128}))
PY
[ "${RUN:-1}" = 1 ] && timeout 150 "$D" run /tmp/run1000.jsonl -o /tmp/run1000.results.jsonl -b "$B" --max-wait 30s \
  --report "$OUT/run.html" --summary "$OUT/run-summary.json" > "$OUT/run.log" 2>&1
tail -8 "$OUT/run.log"; wc -l /tmp/run1000.results.jsonl
"$D" bench -b "$B" --tasks ${TASKS:-1000} --prompt-tokens 200 --max-tokens 128 \
  --modes ${MODES:-serial,concurrent,adaptive} --sweep ${SWEEP:-256,1024} --budget ${BUDGET:-60s} \
  --json "$OUT/bench.json" --report "$OUT/bench.html" > "$OUT/bench.log" 2>&1
tail -14 "$OUT/bench.log"
kill -TERM $launch; wait $launch; tail -3 "$OUT/launch.txt"
