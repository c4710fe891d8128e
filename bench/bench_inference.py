"""Inference and training throughput of the multi-head MiniLM, against the replaced system's way.

The replaced system classified one article at a time, padded to 512 tokens. On the same
backbone, in the same run, this prints texts/s for:

  replaced    one text per forward, padded to 512, torch.no_grad
  batch512    batches of 64, still padded to 512 (plain batching)
  dynamic     batches of 64 in input order, truncated at 64 and padded to the batch's longest
  ours        ModelClassifier: length-sorted batches (bucketing) + dynamic padding + inference_mode
  ours-int8   the same with torch dynamic int8 quantization of the linear layers

and the ratios to `replaced`, the int8 deviation (max |score| and probability difference,
tag agreement) against fp32, and training examples/s (forward + backward + AdamW step).

    python bench/bench_inference.py [--texts 512] [--replaced-texts 24] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

INT8_TOLERANCE = 0.05  # max |difference| of scores and tag probabilities we accept for int8


def corpus_texts(n: int) -> list[str]:
    from news_signals.corpus import load_corpus

    texts = [r.text for r in load_corpus()]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--replaced-texts", type=int, default=24, help="texts for the slow one-at-a-time path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=6)
    args = parser.parse_args()

    import numpy as np
    import torch
    from news_signals.model.artifact import save_artifact
    from news_signals.model.inference import ModelClassifier
    from news_signals.model.modeling import MultiHeadModel, load_encoder, multihead_loss
    from news_signals.taxonomy import CATEGORIES

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    texts = corpus_texts(args.texts)
    encoder, tokenizer = load_encoder("minilm")
    model = MultiHeadModel(encoder).eval()
    tmp = Path(tempfile.mkdtemp(prefix="bench-model-"))
    art = save_artifact(model, tokenizer, tmp / "model", model_name="bench", base_model="minilm", max_length=64)
    results: dict[str, float] = {}

    # The replaced way: one text at a time, padded to 512.
    sub = texts[: args.replaced_texts]
    with torch.no_grad():
        model(**tokenizer(sub[:1], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        start = time.perf_counter()
        for t in sub:
            model(**tokenizer([t], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["replaced"] = rate(len(sub), time.perf_counter() - start)

        start = time.perf_counter()
        n512 = min(len(texts), 128)
        for k in range(0, n512, 64):
            model(**tokenizer(texts[k : k + 64], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["batch512"] = rate(n512, time.perf_counter() - start)

        start = time.perf_counter()
        for k in range(0, len(texts), 64):
            model(**tokenizer(texts[k : k + 64], padding=True, max_length=64, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["dynamic"] = rate(len(texts), time.perf_counter() - start)

    ours = ModelClassifier.from_dir(art, threads=args.threads)
    ours.predict(texts[:64])
    start = time.perf_counter()
    ref = ours.predict(texts)
    results["ours"] = rate(len(texts), time.perf_counter() - start)

    q = ModelClassifier.from_dir(art, threads=args.threads, quantize=True)
    q.predict(texts[:64])
    start = time.perf_counter()
    qp = q.predict(texts)
    results["ours-int8"] = rate(len(texts), time.perf_counter() - start)
    score_dev = float(np.abs(qp.scores - ref.scores).max())
    prob_dev = max(float(np.abs(qp.tag_probs[c] - ref.tag_probs[c]).max()) for c in CATEGORIES)
    agree = np.mean([(qp.tag_probs[c].argmax(1) == ref.tag_probs[c].argmax(1)).mean() for c in CATEGORIES])

    # Training throughput: forward + backward + AdamW on batches of 32 at max length 64.
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    batch = tokenizer(texts[:32], padding=True, max_length=64, truncation=True, return_tensors="pt", return_token_type_ids=False)
    targets = torch.zeros(32, len(CATEGORIES)), torch.zeros(32, len(CATEGORIES), dtype=torch.long)
    weights = torch.ones(32, len(CATEGORIES))

    def step() -> None:
        out = model(**batch)
        loss, _ = multihead_loss(out, targets[0], targets[1], weights, categories=CATEGORIES)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    start = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    train_rate = rate(32 * args.train_steps, time.perf_counter() - start)

    base = results["replaced"]
    print(f"MiniLM-L6 multi-head, {args.threads} threads, {len(texts)} corpus texts "
          f"(replaced path timed on {len(sub)})")
    print(f"{'path':<11} {'texts/s':>9} {'ms/text':>8} {'x replaced':>11}")
    for name, r in results.items():
        print(f"{name:<11} {r:9.1f} {1000 / r:8.2f} {r / base:10.1f}x")
    print(f"int8 vs fp32: max |score diff| {score_dev:.4f}, max |prob diff| {prob_dev:.4f}, "
          f"tag agreement {agree:.4f} (tolerance {INT8_TOLERANCE}: {'OK' if max(score_dev, prob_dev) <= INT8_TOLERANCE else 'EXCEEDED'})")
    print(f"training: {train_rate:.1f} examples/s (batch 32, max length 64, forward+backward+AdamW)")
    print(f"RATIO ours/replaced = {results['ours'] / base:.1f}x (target >= 50x); "
          f"best = {max(results['ours'], results['ours-int8']) / base:.1f}x")


if __name__ == "__main__":
    main()
