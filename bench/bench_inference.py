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

    python bench/bench_inference.py [--texts 512] [--replaced-texts 24] [--threads 2] [--max-chars 90]
        [--model-dir TRAINED_ARTIFACT]
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


def corpus_texts(n: int, max_chars: int | None = None) -> list[str]:
    from news_signals.corpus import load_corpus

    texts = [r.text for r in load_corpus() if max_chars is None or len(r.text) <= max_chars]
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


class Timer:
    """Wall and process CPU time: on a shared machine CPU time is the fairer comparison."""

    def __enter__(self) -> Timer:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--replaced-texts", type=int, default=24, help="texts for the slow one-at-a-time path")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--max-chars", type=int, help="only texts up to N characters (GDELT titles: ~60-90)")
    parser.add_argument("--model-dir", help="a trained artifact (MiniLM); default: MiniLM with random heads")
    args = parser.parse_args()

    import numpy as np
    import torch
    from news_signals.model.artifact import save_artifact
    from news_signals.model.inference import ModelClassifier
    from news_signals.model.modeling import MultiHeadModel, load_encoder, multihead_loss
    from news_signals.taxonomy import CATEGORIES

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    texts = corpus_texts(args.texts, args.max_chars)
    if args.model_dir:
        from news_signals.model.artifact import load_artifact

        art = Path(args.model_dir)
        loaded = load_artifact(art)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        encoder, tokenizer = load_encoder("minilm")
        model = MultiHeadModel(encoder).eval()
        tmp = Path(tempfile.mkdtemp(prefix="bench-model-"))
        art = save_artifact(model, tokenizer, tmp / "model", model_name="bench", base_model="minilm", max_length=64)
    results: dict[str, tuple[float, float]] = {}  # path -> (texts/s wall, texts/s per CPU-second)

    # The replaced way: one text at a time, padded to 512.
    sub = texts[: args.replaced_texts]
    with torch.no_grad():
        model(**tokenizer(sub[:1], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        with Timer() as t:
            for text in sub:
                model(**tokenizer([text], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["replaced"] = rate(len(sub), t.wall), rate(len(sub), t.cpu)

        n512 = min(len(texts), 128)
        with Timer() as t:
            for k in range(0, n512, 64):
                model(**tokenizer(texts[k : k + 64], padding="max_length", max_length=512, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["batch512"] = rate(n512, t.wall), rate(n512, t.cpu)

        with Timer() as t:
            for k in range(0, len(texts), 64):
                model(**tokenizer(texts[k : k + 64], padding=True, max_length=64, truncation=True, return_tensors="pt", return_token_type_ids=False))
        results["dynamic"] = rate(len(texts), t.wall), rate(len(texts), t.cpu)

    ours = ModelClassifier.from_dir(art, threads=args.threads)
    ours.predict(texts[:64])
    with Timer() as t:
        ref = ours.predict(texts)
    results["ours"] = rate(len(texts), t.wall), rate(len(texts), t.cpu)

    q = ModelClassifier.from_dir(art, threads=args.threads, quantize=True)
    q.predict(texts[:64])
    with Timer() as t:
        qp = q.predict(texts)
    results["ours-int8"] = rate(len(texts), t.wall), rate(len(texts), t.cpu)
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
    with Timer() as t:
        for _ in range(args.train_steps):
            step()
    train_rate = rate(32 * args.train_steps, t.wall), rate(32 * args.train_steps, t.cpu)

    base = results["replaced"]
    mean_tokens = float(np.mean([len(x) for x in tokenizer(texts)["input_ids"]]))
    print(f"MiniLM-L6 multi-head, {args.threads} threads, {len(texts)} corpus texts, mean {mean_tokens:.1f} tokens "
          f"(replaced path timed on {len(sub)}); heads {'trained' if args.model_dir else 'random'}")
    print(f"{'path':<11} {'texts/s':>9} {'ms/text':>8} {'x replaced':>11} {'texts/CPU-s':>12} {'x (CPU)':>8}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<11} {wall:9.1f} {1000 / wall:8.2f} {wall / base[0]:10.1f}x {cpu:12.1f} {cpu / base[1]:7.1f}x")
    print(f"int8 vs fp32: max |score diff| {score_dev:.4f}, max |prob diff| {prob_dev:.4f}, "
          f"tag agreement {agree:.4f} (tolerance {INT8_TOLERANCE}: {'OK' if max(score_dev, prob_dev) <= INT8_TOLERANCE else 'EXCEEDED'})")
    print(f"training: {train_rate[0]:.1f} examples/s wall, {train_rate[1]:.1f} per CPU-second "
          "(batch 32, max length 64, forward+backward+AdamW)")
    print(f"RATIO ours/replaced = {results['ours'][0] / base[0]:.1f}x wall, {results['ours'][1] / base[1]:.1f}x CPU "
          f"(target >= 50x); int8: {results['ours-int8'][0] / base[0]:.1f}x wall, {results['ours-int8'][1] / base[1]:.1f}x CPU")


if __name__ == "__main__":
    main()
