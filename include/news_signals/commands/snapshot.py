"""Build (or reuse) a training snapshot from the daily partitions, then validate it with GX.

Prints the snapshot id, its directory and the counts per split as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--end-date", default=datetime.now(UTC).date().isoformat(), help="last day (YYYY-MM-DD)"
    )
    parser.add_argument("--lookback-days", type=int, default=30)
    parser.add_argument("--labeller", choices=("auto", "hybrid", "keywords", "partition"), default="auto")
    parser.add_argument(
        "--dedupe-threshold", type=float, default=0.9, help="TF-IDF cosine for near-duplicates"
    )
    parser.add_argument("--max-per-class", type=int, default=5000, help="cap per primary category")
    parser.add_argument("--label-filter", nargs="*", default=(), help="keep only these primary categories")
    parser.add_argument("--min-rows-per-category", type=int, default=5)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--max-label-shift-kl", type=float, default=0.5)
    parser.add_argument("--no-validate", action="store_true", help="skip the GX validation")


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain.snapshot import SnapshotParams, build_snapshot
    from news_signals.retrain.validation import SnapshotChecks, check_snapshot

    result = build_snapshot(
        SnapshotParams(
            end_date=args.end_date,
            lookback_days=args.lookback_days,
            labeller=args.labeller,
            dedupe_threshold=args.dedupe_threshold,
            max_per_class=args.max_per_class,
            label_filter=tuple(args.label_filter),
            min_rows_per_category=args.min_rows_per_category,
            seed=args.seed,
        )
    )
    out = {
        "snapshot_id": result.id,
        "path": result.path,
        "counts": result.manifest["counts"],
        "reused": result.reused,
    }
    if not args.no_validate:
        report = check_snapshot(
            result.id,
            checks=SnapshotChecks(
                min_train_rows=args.min_rows_per_category, max_label_shift_kl=args.max_label_shift_kl
            ),
        )
        print(report.table())
        out["validation"] = "passed"
    print(json.dumps(out))
    return 0
