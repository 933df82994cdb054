#!/bin/sh
# The seed's quick start, `./run_multi_vllm.sh`, as one command: one vLLM instance per GPU on
# ports 8001-8004, wait until every one really answers, run the batch job on them, stop them all.
# A crashed instance is restarted while the job runs; Ctrl-C stops the job (resumable with
# --resume) and then the fleet. Guide: docs/launch.md.
#
# The seed's environment variables, mapped:
#   VLLM_PORTS="8001,8002,8003,8004"   --base-port 8001 and one instance per GPU of --gpus; the job
#                                      gets the launched instances, no list to keep in sync
#   USE_MULTI_VLLM=true                every launched instance is a backend
#   USE_CONCURRENT=true MAX_WORKERS=4  not needed: the default adaptive mode finds how many requests
#                                      each instance takes (often 64-256, not 1); for the seed's exact
#                                      behaviour add `--mode concurrent --workers 4` to --run
#   USE_CONCURRENT=false               `--mode serial` in --run
#
# Settings (environment): MODEL, GPUS (comma-separated, or auto), TASKS, OUT.
set -eu
MODEL="${MODEL:-Qwen/Qwen2.5-7B-Instruct}"
GPUS="${GPUS:-0,1,2,3}"
TASKS="${TASKS:-tasks.jsonl}"
OUT="${OUT:-results.jsonl}"

exec drover launch --engine vllm --model "$MODEL" --gpus "$GPUS" --base-port 8001 --log-dir logs/vllm --run "'$TASKS' -o '$OUT'"
