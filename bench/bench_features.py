"""Feature pipeline costs per stage, and how the local store's upsert grows with the group size.

Synthetic daily partitions (real headline text shapes, keyword labeller, GX suite, parquet
store in a temporary home). Prints seconds per stage and the ratio of the 10th day's upsert
to the first (the single-file local store rewrites the whole group on every upsert).

    python bench/bench_features.py [--rows 2000] [--days 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000, help="articles per day")
    parser.add_argument("--days", type=int, default=10)
    args = parser.parse_args()

    import logging

    logging.disable(logging.INFO)
    from _feature_helpers import make_partition
    from news_signals.core.storage import Storage
    from news_signals.features.pipeline import classify_rows, vibe_vectors
    from news_signals.features.store import HEADLINE_SPEC, VIBE_SPEC
    from news_signals.features.store.expectations import validate_rows
    from news_signals.features.store.local import LocalFeatureStore
    from news_signals.labelling.classifiers import keyword_classifier

    store = LocalFeatureStore(Storage(tempfile.mkdtemp(prefix="bench-features-")))
    clf = keyword_classifier()
    validate_rows(HEADLINE_SPEC, classify_rows(make_partition("2024-01-01", 10), clf))  # warm GX import

    timings: dict[str, list[float]] = {"classify": [], "validate": [], "upsert": [], "vibe": []}
    for d in range(args.days):
        day = f"2024-01-{d + 1:02d}"
        part = make_partition(day, args.rows)
        t = time.perf_counter()
        rows = classify_rows(part, clf)
        timings["classify"].append(time.perf_counter() - t)
        t = time.perf_counter()
        validate_rows(HEADLINE_SPEC, rows)
        timings["validate"].append(time.perf_counter() - t)
        t = time.perf_counter()
        store.upsert(HEADLINE_SPEC, rows)  # includes its own validation
        timings["upsert"].append(time.perf_counter() - t - timings["validate"][-1])
        t = time.perf_counter()
        store.upsert(VIBE_SPEC, vibe_vectors(rows, day))
        timings["vibe"].append(time.perf_counter() - t)

    total = len(store.read(HEADLINE_SPEC))
    print(f"{args.rows} articles/day, {args.days} days, {total} rows in headline_classifications")
    for stage, values in timings.items():
        print(
            f"  {stage:9s} first {values[0]:.3f}s  last {values[-1]:.3f}s  mean {sum(values) / len(values):.3f}s"
        )
    print(f"  keyword classify: {args.rows / timings['classify'][-1]:.0f} articles/s")
    print(
        f"  upsert write (excl. validation) day {args.days} / day 1: {timings['upsert'][-1] / timings['upsert'][0]:.2f}x"
    )


if __name__ == "__main__":
    main()
