"""Build (or reuse) a training snapshot from the daily partitions, then validate it with GX.

The same two stage functions as monthly_retrain's ``snapshot`` and ``validate_snapshot`` tasks, with
the DAG's Params. Prints the snapshot id, its directory and the counts per split as JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from news_signals.commands._retrain_args import add_param_arguments, params_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--end-date", default=datetime.now(UTC).date().isoformat(), help="last day (YYYY-MM-DD)"
    )
    parser.add_argument("--no-validate", action="store_true", help="skip the GX validation")
    add_param_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain.pipeline import snapshot_stage, validate_stage

    params = params_from_args(args)
    out = snapshot_stage(args.end_date, params)
    if not args.no_validate:
        out["validation"] = validate_stage(out["snapshot_id"], params)
    print(json.dumps(out, default=str))
    return 0
