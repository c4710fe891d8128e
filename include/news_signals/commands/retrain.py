"""Run monthly_retrain's stages in this process, in the DAG's order, with the DAG's Params.

snapshot → validate → plan → train (local subprocess) → evaluate → gate → register (+ promote).
Each step is the same stage function the DAG task calls (``news_signals.retrain.pipeline``); the
run directory it prints is what ``evaluate``, ``gate`` and ``register --run DIR`` take.
Exit status 0 = promoted (or evaluate-only), 3 = kept.
"""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime

from news_signals.commands._retrain_args import add_param_arguments, params_from_args

KEEP_EXIT = 3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--end-date", default=datetime.now(UTC).date().isoformat(), help="last day of the window (YYYY-MM-DD)"
    )
    add_param_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from news_signals.retrain import pipeline

    params = {"trainer_backend": "local", **params_from_args(args)}
    snap = pipeline.snapshot_stage(args.end_date, params)
    pipeline.validate_stage(snap["snapshot_id"], params)
    plan = pipeline.plan_stage(snap["snapshot_id"], params)
    if plan["action"] == "docker":
        raise ValueError("the CLI trains locally: pass --trainer-backend local (the DAG runs the Docker trainer)")
    if plan["action"] == "local":
        pipeline.train_local_stage(plan)
    pipeline.evaluate_stage(plan, params)
    decision = pipeline.gate_stage(plan, params)
    print(decision["table"])
    out = {"run": plan["work_dir"], "snapshot_id": snap["snapshot_id"], "decision": decision["decision"]}
    if plan["action"] != "evaluate_only":
        out["registered"] = pipeline.register_stage(plan, params, promote=decision["promote"])
    print(json.dumps(out))
    return 0 if decision["promote"] or plan["action"] == "evaluate_only" else KEEP_EXIT
