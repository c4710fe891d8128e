"""Register a retrain run's candidate as a new immutable version; with --promote, move production.

The same stage function as monthly_retrain's register tasks: --promote is refused unless the run's
gate.json says promote (a forced promotion goes through the gate's force_promote + reason).
"""

from __future__ import annotations

import argparse
import json

from news_signals.commands._retrain_args import add_param_arguments, params_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="the run directory (after evaluate and gate)")
    parser.add_argument("--promote", action="store_true", help="move production (only when the gate said promote)")
    add_param_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain.pipeline import load_plan, register_stage, run_params

    plan = load_plan(args.run)
    result = register_stage(plan, run_params(plan, params_from_args(args)), promote=args.promote)
    print(json.dumps(result))
    return 0
