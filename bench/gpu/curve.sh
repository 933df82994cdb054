#!/usr/bin/env bash
# The throughput-vs-concurrency curve of one GPU with 4 transformers-serve instances (the fleet of
# proof.sh), for fitting the simulator preset `hf-cb-1b-h100` (docs/benchmarks.md). Each point is
# the seed's round robin with C requests in flight in total (`drover bench --modes concurrent
# --workers C`) over a whole number of waves (tasks = C × waves), so no point is cut at a budget
# and the rate counts every token. Results: curve.json and curve.log in $OUT/results.tgz, and
# curve.log beside it.
. bench/gpu/fleet1.sh
for point in ${POINTS:-1:8 4:16 16:64 64:256 256:768 1024:1024}; do
  c=${point%%:*}; n=${point##*:}
  "$D" bench -b 8001,8002,8003,8004 --tasks "$n" --prompt-tokens 200 --max-tokens 128 \
    --modes concurrent --workers "$c" --json "/tmp/curve-$c.json" > "/tmp/curve-$c.log" 2>&1
  grep -E '^\s+concurrent' "/tmp/curve-$c.log" | head -1 | sed "s/^/C=$c /" | tee -a "$OUT/curve.log"
done
# one file for all points: the device returns only a few files per call
python3 -c 'import json,sys; print(json.dumps([json.load(open(f)) for f in sys.argv[1:]], indent=1))' /tmp/curve-*.json > "$OUT/curve.json"
.gpu/serve-tf.sh stop
for f in /tmp/engine-logs/serve-*.log; do tail -5 "$f"; done > "$OUT/engine-tail.txt" 2>&1
