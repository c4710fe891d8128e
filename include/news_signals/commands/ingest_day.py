"""Fetch, label, validate and publish one day outside Airflow (the same functions the DAG's tasks call).

Prints the published partition, its row count and label distribution as JSON. A batch that fails
validation is quarantined under ``quarantine/date=YYYY-MM-DD/`` and the command exits 2 naming
each failed expectation; nothing reaches ``articles/``.
"""

from __future__ import annotations

import argparse
import json


def _csv(value: str) -> list[str]:
    return [x.strip() for x in value.split(",") if x.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", required=True, help="the day to ingest, YYYY-MM-DD (UTC)")
    parser.add_argument("--query", default=None, help="extra GDELT query terms, e.g. '(storm OR flood)'")
    parser.add_argument(
        "--countries", type=_csv, default=None, help="FIPS codes, comma-separated (default: settings)"
    )
    parser.add_argument(
        "--languages", type=_csv, default=None, help="languages, comma-separated (default: settings)"
    )
    parser.add_argument("--max-articles", type=int, default=None, help="stop after this many articles")
    parser.add_argument(
        "--min-rows", type=int, default=None, help="fewest rows a day may have (0 accepts empty days)"
    )
    parser.add_argument("--max-rows", type=int, default=None, help="most rows a day may have")
    parser.add_argument(
        "--max-unlabelled-share",
        type=float,
        default=None,
        help="largest share of rows with no category (0-1)",
    )


def run(args: argparse.Namespace) -> int:
    from news_signals.core.dates import parse_day
    from news_signals.daily.pipeline import ingest_day
    from news_signals.daily.validation import BatchLimits

    overrides = {
        k: v
        for k, v in (
            ("min_rows", args.min_rows),
            ("max_rows", args.max_rows),
            ("max_unlabelled_share", args.max_unlabelled_share),
        )
        if v is not None
    }
    result = ingest_day(
        parse_day(args.date, "day"),  # a bad day: ValueError, one line and exit 2 (cli.main)
        query=args.query,
        countries=args.countries,
        languages=args.languages,
        max_articles=args.max_articles,
        limits=BatchLimits(**overrides),
    )
    print(json.dumps(result, indent=2))
    return 0
