#!/usr/bin/env python3
"""The seed's pipeline step, reproduced from ARCHITECTURE.md §1 (and seed/concurrency-modes.zh.md):
a MultiVLLMClient picks instances in thread-safe round robin, and a ThreadPoolExecutor with
MAX_WORKERS threads calls the official `openai` client, collecting results with as_completed.
USE_CONCURRENT=false runs the same loop serially. Written for drover's benchmarks: it reads the
same JSONL tasks (prompt or messages shape), writes one JSON line per task, and prints a summary
line `seed: N tasks in S s = R tasks/s, T output tok/s`.

    VLLM_PORTS=8001,8002 MAX_WORKERS=4 python seed_threadpool.py tasks.jsonl out.jsonl
"""
import json, os, sys, threading, time
from concurrent.futures import ThreadPoolExecutor, as_completed

from openai import OpenAI


class MultiVLLMClient:
    def __init__(self, ports, model):
        self.clients = [OpenAI(base_url=f"http://127.0.0.1:{p}/v1", api_key="EMPTY", max_retries=0) for p in ports]
        self.model = model
        self.index = 0
        self.lock = threading.Lock()

    def get_next_client(self):
        with self.lock:
            client = self.clients[self.index]
            self.index = (self.index + 1) % len(self.clients)
            return client


def analyze_task(multi, task):
    client = multi.get_next_client()
    messages = task.get("messages") or [{"role": "user", "content": task["prompt"]}]
    resp = client.chat.completions.create(model=multi.model, messages=messages, max_tokens=task.get("max_tokens", 16))
    return task.get("id") or task.get("custom_id"), resp


def main():
    src, dst = sys.argv[1], sys.argv[2]
    ports = [p.strip() for p in os.environ.get("VLLM_PORTS", "8001").split(",") if p.strip()]
    if os.environ.get("USE_MULTI_VLLM", "true").lower() == "false":
        ports = ports[:1]
    concurrent = os.environ.get("USE_CONCURRENT", "true").lower() != "false"
    workers = int(os.environ.get("MAX_WORKERS", "4"))
    first = OpenAI(base_url=f"http://127.0.0.1:{ports[0]}/v1", api_key="EMPTY")
    model = os.environ.get("MODEL") or first.models.list().data[0].id
    multi = MultiVLLMClient(ports, model)
    tasks = [json.loads(l) for l in open(src) if l.strip()]
    success = failed = tokens = 0
    start = time.time()
    with open(dst, "w") as out:
        def record(cid, resp):
            nonlocal success, tokens
            success += 1
            tokens += resp.usage.completion_tokens if resp.usage else 0
            out.write(json.dumps({"custom_id": cid, "content": resp.choices[0].message.content}) + "\n")

        if concurrent:
            with ThreadPoolExecutor(max_workers=workers) as ex:
                futures = {ex.submit(analyze_task, multi, t): t for t in tasks}
                for f in as_completed(futures):
                    try:
                        record(*f.result())
                    except Exception:  # the seed counts failures and moves on
                        failed += 1
        else:
            for t in tasks:
                try:
                    record(*analyze_task(multi, t))
                except Exception:
                    failed += 1
    wall = time.time() - start
    print(f"seed: {success + failed} tasks ({failed} failed) in {wall:.2f} s = {(success + failed) / wall:.1f} tasks/s, {tokens / wall:.0f} output tok/s")


if __name__ == "__main__":
    main()
