#!/usr/bin/env python3
# requires: torch==2.15.0 transformers==4.57.6 (same venv as tests/fixtures/requirements.txt)
"""PyTorch + transformers reference benchmark for one T5 training step on CPU.

Mirrors `native bench --workload train-full|train-adapters`: a randomly initialised (seeded) T5
of --size (tiny: d_model 64, d_kv 16, d_ff 256, 4 heads, 2+2 layers; small: t5-small's shape),
vocab 32128, relu FFN, tied embeddings, dropout 0, float32, train mode.  One step is

    logits = model(input_ids, attention_mask, decoder_input_ids=shift_right(labels)).logits
    loss = cross_entropy(logits, labels, label_smoothing=0.1)
    loss.backward(); AdamW.step(); zero_grad()

on a fixed batch: --batch rows of --src-len source ids and --tgt-len label ids, the same
pseudo-random ids as ours (`t5_core::generation::synthetic_inputs`, seeds 1 and 2: ids in
[3, vocab), last id EOS = 1), attention mask all ones.

    train-full:     AdamW (lr 1e-4) over every parameter.
    train-adapters: the seed project's adapter after every self-attention and feed-forward
                    sublayer of the encoder and decoder blocks (not cross-attention):
                        h = dropout(sublayer(layer_norm(x)))
                        out = x + h + post_ln(up(relu(down(h))))
                    down: Linear(d, d/rf), up: Linear(d/rf, d), post_ln: nn.LayerNorm(d) (eps 1e-5),
                    weights ~ N(0, 0.01), biases 0.  Every T5 weight has requires_grad=False (so
                    autograd skips their weight gradients); AdamW (lr 1e-3) over the adapters only.

AdamW's hyper-parameters other than lr are burn's defaults (betas 0.9/0.999, eps 1e-5, weight
decay 1e-4), as ours uses them.  --warmup untimed steps, then --repeats timed steps; prints one
JSON line in the schema of `native bench`:
    {"impl": "pytorch", "backend": "cpu", "workload", "size", "batch", "src_len", "tgt_len",
     "reduction_factor" (null for train-full), "trainable_params", "total_params", "median_s",
     "min_s", "examples_per_s" (= batch / median_s), "peak_rss_mb" (getrusage ru_maxrss),
     "threads", "torch", "transformers"}
No weights are downloaded.

    /root/venvs/t5ref/bin/python benches/reference_train.py --workload train-adapters --size small
"""

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch
import torch.nn as nn
import torch.nn.functional as F
import transformers
from transformers import T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5LayerFF, T5LayerSelfAttention

from reference_generate import peak_rss_mb, t5_small_config  # same directory

MASK64 = (1 << 64) - 1


def t5_config(size):
    """The generation benchmark's config without dropout, as `native bench` builds it for training."""
    config = t5_small_config(size)
    config.dropout_rate = 0.0
    config.use_cache = False
    return config


def synthetic_inputs(batch, length, vocab, seed):
    """Bit-for-bit `t5_core::generation::synthetic_inputs`: an LCG; ids in [3, vocab), EOS (1) last."""

    def step(s):
        return (s * 6364136223846793005 + 1442695040888963407) & MASK64

    state = step(seed)
    rows = []
    for _ in range(batch):
        row = []
        for _ in range(max(length - 1, 0)):
            state = step(state)
            row.append(3 + (state >> 33) % (vocab - 3))
        row.append(1)
        rows.append(row)
    return torch.tensor(rows, dtype=torch.long)


class SeedAdapter(nn.Module):
    """The seed's adapter on one sublayer output h: h + post_ln(up(relu(down(h))))."""

    def __init__(self, d_model, bottleneck):
        super().__init__()
        self.down = nn.Linear(d_model, bottleneck)
        self.up = nn.Linear(bottleneck, d_model)
        self.post_layer_norm = nn.LayerNorm(d_model, eps=1e-5)
        for lin in (self.down, self.up):
            nn.init.normal_(lin.weight, std=0.01)
            nn.init.zeros_(lin.bias)

    def forward(self, h):
        return h + self.post_layer_norm(self.up(F.relu(self.down(h))))


def patch_layer(layer, adapter):
    """Monkeypatch a T5LayerSelfAttention / T5LayerFF instance: out = x + adapter(dropout(sublayer(ln(x))))."""
    if isinstance(layer, T5LayerFF):

        def ff_forward(hidden_states, _layer=layer):
            h = _layer.dropout(_layer.DenseReluDense(_layer.layer_norm(hidden_states)))
            return hidden_states + adapter(h)

        layer.forward = ff_forward
    elif isinstance(layer, T5LayerSelfAttention):

        def sa_forward(hidden_states, attention_mask=None, position_bias=None, layer_head_mask=None,
                       past_key_values=None, use_cache=False, output_attentions=False, cache_position=None,
                       _layer=layer):
            attention_output = _layer.SelfAttention(
                _layer.layer_norm(hidden_states),
                mask=attention_mask,
                position_bias=position_bias,
                layer_head_mask=layer_head_mask,
                past_key_values=past_key_values,
                use_cache=use_cache,
                output_attentions=output_attentions,
                cache_position=cache_position,
            )
            h = _layer.dropout(attention_output[0])
            return (hidden_states + adapter(h),) + attention_output[1:]

        layer.forward = sa_forward
    else:
        raise TypeError(type(layer))


def add_seed_adapters(model, reduction_factor):
    """Freeze the backbone and attach one SeedAdapter per self-attention / FF sublayer; returns them."""
    for p in model.parameters():
        p.requires_grad_(False)
    d_model = model.config.d_model
    if d_model % reduction_factor:
        raise SystemExit(f"d_model {d_model} is not divisible by --reduction-factor {reduction_factor}")
    bottleneck = d_model // reduction_factor
    adapters = nn.ModuleList()
    for stack in (model.encoder, model.decoder):
        for block in stack.block:
            for layer in block.layer:
                if isinstance(layer, (T5LayerSelfAttention, T5LayerFF)):
                    a = SeedAdapter(d_model, bottleneck)
                    patch_layer(layer, a)
                    adapters.append(a)
    # registered on the model so that .train()/.parameters() see them
    model.seed_adapters = adapters
    return adapters


def count(params):
    seen, n = set(), 0
    for p in params:
        if id(p) not in seen:  # tied embeddings count once
            seen.add(id(p))
            n += p.numel()
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workload", choices=["train-full", "train-adapters"], default="train-full")
    ap.add_argument("--size", choices=["tiny", "small"], default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--src-len", type=int, default=128)
    ap.add_argument("--tgt-len", type=int, default=16)
    ap.add_argument("--reduction-factor", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda to compare with our wgpu backend on a GPU")
    args = ap.parse_args()
    if args.repeats < 1:
        raise SystemExit("--repeats must be at least 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    model = T5ForConditionalGeneration(t5_config(args.size))
    adapters = args.workload == "train-adapters"
    if adapters:
        trainable = list(add_seed_adapters(model, args.reduction_factor).parameters())
        lr = 1e-3
    else:
        trainable = list(model.parameters())
        lr = 1e-4
    model.to(device)
    model.train()
    assert count(p for p in model.parameters() if p.requires_grad) == count(trainable)
    opt = torch.optim.AdamW(trainable, lr=lr, betas=(0.9, 0.999), eps=1e-5, weight_decay=1e-4)

    vocab = model.config.vocab_size
    input_ids = synthetic_inputs(args.batch, args.src_len, vocab, 1).to(device)
    labels = synthetic_inputs(args.batch, args.tgt_len, vocab, 2).to(device)
    attention_mask = torch.ones_like(input_ids)

    def step():
        decoder_input_ids = model._shift_right(labels)
        logits = model(input_ids=input_ids, attention_mask=attention_mask,
                       decoder_input_ids=decoder_input_ids, use_cache=False).logits
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.view(-1), label_smoothing=0.1)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    for _ in range(args.warmup):
        step()
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    rec = {
        "impl": "pytorch",
        "backend": args.device,
        "workload": args.workload,
        "size": args.size,
        "batch": args.batch,
        "src_len": args.src_len,
        "tgt_len": args.tgt_len,
        "reduction_factor": args.reduction_factor if adapters else None,
        "trainable_params": count(trainable),
        "total_params": count(model.parameters()),
        "median_s": round(median, 6),
        "min_s": round(min(times), 6),
        "examples_per_s": round(args.batch / median, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "threads": args.threads,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
