"""Training throughput of the old (full) and the fast trainer path, and their held-out human quality.

Both paths train MiniLM (or ``--base-model``) on the same bootstrap-labelled snapshot: ``--texts``
English replay-corpus texts labelled by ``--labeller`` (keywords by default; the monthly retrain's
default is hybrid), split 70/15/15 by ``tools/tiny_model.py::make_snapshot_from_texts``. Then:

  old   train_path full, fp32: back-propagation through the whole encoder every step
  fast  the trainer's default (train_path fast, precision auto: bf16 autocast on a CPU with bf16
        instructions, fp32 on other CPUs): the lower
        ``frozen_layers`` blocks run once per text and cached, the top blocks and heads trained
        on the cache in length-bucketed batches

examples/s is what the trainer records in the artifact manifest (``metrics.training``): examples
trained / seconds in the training loop, the fast path's lower-layer cache included (per-epoch
validation, threshold tuning and saving are outside it and the same for both). Examples per
CPU-second of this process are printed too: on a machine shared with other work they are the
steadier figure.

Quality is the macro-F1 on held-out human labels: the disaster messages' development rows (train
split, news genre; four categories) whose article id is on the held-out side of
``news_signals.labels.split.is_heldout``; neither model trained on them (they trained on corpus
texts). The keyword labeller on the same rows is printed for reference.

    python bench/bench_train.py [--texts 2000] [--epochs 3] [--threads 2] [--base-model minilm]
        [--labeller keywords|hybrid] [--heldout-limit N] [--frozen-layers 4]

The last line is ``training speedup N.NNx (quality delta +/-0.0xx)`` (fast over old).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def english_texts(n: int) -> list[str]:
    """``n`` English replay-corpus texts spread evenly over the corpus (all of them if fewer)."""
    from news_signals.corpus import load_corpus

    texts = list(dict.fromkeys(r.text.strip() for r in load_corpus() if r.lang == "en" and r.text.strip()))
    step = max(1, len(texts) // n)
    return texts[::step][:n]


def heldout_dev(limit: int | None) -> Any:
    """The disaster development rows on the held-out side of the human-label split."""
    from news_signals.labelling.evaluation import DevSet, disaster_dev_set
    from news_signals.labels.split import is_heldout
    from news_signals.labels.store import text_article_id

    dev = disaster_dev_set()
    keep = [i for i, t in enumerate(dev.texts) if is_heldout(text_article_id(t))]
    if limit:
        keep = keep[:limit]
    truth = {c: [v[i] for i in keep] for c, v in dev.truth.items()}
    return DevSet([dev.texts[i] for i in keep], truth, dev.source + " held-out side")


def cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def train_one(name: str, snapshot: Path, out: Path, args: argparse.Namespace, **path: Any) -> dict[str, Any]:
    from news_signals.model.train import TrainConfig, train

    config = TrainConfig(
        epochs=args.epochs, threads=args.threads, log_every=0, eval_test=False, model_name=f"bench-{name}",
        patience=args.epochs, languages=(), **path,
    )
    wall, cpu = time.perf_counter(), cpu_seconds()
    train(snapshot, args.base_model, out, config)
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    metrics = json.loads((out / "news_signals.json").read_text(encoding="utf-8"))["metrics"]
    training = metrics["training"]
    return {
        "name": name,
        "path": training["path"],
        "examples_per_s": training["examples_per_s"],
        "examples_per_cpu_s": training["examples"] / cpu,
        "loop_seconds": training["loop_seconds"],
        "wall_seconds": wall,
        "val_macro_f1": metrics["val_macro_f1"],
        "out": out,
    }


def heldout_f1(model_dir: Path, dev: Any, threads: int | None) -> float:
    from news_signals.labelling.evaluation import score_predictions
    from news_signals.model.inference import ModelClassifier

    clf = ModelClassifier.from_dir(model_dir, threads=threads, backend="torch")
    return float(score_predictions(clf.classify_texts(dev.texts), dev.truth)["macro_f1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=2000, help="English corpus texts in the snapshot (70%% train)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--base-model", default="minilm")
    parser.add_argument("--labeller", choices=("keywords", "hybrid"), default="keywords")
    parser.add_argument("--frozen-layers", type=int, default=None, help="fast path's frozen blocks (default: the trainer's)")
    parser.add_argument("--heldout-limit", type=int, default=None, help="score on at most N held-out rows")
    args = parser.parse_args()

    import torch
    from news_signals.labelling.evaluation import score_predictions
    from news_signals.labelling.keywords import KeywordLabeller
    from news_signals.model.train import cpu_has_native_bf16

    from tools.tiny_model import make_snapshot_from_texts

    torch.set_num_threads(args.threads)
    dev = heldout_dev(args.heldout_limit)
    texts = english_texts(args.texts)
    if args.labeller == "hybrid":
        from news_signals.labelling.hybrid import HybridLabeller

        labeller: Any = HybridLabeller()
    else:
        labeller = KeywordLabeller()
    print(f"{len(texts)} English corpus texts labelled by {args.labeller}; {args.epochs} epochs; "
          f"{args.threads} threads; native bf16 on this CPU: {cpu_has_native_bf16()}", flush=True)
    print(f"held-out human rows: {len(dev.texts)} ({dev.source})", flush=True)
    fast_kwargs = {} if args.frozen_layers is None else {"frozen_layers": args.frozen_layers}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        snap = make_snapshot_from_texts(texts, Path(tmp) / "snapshot", labeller, snapshot_id="bench-train")
        runs = [
            train_one("old", snap, Path(tmp) / "old", args, train_path="full", precision="fp32"),
            train_one("fast", snap, Path(tmp) / "fast", args, train_path="fast", precision="auto", **fast_kwargs),
        ]
        for run in runs:
            run["heldout_macro_f1"] = heldout_f1(run["out"], dev, args.threads)
    keywords = float(score_predictions(KeywordLabeller().classify_texts(dev.texts), dev.truth)["macro_f1"])

    print("\n| path | trainer path | examples/s | examples/CPU-s | loop s | wall s | val macro-F1 (agreement) | held-out human macro-F1 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['name']} | {r['path']} | {r['examples_per_s']:.1f} | {r['examples_per_cpu_s']:.1f} | "
              f"{r['loop_seconds']:.0f} | {r['wall_seconds']:.0f} | {r['val_macro_f1']:.3f} | {r['heldout_macro_f1']:.3f} |")
    print(f"| keywords | (no training) | | | | | | {keywords:.3f} |")
    old, fast = runs
    ratio = fast["examples_per_s"] / old["examples_per_s"]
    cpu_ratio = fast["examples_per_cpu_s"] / old["examples_per_cpu_s"]
    delta = fast["heldout_macro_f1"] - old["heldout_macro_f1"]
    print(f"\nper CPU-second: {cpu_ratio:.2f}x")
    print(f"training speedup {ratio:.2f}x (quality delta {delta:+.3f})")


if __name__ == "__main__":
    main()
