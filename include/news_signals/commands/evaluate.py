"""Evaluate a retrain run (``--run DIR``: monthly_retrain's evaluate stage, held-out human labels
included), or any model artifact and/or the keyword labeller on a snapshot split or a gold file.

With both --model-dir and --keywords the two are scored on the same rows and printed side by side.
Writes report.json + examples.jsonl per classifier and comparison.{json,txt} under --out.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="a retrain run directory: the DAG's evaluate stage, with its Params")
    src.add_argument("--snapshot", help="snapshot directory; evaluates one split (--split)")
    src.add_argument("--input", help="gold JSON Lines: title (+ description) and signals {category: {score, tag}}")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--model-dir", help="a saved model artifact")
    parser.add_argument("--keywords", action="store_true", help="also evaluate the keyword labeller")
    parser.add_argument("--out", help="directory for the reports (not with --run: the run's eval/)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-latency", action="store_true", help="skip latency/throughput measurement")


def run(args: argparse.Namespace) -> int:
    if args.run:
        return _run_stage(args)
    from news_signals.model.evaluate import evaluate_many

    if not args.out:
        raise ValueError("--out DIR is required with --snapshot or --input")

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


def _run_stage(args: argparse.Namespace) -> int:
    import json

    from news_signals.retrain.pipeline import evaluate_stage, load_plan, run_params

    plan = load_plan(args.run)
    params = run_params(plan, {"threads": args.threads} if args.threads else {})
    print(json.dumps(evaluate_stage(plan, params)))
    return 0
