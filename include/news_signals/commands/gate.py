"""Decide promotion for a retrain run directory (``runs/<snapshot>/<key>``) and write its gate.json.

The same stage function as monthly_retrain's ``gate`` task, on the same evaluation.json, so the
same inputs give the same decision. Thresholds are the DAG's gate Params. Exit 0 = promote, 3 = keep.
"""

from __future__ import annotations

import argparse

from news_signals.commands._retrain_args import add_param_arguments, params_from_args

KEEP_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run", required=True, help="the run directory (printed by `retrain`, in the DAG's logs)")
    add_param_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain.pipeline import gate_stage, load_plan, run_params

    plan = load_plan(args.run)
    decision = gate_stage(plan, run_params(plan, params_from_args(args)))
    print(decision["table"])
    return 0 if decision["promote"] else KEEP_EXIT
