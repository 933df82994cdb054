#!/usr/bin/env bash
# GPU proof, part 1 (on the lent GPU machine, in the repo root, with .gpu/ and .whl/ carried;
# see docs/benchmarks.md): 4 `transformers serve --continuous-batching` instances on one GPU
# (ports 8001-8004, as the seed runs its fleet), left running in their own session for part 2,
# then `drover bench`: serial, concurrent with N = 4, adaptive, and a fixed sweep.
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
D=.gpu/drover
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
nproc | sed 's/^/cpus: /' | tee -a "$OUT/gpu.txt"
t0=$SECONDS
python3 .gpu/make_model.py --tokenizer .gpu/tok32k --out /tmp/m1b --preset 1b --device cuda | tee "$OUT/model.txt"
setsid -w .gpu/serve-tf.sh start /tmp/m1b 4 4 8001 --cb-num-blocks 1500 --cb-max-batch-tokens 8192 2>&1 | tee "$OUT/serve.txt"
echo "fleet ready after $((SECONDS - t0))s" | tee -a "$OUT/serve.txt"
curl -s -o /dev/null -w "models: %{http_code}\n" http://127.0.0.1:8001/v1/models | tee -a "$OUT/serve.txt"
curl -s -o /dev/null -w "metrics: %{http_code}\n" http://127.0.0.1:8001/metrics | tee -a "$OUT/serve.txt"
"$D" bench -b 8001,8002,8003,8004 --tasks 1000 --prompt-tokens 200 --max-tokens 128 \
  --modes serial,concurrent,adaptive --sweep 64,256 --budget ${BUDGET:-40s} \
  --json "$OUT/bench1.json" --report "$OUT/bench1.html" 2>&1 | tee "$OUT/bench1.log"
