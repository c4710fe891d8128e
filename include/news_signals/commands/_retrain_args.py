"""The monthly_retrain Params as command-line flags, generated from ``RetrainParams``.

One definition serves both: a flag exists exactly when the DAG has the Param, with the same name
(``--lookback-days`` for ``lookback_days``), so the CLI cannot drift from the DAG.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, fields
from typing import Any

# Params whose default is None: the type their value takes when given.
_NULLABLE = {"model_version": int, "sample_size": int, "gold_file": str, "threads": int, "model_name": str}
_GATE_TYPES = {"per_category_floors": json.loads}
_HIDDEN = {"gate"}


def _bool(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def add_param_arguments(parser: argparse.ArgumentParser) -> None:
    """``--<param>`` for every monthly_retrain Param (defaults stay the DAG's)."""
    from news_signals.retrain.pipeline import GATE_KEYS, RetrainParams

    group = parser.add_argument_group("monthly_retrain Params (same names and defaults as the DAG)")
    for f in fields(RetrainParams):
        if f.name in _HIDDEN:
            continue
        default = f.default if f.default is not MISSING else None
        kind = _NULLABLE.get(f.name) or (_bool if isinstance(default, bool) else type(default))
        group.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, type=kind, default=None, help=f"default {default!r}"
        )
    for key in GATE_KEYS:
        group.add_argument(
            "--" + key.replace("_", "-"),
            dest=key,
            type=_GATE_TYPES.get(key, float),
            default=None,
            help="gate threshold (default: the gate's)",
        )


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The Params dict the DAG would pass: only what was given (the stages apply the defaults)."""
    from news_signals.retrain.pipeline import GATE_KEYS, RetrainParams

    names = [f.name for f in fields(RetrainParams) if f.name not in _HIDDEN] + list(GATE_KEYS)
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
