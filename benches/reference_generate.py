#!/usr/bin/env python3
# requires: torch==2.15.0 transformers==4.57.6 (same venv as tests/fixtures/requirements.txt)
"""PyTorch + transformers reference benchmark for T5 generation on CPU.

Builds a randomly initialised (seeded) T5 of --size: `small` (default) has t5-small's dimensions
(d_model 512, d_kv 64, d_ff 2048, 6 encoder + 6 decoder layers, 8 heads), `tiny` those of our t5-tiny
preset (d_model 64, d_kv 16, d_ff 256, 2 + 2 layers, 4 heads); both with vocab 32128, relu FFN, tied
embeddings, float32, eval mode,
and times `model.generate` on a batch of random source ids (no padding) decoding exactly
--new-tokens tokens (min_new_tokens = max_new_tokens, so EOS cannot stop it early) with the KV
cache on.  No weights are downloaded.

    OMP_NUM_THREADS=2 /root/venvs/t5ref/bin/python benches/reference_generate.py --batch 1 8 --beams 1 4

Prints one JSON line per (batch, beams) configuration:
    {"impl": "pytorch", "backend": "cpu", "workload": "generate", "size", "batch", "beams", "new_tokens",
     "src_len", "median_s", "min_s", "tokens_per_s" (= batch * new_tokens / median_s), "peak_rss_mb",
     "threads", "torch", "transformers"}
peak_rss_mb is the process's peak resident set size so far (getrusage ru_maxrss), so it is
monotonic across the configurations of one run; run one configuration per process for
per-configuration peaks.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import transformers
from transformers import GenerationConfig, T5Config, T5ForConditionalGeneration


SIZES = {
    "tiny": dict(d_model=64, d_kv=16, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4),
    "small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8),
}


def t5_small_config(size="small"):
    """t5-small's config, or with --size tiny the t5-tiny preset's dimensions."""
    return T5Config(
        vocab_size=32128,
        **SIZES[size],
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        dropout_rate=0.1,
        layer_norm_epsilon=1e-6,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        use_cache=True,
    )


def peak_rss_mb():
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return kb / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--beams", type=int, nargs="+", default=[1])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--src-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", choices=sorted(SIZES), default="small", help="the random model's shape")
    ap.add_argument("--device", default="cpu", help="cpu, or cuda to compare with our wgpu backend on a GPU")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = T5ForConditionalGeneration(t5_small_config(args.size)).eval().to(device)
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    vocab = model.config.vocab_size

    for batch in args.batch:
        for beams in args.beams:
            gen = torch.Generator().manual_seed(args.seed + 1000 * batch + beams)
            # ids 3..31999: no pad/eos/unk and no sentinel ids in the source
            src = torch.randint(3, 32000, (batch, args.src_len), generator=gen).to(device)
            mask = torch.ones_like(src)
            params = dict(
                attention_mask=mask,
                min_new_tokens=args.new_tokens,
                max_new_tokens=args.new_tokens,
                do_sample=False,
                num_beams=beams,
                use_cache=True,
            )
            if beams > 1:
                params.update(early_stopping=False, length_penalty=1.0)

            def run():
                with torch.inference_mode():
                    out = model.generate(src, **params)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                assert out.shape == (batch, args.new_tokens + 1), out.shape  # + decoder start token
                return out

            for _ in range(args.warmup):
                run()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            rec = {
                "impl": "pytorch",
                "backend": args.device,
                "workload": "generate",
                "size": args.size,
                "batch": batch,
                "beams": beams,
                "new_tokens": args.new_tokens,
                "src_len": args.src_len,
                "median_s": round(median, 6),
                "min_s": round(min(times), 6),
                "tokens_per_s": round(batch * args.new_tokens / median, 3),
                "peak_rss_mb": round(peak_rss_mb(), 1),
                "threads": args.threads,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            }
            assert vocab == 32128
            print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
