"""Classify daily partitions into the feature store (``headline_classifications`` and ``vibe_vectors``).

The same functions as the ``signal_feature_pipeline`` DAG: the promoted model from the registry
(or a pinned version, or keywords), keyword fallback with the reason unless ``--require-model``,
upserts by primary key so re-running a day is safe. Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys

from news_signals.core.dates import day_argument


def add_arguments(parser: argparse.ArgumentParser) -> None:
    days = parser.add_mutually_exclusive_group(required=True)
    days.add_argument(
        "--date", action="append", type=day_argument, metavar="YYYY-MM-DD", help="a day to classify (repeatable)"
    )
    days.add_argument("--all", action="store_true", help="every daily partition present in storage")
    parser.add_argument(
        "--classifier",
        default="auto",
        help="auto (promoted model, keyword fallback), keywords, or a registered version number",
    )
    parser.add_argument(
        "--require-model", action="store_true", help="fail instead of falling back to keywords"
    )
    parser.add_argument(
        "--store", choices=("auto", "local", "hopsworks"), default=None, help="feature store (default: auto)"
    )
    parser.add_argument("--batch-size", type=int, default=128)


def run(args: argparse.Namespace) -> int:
    from news_signals.core.storage import Storage
    from news_signals.features.pipeline import run_feature_pipeline
    from news_signals.features.store import get_feature_store
    from news_signals.labelling.classifiers import ModelUnavailable

    storage = Storage()
    days = storage.partition_dates() if args.all else args.date
    if not days:
        raise ValueError(
            f"no daily partitions under {storage.url(storage.path('articles'))}; run gdelt_daily_ingest first"
        )
    store = get_feature_store(storage, kind=args.store)
    try:
        summary = run_feature_pipeline(
            days,
            args.classifier,
            args.require_model,
            storage=storage,
            store=store,
            batch_size=args.batch_size,
        )
    except ModelUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(f"classifier: {summary['classifier']} ({summary['reason']})", file=sys.stderr)
    print(
        f"wrote {summary['headline_rows']} headline_classifications rows and {summary['vibe_rows']} "
        f"vibe_vectors rows to {summary['store']}",
        file=sys.stderr,
    )
    print(json.dumps(summary, indent=2))
    return 0
