# Sourced first by the GPU scripts (fleet1.sh for proof.sh and curve.sh; proof4.sh) on the lent
# machine, from the repo root with .gpu/ and .whl/ carried: installs the carried wheels, records
# the GPUs, makes the random 1.1B model (/tmp/m1b) and sets D (drover), t0 and OUT.
# Results are written under OUT=/tmp/res and packed into $FINAL/results.tgz (FINAL = the caller's
# $OUT) with the *.log files beside it, also when the call's time limit stops the script: the
# device returns only a few files.
set -uo pipefail
FINAL=${OUT:-/tmp/out}; mkdir -p "$FINAL"
OUT=/tmp/res; rm -rf "$OUT"; mkdir -p "$OUT"
finish() { cp "$OUT"/*.log "$FINAL"/ 2>/dev/null; tar czf "$FINAL/results.tgz" -C "$OUT" . ; }
trap 'finish; trap - EXIT; exit 143' TERM INT
trap finish EXIT
D=.gpu/drover
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1 PYTHONUNBUFFERED=1 \
  NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
echo "cpus: $(nproc)" | tee -a "$OUT/gpu.txt"
t0=$SECONDS
python3 .gpu/make_model.py --tokenizer .gpu/tok32k --out /tmp/m1b --preset 1b --device cuda > "$OUT/model.txt" 2>&1
