"""Fetch one day of GDELT articles into a Parquet file (atomically): the DAG's fetch stage.

The endpoint is ``NEWS_SIGNALS_GDELT_URL`` (or ``--url``), else the Airflow connection
``gdelt_api``, else api.gdeltproject.org. Prints a JSON summary (rows, requests, retries) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from news_signals.core.dates import day_argument


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", required=True, type=day_argument, help="the UTC day to fetch, YYYY-MM-DD")
    parser.add_argument("--output", required=True, help="Parquet file to write (local path or fsspec URL)")
    parser.add_argument("--countries", type=_csv, help="FIPS codes, comma-separated (default: settings, SW)")
    parser.add_argument("--languages", type=_csv, help="GDELT language names (default: swedish,english)")
    parser.add_argument("--query", help="extra GDELT query text ANDed with the filters, e.g. 'storm'")
    parser.add_argument("--max-articles", type=int, help="stop once this many articles are in")
    parser.add_argument("--url", help="DOC API endpoint (overrides NEWS_SIGNALS_GDELT_URL)")
    parser.add_argument("--min-interval", type=float, help="seconds between requests (GDELT asks for 5)")


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from news_signals.core.config import Settings
    from news_signals.daily.gdelt import GdeltFetchError
    from news_signals.daily.pipeline import fetch_stage

    settings = Settings.from_env()
    if args.url:
        settings = replace(settings, gdelt_url=args.url)
    if args.min_interval is not None:
        settings = replace(settings, gdelt_min_interval_s=args.min_interval)
    try:
        fetched = fetch_stage(
            args.date,
            settings=settings,
            query=args.query,
            countries=args.countries,
            languages=args.languages,
            max_articles=args.max_articles,
            output=args.output if "://" in args.output else os.path.abspath(args.output),
        )
    except GdeltFetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"date": fetched["day"], "rows": fetched["rows"], "output": fetched["staged"], **fetched["fetch"]}))
    return 0
