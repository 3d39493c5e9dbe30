#!/usr/bin/env python3
# requires: torch==2.15.0 transformers==4.57.6 peft==0.21.2 (same venv as tests/fixtures/requirements.txt)
"""PEFT reference for `native bench --loras`: greedy generation on a batch whose rows use different LoRAs.

The model is reference_generate.py's random t5-small-shaped T5 (no weights downloaded). Each of --loras N
builds N LoRAs `lora0..` (r 8, lora_alpha 16, on q, k, v, o, wi, wo, `lora_B` drawn N(0, 0.02): the work
of `native bench`'s random LoRAs), row r of the batch uses `lora{r % N}`, and `model.generate` decodes exactly
--new-tokens tokens. With N = 1 the rows run through the active adapter (PEFT's usual path); with N > 1
through PEFT's `adapter_names=` (its mixed-batch path, inference only).

    OMP_NUM_THREADS=2 /root/venvs/t5ref/bin/python benches/reference_loras.py --batch 8 --loras 1 8

Prints one JSON line per (batch, loras): the keys of reference_generate.py plus "loras" and "peft".
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import peft
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import GenerationConfig, T5ForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_generate import peak_rss_mb, t5_small_config  # noqa: E402

TARGETS = ["q", "k", "v", "o", "wi", "wo"]


def with_loras(n, seed):
    """A fresh random model with `n` LoRAs (lora0 active)."""
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_small_config("small")).eval()
    model.generation_config = GenerationConfig(decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, task_type="SEQ_2_SEQ_LM")
    model = get_peft_model(model, config, adapter_name="lora0")
    for i in range(1, n):
        model.add_adapter(f"lora{i}", config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_B." in name:
                p.normal_(0.0, 0.02)
    model.set_adapter("lora0")
    return model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--loras", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--src-len", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    for n in args.loras:
        model = with_loras(n, args.seed)
        for batch in args.batch:
            gen = torch.Generator().manual_seed(args.seed + 1000 * batch + 1)
            src = torch.randint(3, 32000, (batch, args.src_len), generator=gen)
            params = dict(input_ids=src, attention_mask=torch.ones_like(src), min_new_tokens=args.new_tokens,
                          max_new_tokens=args.new_tokens, do_sample=False, num_beams=1, use_cache=True)
            if n > 1:
                params["adapter_names"] = [f"lora{r % n}" for r in range(batch)]

            def run():
                with torch.inference_mode():
                    out = model.generate(**params)
                assert out.shape == (batch, args.new_tokens + 1), out.shape
                return out

            for _ in range(args.warmup):
                run()
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            median = statistics.median(times)
            print(json.dumps({
                "impl": "peft", "backend": "cpu", "workload": "generate", "size": "small", "batch": batch,
                "beams": 1, "loras": n, "new_tokens": args.new_tokens, "src_len": args.src_len,
                "median_s": round(median, 6), "min_s": round(min(times), 6),
                "tokens_per_s": round(batch * args.new_tokens / median, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
                "threads": args.threads, "torch": torch.__version__, "transformers": transformers.__version__,
                "peft": peft.__version__,
            }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
