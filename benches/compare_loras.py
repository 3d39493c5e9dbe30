#!/usr/bin/env python3
"""Many LoRAs in one batch, side by side: ours (`native bench --loras`) and PEFT's `adapter_names=`
(`benches/reference_loras.py`), greedy generation on a random t5-small-shaped model, interleaved in one run.

    /root/venvs/t5ref/bin/python benches/compare_loras.py --native target/release/native \
        --batch 8 --loras 1 8 --rounds 3 --threads 2

Each round runs both implementations (one process each, the order flipped every round); each reports, per
(batch, loras), the median of --repeats timed generations after one warm-up. The table gives the median
over rounds of tokens/s, each implementation's throughput relative to its own one-LoRA batch (the issue's
"8 LoRAs at >= 0.8x of one"), and ours / PEFT.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native", default="target/release/native")
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--loras", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--new-tokens", type=int, default=16)
    args = ap.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), RAYON_NUM_THREADS=str(args.threads))
    common = ["--batch", *map(str, args.batch), "--loras", *map(str, args.loras), "--repeats", str(args.repeats),
              "--new-tokens", str(args.new_tokens)]
    ours = [args.native, "bench", "--backend", "cpu", *common]
    peft = [sys.executable, os.path.join(HERE, "reference_loras.py"), "--threads", str(args.threads), *common]
    results = {}
    for r in range(args.rounds):
        for impl, cmd in ([("ours", ours), ("peft", peft)] if r % 2 == 0 else [("peft", peft), ("ours", ours)]):
            for rec in run(cmd, env):
                results.setdefault((impl, rec["batch"], rec["loras"]), []).append(rec["tokens_per_s"])
                print(f"round {r + 1}: {impl} batch {rec['batch']} loras {rec['loras']}: "
                      f"{rec['tokens_per_s']:.1f} tokens/s", file=sys.stderr)
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"| batch | LoRAs | ours tokens/s | PEFT tokens/s | ours vs 1 LoRA | PEFT vs 1 LoRA | ours / PEFT |")
    print("|---|---|---|---|---|---|---|")
    for b in args.batch:
        for n in args.loras:
            o, p = med[("ours", b, n)], med[("peft", b, n)]
            o1, p1 = med[("ours", b, args.loras[0])], med[("peft", b, args.loras[0])]
            print(f"| {b} | {n} | {o:.1f} | {p:.1f} | {o / o1:.2f} | {p / p1:.2f} | {o / p:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
