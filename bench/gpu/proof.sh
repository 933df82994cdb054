#!/usr/bin/env bash
# GPU proof (issue: prove the headline on a real GPU engine). Runs on the lent GPU machine in
# the repo root, with .gpu/ (drover binary, shared/gpu recipe files) and .whl/ carried; see
# docs/benchmarks.md. Starts 4 `transformers serve --continuous-batching` instances on one GPU
# (ports 8001-8004, as the seed runs its fleet), then:
#   1. one plain `drover run` of 1,000 tasks with its HTML report;
#   2. `drover bench`: serial, concurrent with N = 4, adaptive, and a fixed sweep 64/256/1024
#      (the slow fixed points are rated over --budget; the others run to the end);
# and stops the fleet. Everything lands in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.gpu/drover
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
echo "cpus: $(nproc)" | tee -a "$OUT/gpu.txt"
t0=$SECONDS
python3 .gpu/make_model.py --tokenizer .gpu/tok32k --out /tmp/m1b --preset 1b --device cuda > "$OUT/model.txt" 2>&1
.gpu/serve-tf.sh stop >/dev/null 2>&1
setsid -w .gpu/serve-tf.sh start /tmp/m1b 4 4 8001 --cb-num-blocks 1500 --cb-max-batch-tokens 8192 2>&1 | tee "$OUT/serve.txt"
echo "fleet ready after $((SECONDS - t0))s" | tee -a "$OUT/serve.txt"
python3 - <<'PY' > /tmp/run1000.jsonl
import json, random
random.seed(11)
words = "the report shows quarterly revenue growth across regions while costs remained stable analysts expect".split()
for i in range(1000):
    print(json.dumps({"id": f"gpu-{i}", "prompt": " ".join(random.choice(words) for _ in range(150)), "max_tokens": 128}))
PY
timeout 150 "$D" run /tmp/run1000.jsonl -o /tmp/run1000.results.jsonl -b 8001,8002,8003,8004 --max-wait 30s \
  --report "$OUT/run.html" --summary "$OUT/run-summary.json" 2>&1 | tee "$OUT/run.log"
wc -l /tmp/run1000.results.jsonl | tee -a "$OUT/run.log"
"$D" bench -b 8001,8002,8003,8004 --tasks 1000 --prompt-tokens 200 --max-tokens 128 \
  --modes serial,concurrent,adaptive --sweep 64,256,1024 --budget ${BUDGET:-60s} \
  --json "$OUT/bench.json" --report "$OUT/bench.html" 2>&1 | tee "$OUT/bench.log"
.gpu/serve-tf.sh stop
for f in /tmp/engine-logs/serve-*.log; do tail -5 "$f"; done > "$OUT/engine-tail.txt" 2>&1
