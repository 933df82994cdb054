#!/usr/bin/env python3
"""A job whose mix changes midway: the first half has short prompts, the second 2k-token prompts.

Target (issue: adaptive scheduling): adaptive reaches >= 90% of the best fixed concurrency in
each half. Method, on fresh `drover sim` fleets (4 x llama-3.1-8b-h100, real time):
  * baselines: each half run alone, `--mode concurrent --workers N` for N in SWEEP;
    its throughput = its output tokens / (first send .. last finish);
  * adaptive: the whole job in one `drover run`; each half's throughput is measured the same
    way over that half's own tasks (first send .. last finish of that half). The windows
    overlap at the change (read-ahead), which counts against adaptive, not for it.
  * per phase (the target's measure): output tokens are spread evenly over each task's
    send .. finish, and counted inside a window. Phase 1 of the adaptive run is from its first
    send to the first send of a second-half task (only short tasks in flight, the ramp-up
    included); phase 2 is from the last first-half finish to the last send (only 2k-token
    tasks in flight, before the tail). Each fixed baseline runs one half alone and is rated over
    its steady part, first finish .. last send (no ramp-up, no tail): that favours the baselines.
  * same job, same windows: each fixed setting also runs the whole job once and is rated over
    its own phase windows, defined as for adaptive; its ramp-up (phase 1) and its change of mix
    (phase 2) then count as they do for adaptive.
Usage: bench/sched/mixed_halves.py [--half N] [--sweep 64,256,1024] [--drover target/release/drover]
"""
import argparse, json, os, random, subprocess, sys, tempfile

ap = argparse.ArgumentParser()
ap.add_argument("--half", type=int, default=6000)
ap.add_argument("--instances", type=int, default=4)
ap.add_argument("--short", type=int, default=230)
ap.add_argument("--long", type=int, default=2048)
ap.add_argument("--short-out", type=int, default=200)
ap.add_argument("--long-out", type=int, default=128)
ap.add_argument("--sweep", default="64,256,1024,2048")
ap.add_argument("--drover", default="target/release/drover")
ap.add_argument("--json")
a = ap.parse_args()

WORDS = "the report shows quarterly revenue growth across regions while costs remained stable analysts expect".split()
rng = random.Random(7)
tmp = tempfile.mkdtemp(prefix="drover-mixed-")

def prompt(tokens, tag):
    words, length = [tag], len(tag)
    while length < tokens * 4:
        w = rng.choice(WORDS)
        words.append(w)
        length += len(w) + 1
    return " ".join(words)[: tokens * 4]

def write(path, specs):
    with open(path, "w") as f:
        for cid, tokens, out in specs:
            f.write(json.dumps({"id": cid, "prompt": prompt(tokens, cid), "max_tokens": out}) + "\n")

h1 = [(f"a{i}", a.short, a.short_out) for i in range(a.half)]
h2 = [(f"b{i}", a.long, a.long_out) for i in range(a.half)]
paths = {"h1": os.path.join(tmp, "h1.jsonl"), "h2": os.path.join(tmp, "h2.jsonl"), "all": os.path.join(tmp, "all.jsonl")}
write(paths["h1"], h1); write(paths["h2"], h2); write(paths["all"], h1 + h2)

def start_sim():
    p = subprocess.Popen([a.drover, "sim", "--ports", ",".join(["0"] * a.instances)], stdout=subprocess.PIPE, text=True)
    urls = []
    while len(urls) < a.instances:
        line = p.stdout.readline()
        urls.append(line.split(" listening on ")[1].split()[0])
    return p, ",".join(urls)

def run(path, extra):
    sim, backends = start_sim()
    out = os.path.join(tmp, "out.jsonl")
    try:
        subprocess.run([a.drover, "run", path, "-o", out, "--overwrite", "-b", backends, "-q"] + extra, check=False)
    finally:
        sim.terminate(); sim.wait()
    rows = []
    with open(out) as f:
        for line in f:
            r = json.loads(line)
            d = r["drover"]
            usage = (r.get("response") or {}).get("body", {}).get("usage", {})
            rows.append((r["custom_id"], d["finished_at"] - d.get("latency_ms", 0), d["finished_at"], usage.get("completion_tokens", 0)))
    return rows

def rate(rows, prefix):
    sel = [r for r in rows if r[0].startswith(prefix)]
    start = min(r[1] for r in sel); end = max(r[2] for r in sel)
    return sum(r[3] for r in sel) / ((end - start) / 1000.0)

def tokens_in(rows, lo, hi):
    """Output tokens produced in [lo, hi] (ms), each task's spread evenly over send .. finish."""
    total = 0.0
    for _, start, end, tokens in rows:
        overlap = min(hi, end) - max(lo, start)
        if overlap > 0:
            total += tokens * overlap / max(end - start, 1e-9)
    return total

def phase_rate(rows, lo, hi):
    return tokens_in(rows, lo, hi) / ((hi - lo) / 1000.0) if hi > lo else float("nan")

def steady(rows):
    """Rate over first finish .. last send: the pipeline full, no ramp-up, no tail."""
    return phase_rate(rows, min(r[2] for r in rows), max(r[1] for r in rows))

def makespan(rows):
    """Seconds from the first send to the last finish."""
    return (max(r[2] for r in rows) - min(r[1] for r in rows)) / 1000.0

def phase_windows(rows):
    """Phase 1: first send .. first send of a 2k-token task; phase 2: last short-task finish ..
    last send."""
    a_rows = [r for r in rows if r[0].startswith("a")]; b_rows = [r for r in rows if r[0].startswith("b")]
    return {"h1": (min(r[1] for r in rows), min(r[1] for r in b_rows)),
            "h2": (max(r[2] for r in a_rows), max(r[1] for r in rows))}

results = {"half": a.half, "instances": a.instances, "fixed": {}, "adaptive": {}}
for n in [int(x) for x in a.sweep.split(",")]:
    for half, prefix in (("h1", "a"), ("h2", "b")):
        rows = run(paths[half], ["--mode", "concurrent", "--workers", str(n)])
        r = rate(rows, prefix)
        results["fixed"].setdefault(half, {})[n] = r
        results.setdefault("fixed_makespan", {}).setdefault(half, {})[n] = makespan(rows)
        results.setdefault("fixed_steady", {}).setdefault(half, {})[n] = steady(rows)
        print(f"fixed {n:>5} {half}: {r:8.0f} out tok/s, {makespan(rows):.1f} s", flush=True)
for n in [int(x) for x in a.sweep.split(",")]:
    rows = run(paths["all"], ["--mode", "concurrent", "--workers", str(n)])
    for half, (lo, hi) in phase_windows(rows).items():
        results.setdefault("fixed_whole_phase", {}).setdefault(half, {})[n] = phase_rate(rows, lo, hi)
    results.setdefault("fixed_whole_makespan", {})[n] = makespan(rows)
    ph = results["fixed_whole_phase"]
    print(f"fixed {n:>5} whole job: {makespan(rows):.1f} s; phase 1 {ph['h1'][n]:.0f}, phase 2 {ph['h2'][n]:.0f} out tok/s", flush=True)
rows = run(paths["all"], [])
# The whole job against the best fixed setting of each half run back to back: the comparison
# that does not depend on where the change falls in the windows.
best_pair = sum(min(results["fixed_makespan"][h].values()) for h in ("h1", "h2"))
results["adaptive"]["whole"] = {"makespan": makespan(rows), "best_fixed_pair": best_pair, "ratio": best_pair / makespan(rows)}
print(f"adaptive whole job: {makespan(rows):.1f} s; best fixed per half, back to back: {best_pair:.1f} s "
      f"({100 * best_pair / makespan(rows):.1f}%)", flush=True)
for half, prefix in (("h1", "a"), ("h2", "b")):
    r = rate(rows, prefix)
    best_n, best = max(results["fixed"][half].items(), key=lambda kv: kv[1])
    results["adaptive"][half] = {"rate": r, "best_fixed": best, "best_n": best_n, "ratio": r / best}
    print(f"adaptive {half}: {r:8.0f} out tok/s = {100*r/best:.1f}% of the best fixed ({best:.0f} at N={best_n})", flush=True)
# Per phase: only short tasks in flight, then only 2k-token tasks in flight.
for half, (lo, hi) in phase_windows(rows).items():
    r = phase_rate(rows, lo, hi)
    best_n, best = max(results["fixed_steady"][half].items(), key=lambda kv: kv[1])
    results["adaptive"][f"{half}_phase"] = {"window_s": (hi - lo) / 1000.0, "rate": r, "best_fixed_steady": best,
                                            "best_n": best_n, "ratio": r / best}
    print(f"adaptive {half} phase ({(hi - lo) / 1000.0:.1f} s): {r:8.0f} out tok/s = {100*r/best:.1f}% of the best fixed "
          f"steady rate ({best:.0f} at N={best_n})", flush=True)
    best_n, best = max(results["fixed_whole_phase"][half].items(), key=lambda kv: kv[1])
    results["adaptive"][f"{half}_phase_same_job"] = {"rate": r, "best_fixed": best, "best_n": best_n, "ratio": r / best}
    print(f"adaptive {half} phase vs the fixed settings on the same whole job, same windows: {100*r/best:.1f}% "
          f"of the best ({best:.0f} at N={best_n})", flush=True)
best_whole = min(results["fixed_whole_makespan"].values())
results["adaptive"]["whole"]["best_fixed_whole"] = best_whole
print(f"adaptive whole job vs the best fixed setting on the whole job: {makespan(rows):.1f} s vs {best_whole:.1f} s "
      f"({100 * best_whole / makespan(rows):.1f}%)", flush=True)
if a.json:
    json.dump(results, open(a.json, "w"), indent=2)
