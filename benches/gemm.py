#!/usr/bin/env python3
"""GFLOP/s of our CPU matrix products beside PyTorch's at a t5-small training step's shapes.

    /root/venvs/t5ref/bin/python benches/gemm.py --threads 2 --rounds 3

Ours: `cargo bench -p t5-core --bench gemm` (core/benches/gemm.rs: `fused::linear` on the CPU
backend, transposed operands as strided views). PyTorch: `a @ b` on the same layouts
(`b.t()` / `a.t()` of row-major tensors, no copies). Both sides alternate within each round,
each reports the median of 7 timed products after 2 warm-ups; the table holds medians over rounds.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def ours(threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        ["cargo", "bench", "-q", "-p", "t5-core", "--bench", "gemm"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def pytorch(shapes, threads):
    import torch

    torch.set_num_threads(threads)
    rows = []
    for s in shapes:
        m, k, n = s["m"], s["k"], s["n"]
        a = torch.randn(k, m).t() if s["layout"] == "tn" else torch.randn(m, k)
        b = torch.randn(n, k).t() if s["layout"] == "nt" else torch.randn(k, n)
        for _ in range(2):
            a @ b
        times = []
        for _ in range(7):
            t = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - t)
        rows.append(2 * m * k * n / statistics.median(times) / 1e9)
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    import torch

    ours_runs, ref_runs, shapes = [], [], None
    for r in range(args.rounds):
        for side in (["ours", "ref"] if r % 2 == 0 else ["ref", "ours"]):
            if side == "ours":
                rows = ours(args.threads)
                shapes = rows
                ours_runs.append([row["gflops"] for row in rows])
            else:
                ref_runs.append(pytorch(shapes or ours(args.threads), args.threads))
    print(f"threads {args.threads}, {args.rounds} rounds, PyTorch {torch.__version__}\n")
    print("| shape | m×k×n | layout | ours GFLOP/s | PyTorch GFLOP/s | ratio |")
    print("|---|---|---|---|---|---|")
    for i, s in enumerate(shapes):
        o = statistics.median(run[i] for run in ours_runs)
        t = statistics.median(run[i] for run in ref_runs)
        print(f"| {s['shape']} | {s['m']}×{s['k']}×{s['n']} | {s['layout']} | {o:.0f} | {t:.0f} | {o / t:.2f}× |")


if __name__ == "__main__":
    sys.exit(main())
