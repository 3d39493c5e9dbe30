#!/usr/bin/env python3
"""How an adapter training step grows with batch size, source length and model size (ours, CPU).

    python3 benches/scaling.py --native target/release/native --threads 2 --write docs/SCALING.md

Runs `native bench --workload train-adapters` (the seed adapter, reduction factor 16, frozen
backbone, AdamW, target 16 tokens) once per configuration, each in its own process so that peak
RSS is per configuration, and writes a markdown table. `--sizes` adds the larger T5 shapes (random
init) at batch 1 to find the largest that trains in the machine's memory.
"""

import argparse
import datetime
import json
import os
import subprocess


def bench(native, env, size, batch, src, repeats):
    cmd = [native, "bench", "--workload", "train-adapters", "--size", size, "--batch", str(batch),
           "--src-len", str(src), "--tgt-len", "16", "--reduction-factor", "16",
           "--repeats", str(repeats), "--warmup", "1" if repeats > 1 else "0"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["killed"])[-1]}
    return json.loads([l for l in out.stdout.splitlines() if l.startswith("{")][-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native", default="target/release/native")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    ap.add_argument("--src-lens", type=int, nargs="+", default=[64, 128, 256, 512])
    ap.add_argument("--sizes", nargs="*", default=["base", "large", "3b"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--write")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))

    rows = []
    for batch in args.batches:
        rows.append(("small", batch, 128, bench(args.native, env, "small", batch, 128, args.repeats)))
    for src in args.src_lens:
        if src != 128:
            rows.append(("small", 8, src, bench(args.native, env, "small", 8, src, args.repeats)))
    for size in args.sizes:
        rows.append((size, 1, 128, bench(args.native, env, size, 1, 128, 1)))

    lines = [
        "| size | batch | source | step s | examples/s | peak MB | params (trainable) |",
        "|---|---|---|---|---|---|---|",
    ]
    for size, batch, src, r in rows:
        if "error" in r:
            lines.append(f"| {size} | {batch} | {src} | failed: {r['error']} | | | |")
            continue
        lines.append(
            f"| {size} | {batch} | {src} | {r['median_s']:.2f} | {r['examples_per_s']:.2f} | "
            f"{r['peak_rss_mb']:.0f} | {r['total_params']:,} ({r['trainable_params']:,}) |"
        )
        print(lines[-1], flush=True)
    text = "\n".join([
        "# Scaling of adapter training (ours, CPU)",
        "",
        f"Latest run: {datetime.date.today()}, `python3 benches/scaling.py --threads {args.threads} "
        f"--write docs/SCALING.md` ({args.threads} threads, release build, burn's Flex CPU backend).",
        "",
        "One step = forward + backward + AdamW on the adapters (the seed adapter, reduction factor",
        "16, after every self-attention and feed-forward sublayer), target 16 tokens, random init.",
        "Larger shapes run one step at batch 1 (their time includes no warm-up).",
        "",
        *lines,
        "",
    ])
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
