#!/usr/bin/env python3
"""Side-by-side benchmark: ours (`native bench`) and PyTorch + transformers
(`benches/reference_generate.py`) on the same machine, same threads, interleaved in one run.

    /root/venvs/t5ref/bin/python benches/compare.py --native target/release/native \
        --rounds 3 --threads 2 --write docs/BENCHMARKS.md

Each (implementation, batch, beams) configuration runs in its own process, so peak RSS is per
configuration; the implementations alternate within each round so host noise hits both. The
table reports medians over rounds (each round itself a median of --repeats timed runs), the
ours/PyTorch ratio of tokens/s (higher is better for us) and of peak RSS (lower is better).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native", default=os.path.join(HERE, "..", "target", "release", "native"))
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch + transformers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--beams", type=int, nargs="+", default=[1])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--backend", default="cpu", help="our backend: cpu or wgpu")
    ap.add_argument("--write", help="also write the table to this markdown file")
    args = ap.parse_args()

    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "RAYON_NUM_THREADS": str(args.threads),
        # Spinning OpenMP threads make PyTorch timings swing by 10x on a shared 2-core host.
        "OMP_WAIT_POLICY": "PASSIVE",
    })
    results = {}  # (impl, batch, beams) -> list of rows
    for r in range(args.rounds):
        for batch in args.batch:
            for beams in args.beams:
                common = ["--batch", str(batch), "--beams", str(beams), "--repeats", str(args.repeats)]
                ours = [args.native, "bench", "--backend", args.backend] + common
                torch_cmd = [args.python, os.path.join(HERE, "reference_generate.py"), "--threads", str(args.threads)] + common
                order = [("ours", ours), ("pytorch", torch_cmd)]
                if r % 2:
                    order.reverse()
                for impl, cmd in order:
                    for row in run_json(cmd, env):
                        results.setdefault((impl, batch, beams), []).append(row)
                        print(f"round {r}: {impl:7s} batch {batch} beams {beams}: "
                              f"{row['tokens_per_s']:.1f} tok/s, {row['peak_rss_mb']:.0f} MB", file=sys.stderr)

    versions = {}
    lines = [
        "| workload | batch | beams | ours tok/s | PyTorch tok/s | speed ratio | ours peak MB | PyTorch peak MB | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for batch in args.batch:
        for beams in args.beams:
            ours = results[("ours", batch, beams)]
            ref = results[("pytorch", batch, beams)]
            versions = {k: ref[0].get(k) for k in ("torch", "transformers")}
            o_tps = statistics.median(x["tokens_per_s"] for x in ours)
            p_tps = statistics.median(x["tokens_per_s"] for x in ref)
            o_mb = statistics.median(x["peak_rss_mb"] for x in ours)
            p_mb = statistics.median(x["peak_rss_mb"] for x in ref)
            kind = "greedy" if beams == 1 else f"beam search"
            lines.append(f"| {kind} 64→32 | {batch} | {beams} | {o_tps:.1f} | {p_tps:.1f} | **{o_tps / p_tps:.2f}×** "
                         f"| {o_mb:.0f} | {p_mb:.0f} | {o_mb / p_mb:.2f}× |")
    table = "\n".join(lines)
    print(table)
    if args.write:
        cmd = " ".join(["python", "benches/compare.py"] + sys.argv[1:])
        doc = f"""# Benchmarks

Latest run: {datetime.date.today().isoformat()}, `{cmd}`

- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; {args.threads} threads for both sides
  (`OMP_NUM_THREADS`/`RAYON_NUM_THREADS`, `OMP_WAIT_POLICY=PASSIVE`).
- Ours: `native bench --backend {args.backend}` (release build). Reference: PyTorch {versions.get('torch')},
  transformers {versions.get('transformers')} (`benches/reference_generate.py`).
- Model: random init with t5-small's shape (d_model 512, d_ff 2048, 6+6 layers, 8 heads, vocab 32128,
  relu), float32. Source 64 tokens, exactly 32 new tokens (EOS suppressed), KV cache on both sides.
- Medians over {args.rounds} interleaved rounds of {args.repeats} timed runs each; each configuration in its
  own process, so peak RSS is per configuration. Ratios are ours / PyTorch.

{table}
"""
        with open(args.write, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
