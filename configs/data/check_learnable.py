#!/usr/bin/env python3
"""Reference learnability check for configs/data (PyTorch + transformers, CPU, ~2 min).

Trains a tiny randomly initialized Hugging Face T5 from scratch on the three tasks the way the
default job does (one task per batch, drawn with probability proportional to
(n_task / n_total) ** (1 / temperature)), then greedy-decodes the validation and test splits:

    OMP_NUM_THREADS=1 /root/venvs/t5ref/bin/python configs/data/check_learnable.py
    ... --d-model 64 --steps 3000 --batch 32 --lr 1e-3 --dropout 0 --temperature 2 --seed 0

Not used by the Rust build or tests; README.md quotes its results.
"""

import argparse
import json
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration, T5TokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = {
    "sentiment": "sentence: {sentence}",
    "paraphrase": "sentence1: {sentence1} sentence2: {sentence2}",
    "similarity": "sentence1: {sentence1} sentence2: {sentence2}",
}


def load(data, task, split):
    with open(os.path.join(data, task, f"{split}.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [(TEMPLATES[task].format(**r), r["label"]) for r in rows]


def evaluate(model, tok, rows, task):
    model.eval()
    preds = []
    for i in range(0, len(rows), 100):
        batch = rows[i:i + 100]
        enc = tok([x for x, _ in batch], padding=True, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=5, num_beams=1, do_sample=False)
        preds += tok.batch_decode(out, skip_special_tokens=True)
    model.train()
    gold = [y for _, y in rows]
    if task != "similarity":
        return f"accuracy {sum(p == g for p, g in zip(preds, gold)) / len(gold):.3f}"
    values, invalid = [], 0
    for p in preds:
        try:
            values.append(float(p))
        except ValueError:
            values.append(-1.0)  # as the project's metrics (UNPARSABLE_NUMBER)
            invalid += 1
    try:
        r = statistics.correlation(values, [float(g) for g in gold])
    except statistics.StatisticsError:  # constant predictions
        r = float("nan")
    return f"pearson {r:.3f} (unparsable {invalid})"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=HERE)
    ap.add_argument("--d-model", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    tok = T5TokenizerFast.from_pretrained(os.path.join(args.data, "tokenizer"))
    train = {t: load(args.data, t, "train") for t in TEMPLATES}
    n_total = sum(len(v) for v in train.values())
    weights = {t: (len(v) / n_total) ** (1 / args.temperature) for t, v in train.items()}
    z = sum(weights.values())
    probs = {t: w / z for t, w in weights.items()}
    print("task probabilities", {t: round(p, 3) for t, p in probs.items()})

    d = args.d_model
    cfg = T5Config(vocab_size=len(tok), d_model=d, d_kv=d // 4, d_ff=4 * d, num_layers=2, num_decoder_layers=2,
                   num_heads=4, dropout_rate=args.dropout, feed_forward_proj="relu", tie_word_embeddings=True,
                   relative_attention_num_buckets=32, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    model = T5ForConditionalGeneration(cfg)
    print(f"parameters {sum(p.numel() for p in model.parameters())}, vocab {len(tok)}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (args.steps - s) / (args.steps - warmup))))

    tasks = list(train)
    losses, t0 = [], time.time()
    model.train()
    for step in range(1, args.steps + 1):
        task = rng.choices(tasks, weights=[probs[t] for t in tasks])[0]
        batch = rng.sample(train[task], args.batch)
        enc = tok([x for x, _ in batch], padding=True, return_tensors="pt")
        labels = tok([y for _, y in batch], padding=True, return_tensors="pt")["input_ids"]
        labels = labels.masked_fill(labels == tok.pad_token_id, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        losses.append(loss.item())
        if step % max(1, args.steps // 4) == 0 or step == args.steps:
            val = {t: evaluate(model, tok, load(args.data, t, "validation"), t) for t in tasks}
            print(f"step {step} loss {statistics.mean(losses[-100:]):.3f} {time.time() - t0:.0f}s  validation {val}",
                  flush=True)
    test = {t: evaluate(model, tok, load(args.data, t, "test"), t) for t in tasks}
    print(f"test {test}")


if __name__ == "__main__":
    main()
