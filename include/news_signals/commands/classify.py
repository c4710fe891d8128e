"""Classify a JSON Lines file of articles (``title`` required, ``description`` optional).

Writes the same objects in the same order with ``signals`` for all nine categories and
``classifier`` naming what produced them. ``auto`` uses the promoted model and falls back
to keywords, saying so on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--method", choices=("keywords", "model", "auto"), default="auto")
    parser.add_argument("--input", required=True, help="JSON Lines, one article per line")
    parser.add_argument("--output", required=True, help="where to write the classified JSON Lines")
    parser.add_argument("--model-dir", help="a saved model artifact (for --method model, optional for auto)")
    parser.add_argument("--require-model", action="store_true", help="with auto: fail instead of falling back")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--backend", choices=("auto", "torch", "onnx"), default="auto",
        help="model inference: auto = bf16 torch on a CPU with bf16 instructions when its check passed, else ONNX Runtime "
        "on CPU (same outputs; faster when the CPU is shared), torch on CUDA; "
        "falls back to torch with a warning when the ONNX export cannot be built",
    )
    parser.add_argument(
        "--int8", action=argparse.BooleanOptionalAction, default=None,
        help="serve the model's int8 graph when its check at registration passed (the default; docs/MODEL.md); "
        "--no-int8 serves fp32; default: the NEWS_SIGNALS_INT8 variable (on unless 0)",
    )
    parser.add_argument(
        "--bf16", action=argparse.BooleanOptionalAction, default=None,
        help="on a CPU with bf16 instructions (AMX, AVX-512 BF16), serve the model in bf16 when its check at "
        "registration passed (the default; docs/MODEL.md); default: the NEWS_SIGNALS_BF16 variable (on unless 0)",
    )


def run(args: argparse.Namespace) -> int:
    from news_signals.core.jsonl import read_articles, write_jsonl_atomic
    from news_signals.core.text import article_text
    from news_signals.labelling.classifiers import ModelUnavailable, classify_named, resolve_classifier

    articles = read_articles(args.input)
    try:
        resolution = resolve_classifier(
            args.method, args.model_dir, require_model=args.require_model, backend=args.backend, int8=args.int8,
            bf16=args.bf16,
        )
    except ModelUnavailable as exc:
        print(f"error: {exc} (drop --require-model to fall back to keywords)", file=sys.stderr)
        return 3
    clf = resolution.classifier
    backend = f", inference backend: {clf.backend}; {clf.backend_reason}" if getattr(clf, "backend", None) else ""
    print(f"classifier: {clf.name} ({resolution.reason}{backend})", file=sys.stderr)
    texts = [article_text(a["title"], a.get("description")) for a in articles]
    signals, names = classify_named(clf, texts) if texts else ([], [])
    out = [
        {**article, "signals": sig, "classifier": name}
        for article, sig, name in zip(articles, signals, names, strict=True)
    ]
    routed = sum(name != clf.name for name in names)
    if routed:
        print(f"{routed} articles in languages {clf.name} was not trained for were classified by keywords", file=sys.stderr)
    for row in out:  # keep the contract's shape: score and tag only
        row["signals"] = {c: {"score": float(s["score"]), "tag": s["tag"]} for c, s in row["signals"].items()}
    write_jsonl_atomic(args.output, out)
    print(f"wrote {len(out)} articles to {args.output}", file=sys.stderr)
    return 0
