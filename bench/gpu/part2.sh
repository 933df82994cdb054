#!/usr/bin/env bash
# GPU proof, part 2 (same warm machine, fleet from part 1 still up): the sweep's larger points,
# one plain `drover run` of 1,000 tasks with its HTML report, then the fleet is stopped.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.gpu/drover
export PYTHONPATH=/tmp/site
"$D" bench -b 8001,8002,8003,8004 --tasks 1000 --prompt-tokens 200 --max-tokens 128 \
  --modes adaptive --sweep 512,1024 --budget ${BUDGET:-60s} \
  --json "$OUT/bench2.json" --report "$OUT/bench2.html" 2>&1 | tee "$OUT/bench2.log"
python3 - <<'PY' > /tmp/run1000.jsonl
import json, random
random.seed(11)
words = "the report shows quarterly revenue growth across regions while costs remained stable analysts expect".split()
for i in range(1000):
    print(json.dumps({"id": f"gpu-{i}", "prompt": " ".join(random.choice(words) for _ in range(150)), "max_tokens": 128}))
PY
"$D" run /tmp/run1000.jsonl -o /tmp/run1000.results.jsonl -b 8001,8002,8003,8004 \
  --report "$OUT/run.html" --summary "$OUT/run-summary.json" 2>&1 | tee "$OUT/run.log"
wc -l /tmp/run1000.results.jsonl | tee -a "$OUT/run.log"
.gpu/serve-tf.sh stop
