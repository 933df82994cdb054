# Sourced by the one-GPU scripts (proof.sh, curve.sh) on the lent machine: installs the carried
# wheels, makes the random 1.1B model and starts 4 `transformers serve --continuous-batching`
# instances on GPU 0, ports 8001-8004 (the recipe in shared/gpu/README.md). Sets D (drover) and
# OUT; stop the fleet with `.gpu/serve-tf.sh stop`.
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
