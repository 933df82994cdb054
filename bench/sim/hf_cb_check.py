#!/usr/bin/env python3
"""Does `drover sim --preset hf-cb-1b-h100` reproduce the curve measured on the H100?

Runs the points of bench/gpu/curve.sh (the seed's round robin with C requests in flight over 4
instances, whole waves of 200-token prompts and 128-token answers) against 4 simulated instances
started in-process by `drover bench --sim 4`, and prints simulated vs measured output tok/s.
The simulator runs at --time-scale (default 0.2, 5x faster than real time); its rates are
converted back to simulated (GPU) time. Measured figures: bench/gpu/results/h100-curve/curve.log.

    python3 bench/sim/hf_cb_check.py [--drover target/release/drover] [--time-scale 0.2]
"""
import argparse, json, os, re, subprocess, sys, tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
POINTS = [(1, 8), (4, 16), (16, 64), (64, 256), (256, 768), (1024, 1024)]


def measured():
    out = {}
    with open(os.path.join(ROOT, "bench/gpu/results/h100-curve/curve.log")) as f:
        for line in f:
            m = re.match(r"C=(\d+)\s.*?(\d+) out tok/s", line)
            if m:
                out[int(m.group(1))] = float(m.group(2))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--drover", default=os.path.join(ROOT, "target/release/drover"))
    ap.add_argument("--time-scale", type=float, default=0.2)
    ap.add_argument("--preset", default="hf-cb-1b-h100")
    a = ap.parse_args()
    real = measured()
    print(f"| C (in flight over 4) | tasks | measured on the H100, out tok/s | {a.preset}, out tok/s | error |")
    print("|---|---|---|---|---|")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for c, n in POINTS:
            path = os.path.join(tmp, f"{c}.json")
            subprocess.run([a.drover, "bench", "--sim", "4", "--preset", a.preset, "--time-scale", str(a.time_scale),
                            "--tasks", str(n), "--prompt-tokens", "200", "--max-tokens", "128",
                            "--modes", "concurrent", "--workers", str(c), "--json", path],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            run = json.load(open(path))["runs"][0]
            sim = run["output_tokens_per_s"] * a.time_scale
            err = sim / real[c] - 1
            worst = max(worst, abs(err))
            print(f"| {c} | {n} | {real[c]:,.0f} | {sim:,.0f} | {err:+.1%} |", flush=True)
    print(f"\nworst error {worst:.1%} (target: within 20%)")
    return 0 if worst <= 0.20 else 1


if __name__ == "__main__":
    sys.exit(main())
