# Sourced by the one-GPU scripts (proof.sh, curve.sh) on the lent machine: the set-up of
# machine.sh, then 4 `transformers serve --continuous-batching` instances on GPU 0, ports
# 8001-8004 (the recipe in shared/gpu/README.md). Stop the fleet with `.gpu/serve-tf.sh stop`.
. bench/gpu/machine.sh
# Four engines share one 80 GB card and each grows its PyTorch pool with its batch: without
# expandable segments, the first full batches (375+ requests per instance) ran one of them out
# of memory in 4 of 5 calls of stop 20 (torch.OutOfMemoryError with 0.7 GiB reserved but free).
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
.gpu/serve-tf.sh stop >/dev/null 2>&1
setsid -w .gpu/serve-tf.sh start /tmp/m1b 4 4 8001 --cb-num-blocks 1500 --cb-max-batch-tokens 8192 2>&1 | tee "$OUT/serve.txt"
echo "fleet ready after $((SECONDS - t0))s" | tee -a "$OUT/serve.txt"
