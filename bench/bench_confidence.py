"""Does weighting or filtering by label confidence help? A controlled label-noise experiment.

Keyword-labelled corpus texts form a snapshot; a share of the *training* labels is then
corrupted (a category flipped: present → absent, absent → a random tag) and, as a labeller
would, the corrupted labels get lower confidence than the clean ones (overlapping ranges,
so confidence is informative but imperfect). MiniLM is trained with each confidence mode
on the same data and seed and scored on the clean test split.

    python bench/bench_confidence.py [--texts 900] [--noise 0.3] [--epochs 3] [--batch-size 16] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=900)
    parser.add_argument("--noise", type=float, default=0.3, help="share of training rows with one corrupted category")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--modes", default="none,weight,filter")
    args = parser.parse_args()

    import pandas as pd
    import torch
    from news_signals.core.taxonomy import CATEGORIES, TAGS, confidence_column, score_column, tag_column
    from news_signals.corpus import load_corpus
    from news_signals.labelling.keywords import KeywordLabeller
    from news_signals.model.evaluate import evaluate
    from news_signals.model.inference import ModelClassifier
    from news_signals.model.snapshot_io import read_split, truth_signals
    from news_signals.model.train import TrainConfig, train

    from tools.tiny_model import make_snapshot_from_texts

    torch.set_num_threads(args.threads)
    texts = [r.text for r in load_corpus()][:8000]
    sigs = KeywordLabeller().classify_texts(texts)
    pos = [t for t, s in zip(texts, sigs, strict=True) if any(v["tag"] for v in s.values())]
    neg = [t for t, s in zip(texts, sigs, strict=True) if not any(v["tag"] for v in s.values())]
    n_pos = int(args.texts * 0.65)
    work = Path(tempfile.mkdtemp(prefix="bench-conf-"))
    snap = make_snapshot_from_texts(pos[:n_pos] + neg[: args.texts - n_pos], work / "snapshot", snapshot_id="conf")

    rng = random.Random(7)
    train_df = pd.read_parquet(snap / "train.parquet")
    for c in CATEGORIES:
        train_df[confidence_column(c)] = [rng.uniform(0.4, 1.0) for _ in range(len(train_df))]
    noisy = rng.sample(range(len(train_df)), int(args.noise * len(train_df)))
    for i in noisy:
        c = rng.choice(CATEGORIES)
        if train_df.at[i, tag_column(c)]:
            train_df.at[i, tag_column(c)], train_df.at[i, score_column(c)] = "", 0.0
        else:
            train_df.at[i, tag_column(c)] = rng.choice(TAGS[c])
            train_df.at[i, score_column(c)] = rng.choice([-1, 1]) * rng.uniform(0.3, 0.9)
        train_df.at[i, confidence_column(c)] = rng.uniform(0.1, 0.6)
    train_df.to_parquet(snap / "train.parquet", index=False)
    test = read_split(snap, "test")

    results = {}
    for mode in args.modes.split(","):
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-4, threads=args.threads, log_every=0, confidence_mode=mode, eval_test=False)
        out = train(snap, "minilm", work / f"model-{mode}", config)
        report = evaluate(ModelClassifier.from_dir(out), list(test["text"]), truth_signals(test), measure_latency=False)
        results[mode] = report
    print(f"{len(train_df)} training rows, {len(noisy)} with a corrupted category (confidence 0.1-0.6; clean 0.4-1.0); "
          f"clean test rows {len(test)}; MiniLM, {args.epochs} epochs")
    print(f"{'mode':<8} {'macro_f1':>9} {'micro_f1':>9} {'tag_acc':>8}")
    for mode, r in results.items():
        print(f"{mode:<8} {r['macro_f1']:9.3f} {r['micro_f1']:9.3f} {r['tag_accuracy'] or 0:8.3f}")


if __name__ == "__main__":
    main()
