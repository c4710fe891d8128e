"""Evaluate a model artifact and/or the keyword labeller on a snapshot split or a gold JSON Lines file.

With both --model-dir and --keywords the two are scored on the same rows and printed side by side.
Writes report.json + examples.jsonl per classifier and comparison.{json,txt} under --out.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--snapshot", help="snapshot directory; evaluates one split (--split)")
    src.add_argument("--input", help="gold JSON Lines: title (+ description) and signals {category: {score, tag}}")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model-dir", help="a saved model artifact")
    parser.add_argument("--keywords", action="store_true", help="also evaluate the keyword labeller")
    parser.add_argument("--out", required=True, help="directory for the reports")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-latency", action="store_true", help="skip latency/throughput measurement")


def run(args: argparse.Namespace) -> int:
    from news_signals.model.evaluate import evaluate_many

    if not args.model_dir and not args.keywords:
        raise ValueError("nothing to evaluate: give --model-dir DIR and/or --keywords")
    if args.snapshot:
        from news_signals.model.snapshot_io import read_split, truth_signals

        df = read_split(args.snapshot, args.split)
        texts, truth = list(df["text"]), truth_signals(df)
    else:
        from news_signals.core.jsonl import read_gold

        texts, truth = read_gold(args.input)
        if not texts:
            raise ValueError(f"{args.input} has no articles to evaluate")
    classifiers = {}
    if args.model_dir:
        from news_signals.model.inference import ModelClassifier

        classifiers["model"] = ModelClassifier.from_dir(args.model_dir, threads=args.threads)
    if args.keywords:
        from news_signals.labelling.classifiers import keyword_classifier

        classifiers["keywords"] = keyword_classifier()
    result = evaluate_many(classifiers, texts, truth, out_dir=args.out, measure_latency=not args.no_latency)
    print(f"{len(texts)} rows; reports in {args.out}", file=sys.stderr)
    print(result["table"], end="")
    return 0
