"""Decide promotion from evaluation reports (evaluate's report.json files) and write gate.json.

Exit status 0 = promote, 3 = keep, so scripts can branch on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

KEEP_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--candidate", required=True, help="the candidate's report.json")
    parser.add_argument("--keywords", required=True, help="the keyword labeller's report.json")
    parser.add_argument("--production", help="the production model's report.json (omit for the first model)")
    parser.add_argument("--gold", help="the candidate's report.json on the gold file")
    parser.add_argument(
        "--thresholds", help="JSON object overriding gate thresholds, e.g. '{\"min_gain\": 0.01}'"
    )
    parser.add_argument("--out", help="where to write gate.json")
    parser.add_argument("--force-promote", action="store_true")
    parser.add_argument("--reason", default="", help="required with --force-promote")


def _read(path: str | None, what: str) -> dict | None:
    if path is None:
        return None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{what} report {p} does not exist; run `python -m news_signals evaluate` first"
        )
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} report {p} is not JSON: {exc.msg}") from exc


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain.gate import GateThresholds, decide

    try:
        overrides = json.loads(args.thresholds) if args.thresholds else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"--thresholds is not a JSON object: {exc.msg}") from exc
    decision = decide(
        _read(args.candidate, "candidate"),
        _read(args.keywords, "keywords"),
        _read(args.production, "production"),
        GateThresholds.from_mapping(overrides),
        gold=_read(args.gold, "gold"),
        force_promote=args.force_promote,
        reason=args.reason,
    )
    print(decision.table())
    if args.out:
        from news_signals.core.storage import Storage

        Storage(str(Path(args.out).parent)).write_json(str(Path(args.out).resolve()), decision.to_dict())
    return 0 if decision.promote else KEEP_EXIT
