"""Train the multi-head model on a snapshot and write a hashed model artifact to --out.

Restarting the same command resumes from the last finished epoch (out/checkpoints/last).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from news_signals.model.train import CONFIDENCE_MODES, PRECISIONS, TRAIN_PATHS, TrainConfig

    d = TrainConfig()  # the trainer's defaults, written once

    parser.add_argument("--snapshot", required=True, help="snapshot directory with train/val/test.parquet")
    parser.add_argument("--base-model", default="minilm", help="local HF model dir, hub id (cached), or 'minilm'")
    parser.add_argument("--out", required=True, help="artifact directory (replaced when training finishes)")
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--batch-size", type=int, default=d.batch_size)
    parser.add_argument("--lr", type=float, default=d.lr, help="encoder learning rate (heads: 100x)")
    parser.add_argument("--max-length", type=int, default=d.max_length, help="tokens per text (headlines fit in 64)")
    parser.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    parser.add_argument("--patience", type=int, default=d.patience, help="epochs without val macro-F1 gain before stopping")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--sample", type=int, help="use at most N training rows (quick trial)")
    parser.add_argument("--confidence-mode", choices=CONFIDENCE_MODES, default=d.confidence_mode)
    parser.add_argument("--filter-threshold", type=float, default=d.filter_threshold, help="with --confidence-mode filter")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--log-every", type=int, default=d.log_every, help="log progress every N steps")
    parser.add_argument(
        "--languages",
        default="auto",
        help="comma list (en,sv) the model is trained for and serves; other languages go to keywords. "
        "auto: what the base model knows (minilm: en), else all; 'all' for every language",
    )
    parser.add_argument("--train-path", choices=TRAIN_PATHS, default=d.train_path,
                        help="fast (default): frozen lower layers cached once, top layers trained; full: whole encoder every step")
    parser.add_argument("--frozen-layers", type=int, default=d.frozen_layers, help="with --train-path fast: lower blocks frozen and cached")
    parser.add_argument("--precision", choices=PRECISIONS, default=d.precision, help="auto: CUDA autocast; on a CPU bf16 autocast where it has bf16 instructions (AMX, AVX-512 BF16), else fp32")
    parser.add_argument("--model-name", default=None, help="name stored in the manifest (default: settings)")


def parse_languages(value: str | None, base_model: str) -> list[str]:
    """``auto`` -> the base model's known languages; ``all``/empty -> []; else the comma list."""
    from news_signals.model.backbone import default_languages

    value = (value or "").strip()
    if value == "auto":
        return default_languages(base_model)
    if value in ("", "all"):
        return []
    return [v.strip() for v in value.split(",") if v.strip()]


def run(args: argparse.Namespace) -> int:
    from news_signals.core.config import Settings
    from news_signals.model.train import TrainConfig, train

    config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        max_length=args.max_length,
        warmup_ratio=args.warmup_ratio,
        patience=args.patience,
        seed=args.seed,
        sample=args.sample,
        confidence_mode=args.confidence_mode,
        filter_threshold=args.filter_threshold,
        threads=args.threads,
        log_every=args.log_every,
        model_name=args.model_name or Settings().model_name,
        languages=tuple(parse_languages(args.languages, args.base_model)),
        train_path=args.train_path,
        frozen_layers=args.frozen_layers,
        precision=args.precision,
    )
    out = train(args.snapshot, args.base_model, args.out, config)
    from news_signals.model.artifact import MANIFEST

    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    m = manifest["metrics"]
    print(
        json.dumps(
            {"artifact": str(out), "best_epoch": m.get("best_epoch"), "val_macro_f1": m.get("val_macro_f1"),
             "test_macro_f1": m.get("test_macro_f1"), "train_examples_per_s": m.get("train_examples_per_s")}
        ),
        file=sys.stdout,
    )
    return 0
