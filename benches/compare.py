#!/usr/bin/env python3
"""Side-by-side benchmark: ours (`native bench`) and PyTorch + transformers
(`benches/reference_generate.py`, `benches/reference_train.py`) on the same machine, same threads,
interleaved in one run.

    /root/venvs/t5ref/bin/python benches/compare.py --native target/release/native \
        --rounds 3 --threads 2 --write docs/BENCHMARKS.md

Two sections:

- Generation (tokens/s): greedy at every --batch, beam search (each --beams width > 1) at the
  batch sizes of --beam-batch only (default: greedy at batch 1 and 8, 4 beams at batch 1), on a
  random model of each --gen-sizes shape (default small), source 64 tokens, 32 new tokens.
- Training step (examples/s): forward + backward + AdamW on one fixed batch (--train-batch 8,
  source --train-src-len 128, target --train-tgt-len 16, label smoothing 0.1), full fine-tuning
  and adapter-only training (the seed's adapter, --reduction-factor 16, backbone frozen), for
  each --train-sizes shape (default tiny and small).

Each (implementation, configuration) runs in its own process, so peak RSS is per configuration;
the implementations alternate within each round (and the order flips every round) so host noise
hits both. The tables report medians over rounds (each round itself a median of --repeats /
--train-repeats timed runs after one untimed warm-up), the ours/PyTorch ratio of throughput
(higher is better for us) and of peak RSS (lower is better).
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SIZE_TEXT = {
    "tiny": "tiny (d_model 64, d_kv 16, d_ff 256, 2+2 layers, 4 heads)",
    "small": "small (t5-small's shape: d_model 512, d_kv 64, d_ff 2048, 6+6 layers, 8 heads)",
}


def run_json(cmd, env):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"failed ({out.returncode}): {shlex.join(cmd)}")
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    if not rows:
        sys.stderr.write(out.stdout + out.stderr)
        raise SystemExit(f"no JSON line from: {shlex.join(cmd)}")
    return rows


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gen_configs(args):
    """(size, batch, beams) of the generation section."""
    out = []
    for size in args.gen_sizes:
        for beams in args.beams:
            for batch in args.batch if beams == 1 else args.beam_batch:
                out.append((size, batch, beams))
    return out


def train_configs(args):
    """(size, workload) of the training section."""
    return [(size, w) for size in args.train_sizes for w in args.train_workloads]


def interleaved(r, ours, pytorch):
    order = [("ours", ours), ("pytorch", pytorch)]
    return order[::-1] if r % 2 else order


def median(rows, key):
    return statistics.median(float(x[key]) for x in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--native", default=os.path.join(HERE, "..", "target", "release", "native"),
                    help="our binary (`native`), or any command printing its JSON lines")
    ap.add_argument("--python", default=sys.executable, help="interpreter with torch + transformers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backend", default="cpu", help="our backend: cpu or wgpu")
    ap.add_argument("--reference-device", default="cpu",
                    help="PyTorch's device: cpu, or cuda on a GPU machine (with --backend wgpu)")
    ap.add_argument("--write", help="also write the tables to this markdown file")
    g = ap.add_argument_group("generation")
    g.add_argument("--skip-generate", action="store_true", help="no generation section")
    g.add_argument("--gen-sizes", nargs="+", choices=sorted(SIZE_TEXT), default=["small"])
    g.add_argument("--batch", type=int, nargs="+", default=[1, 8], help="greedy batch sizes")
    g.add_argument("--beams", type=int, nargs="+", default=[1, 4], help="beam widths (1 = greedy)")
    g.add_argument("--beam-batch", type=int, nargs="+", default=[1],
                   help="batch sizes for the beam widths > 1")
    g.add_argument("--repeats", type=int, default=3, help="timed generations per process")
    t = ap.add_argument_group("training step")
    t.add_argument("--skip-train", action="store_true", help="no training section")
    t.add_argument("--train-sizes", nargs="+", choices=sorted(SIZE_TEXT), default=["tiny", "small"])
    t.add_argument("--train-workloads", nargs="+", choices=["train-full", "train-adapters"],
                   default=["train-full", "train-adapters"])
    t.add_argument("--train-batch", type=int, default=8)
    t.add_argument("--train-src-len", type=int, default=128)
    t.add_argument("--train-tgt-len", type=int, default=16)
    t.add_argument("--reduction-factor", type=int, default=16, help="the adapters' reduction factor")
    t.add_argument("--train-repeats", type=int, default=3, help="timed training steps per process")
    args = ap.parse_args()
    if args.skip_generate and args.skip_train:
        ap.error("--skip-generate and --skip-train leave nothing to run")

    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "RAYON_NUM_THREADS": str(args.threads),
    })
    gens = [] if args.skip_generate else gen_configs(args)
    trains = [] if args.skip_train else train_configs(args)
    gen_results = {}  # (impl, size, batch, beams) -> rows
    train_results = {}  # (impl, size, workload) -> rows
    for r in range(args.rounds):
        for size, batch, beams in gens:
            common = ["--size", size, "--batch", str(batch), "--beams", str(beams),
                      "--repeats", str(args.repeats), "--warmup", "1"]
            ours = [args.native, "bench", "--backend", args.backend] + common
            ref = [args.python, os.path.join(HERE, "reference_generate.py"), "--threads", str(args.threads),
                   "--device", args.reference_device] + common
            for impl, cmd in interleaved(r, ours, ref):
                for row in run_json(cmd, env):
                    gen_results.setdefault((impl, size, batch, beams), []).append(row)
                    print(f"round {r}: {impl:7s} generate {size} batch {batch} beams {beams}: "
                          f"{row['tokens_per_s']:.1f} tok/s, {row['peak_rss_mb']:.0f} MB", file=sys.stderr)
        for size, workload in trains:
            common = ["--workload", workload, "--size", size, "--batch", str(args.train_batch),
                      "--src-len", str(args.train_src_len), "--tgt-len", str(args.train_tgt_len),
                      "--repeats", str(args.train_repeats), "--warmup", "1"]
            if workload == "train-adapters":
                common[2:2] = ["--reduction-factor", str(args.reduction_factor)]
            ours = [args.native, "bench", "--backend", args.backend] + common
            ref = [args.python, os.path.join(HERE, "reference_train.py"), "--threads", str(args.threads),
                   "--device", args.reference_device] + common
            for impl, cmd in interleaved(r, ours, ref):
                for row in run_json(cmd, env):
                    train_results.setdefault((impl, size, workload), []).append(row)
                    print(f"round {r}: {impl:7s} {workload} {size}: {row['examples_per_s']:.2f} ex/s, "
                          f"{row['peak_rss_mb']:.0f} MB, {row['trainable_params']} trainable", file=sys.stderr)

    versions = {}
    gen_lines = [
        "| workload | size | batch | beams | ours tok/s | PyTorch tok/s | speed ratio | ours peak MB | PyTorch peak MB | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, batch, beams in gens:
        ours = gen_results[("ours", size, batch, beams)]
        ref = gen_results[("pytorch", size, batch, beams)]
        versions = {k: ref[0].get(k) for k in ("torch", "transformers")}
        o_tps, p_tps = median(ours, "tokens_per_s"), median(ref, "tokens_per_s")
        o_mb, p_mb = median(ours, "peak_rss_mb"), median(ref, "peak_rss_mb")
        kind = "greedy" if beams == 1 else "beam search"
        gen_lines.append(f"| {kind} 64→32 | {size} | {batch} | {beams} | {o_tps:.1f} | {p_tps:.1f} "
                         f"| **{o_tps / p_tps:.2f}×** | {o_mb:.0f} | {p_mb:.0f} | {o_mb / p_mb:.2f}× |")

    train_lines = [
        "| workload | size | batch | ours ex/s | PyTorch ex/s | speed ratio | ours peak MB | PyTorch peak MB | memory ratio | trainable params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    mismatches = []
    for size, workload in trains:
        ours = train_results[("ours", size, workload)]
        ref = train_results[("pytorch", size, workload)]
        versions = {k: ref[0].get(k) for k in ("torch", "transformers")}
        o_eps, p_eps = median(ours, "examples_per_s"), median(ref, "examples_per_s")
        o_mb, p_mb = median(ours, "peak_rss_mb"), median(ref, "peak_rss_mb")
        o_tr, p_tr = ours[0]["trainable_params"], ref[0]["trainable_params"]
        params = f"{o_tr:,}"
        if o_tr != p_tr or ours[0].get("total_params") != ref[0].get("total_params"):
            params += f" (PyTorch: {p_tr:,})"
            mismatches.append(f"{workload} {size}: ours {o_tr:,}/{ours[0].get('total_params')}, "
                              f"PyTorch {p_tr:,}/{ref[0].get('total_params')} trainable/total params")
        label = "full fine-tuning" if workload == "train-full" else f"adapters (rf {args.reduction_factor})"
        train_lines.append(f"| {label} | {size} | {args.train_batch} | {o_eps:.2f} | {p_eps:.2f} "
                           f"| **{o_eps / p_eps:.2f}×** | {o_mb:.0f} | {p_mb:.0f} | {o_mb / p_mb:.2f}× | {params} |")
    for m in mismatches:
        print(f"warning: parameter counts differ: {m}", file=sys.stderr)

    sections = []
    if gens:
        sections.append("\n".join(gen_lines))
    if trains:
        sections.append("\n".join(train_lines))
    print("\n\n".join(sections))
    if args.write:
        cmd = shlex.join(["python", "benches/compare.py"] + sys.argv[1:])
        sizes = sorted(set([s for s, _, _ in gens] + [s for s, _ in trains]), key=["tiny", "small"].index)
        size_lines = "\n".join(f"  - {SIZE_TEXT[s]}" for s in sizes)
        body = []
        if gens:
            body.append(f"""## Generation

Source 64 tokens, exactly 32 new tokens (EOS suppressed), KV cache on both sides; greedy, and beam
search without early stopping. Throughput in generated tokens/s ({args.repeats} timed runs per round).

{chr(10).join(gen_lines)}
""")
        if trains:
            body.append(f"""## Training step

One step = forward + backward + AdamW update on a fixed batch of {args.train_batch} (source {args.train_src_len} tokens,
target {args.train_tgt_len} tokens, no padding), cross-entropy with label smoothing 0.1, dropout 0; throughput in
examples/s ({args.train_repeats} timed steps per round). *Full fine-tuning*: AdamW (lr 1e-4) over every parameter.
*Adapters*: the seed's adapter (`x + h + LayerNorm(up(relu(down(h))))` after every self-attention
and feed-forward sublayer of encoder and decoder, bottleneck d_model/{args.reduction_factor}); backbone frozen
(`requires_grad=False` on the PyTorch side), AdamW (lr 1e-3) over the adapters only.
Reference: `benches/reference_train.py` (T5ForConditionalGeneration with monkey-patched sublayers).

{chr(10).join(train_lines)}
""")
        doc = f"""# Benchmarks

Latest run: {datetime.date.today().isoformat()}, `{cmd}`

- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; {args.threads} threads for both sides
  (`OMP_NUM_THREADS`/`RAYON_NUM_THREADS`; OpenMP's default wait policy, which PyTorch is
  fastest with).
- Ours: `native bench --backend {args.backend}` (release build). Reference: PyTorch {versions.get('torch')},
  transformers {versions.get('transformers')} (`benches/reference_generate.py`, `benches/reference_train.py`).
- Models: random init, vocab 32128, relu FFN, tied embeddings, float32, of these shapes:
{size_lines}
- Medians over {args.rounds} interleaved rounds, each round a median of its timed runs after one
  untimed warm-up; each configuration in its own process, so peak RSS (max RSS of the process,
  including the libraries it loads) is per configuration. Ratios are ours / PyTorch: speed above
  1× means we are faster, memory below 1× that we use less.

{chr(10).join(body)}
Where the time goes, what limits each ratio and what was tried: `docs/PERFORMANCE.md`. On a GPU
(`--backend wgpu --reference-device cuda`): `docs/BENCHMARKS-gpu.md`.
"""
        with open(args.write, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
