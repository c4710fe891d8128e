"""Register a model artifact as a new immutable version; optionally promote it to production."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="the trained artifact directory")
    parser.add_argument("--metrics", help="evaluation report.json to store with the version")
    parser.add_argument("--gate", help="gate.json to store with the version")
    parser.add_argument("--description", default="")
    parser.add_argument("--promote", action="store_true", help="move production to this version")
    parser.add_argument("--reason", default="", help="why (required with --promote)")
    parser.add_argument("--model-name", help="registry model name (default: settings)")


def run(args: argparse.Namespace) -> int:
    from news_signals.registry import get_registry

    if args.promote and not args.reason.strip():
        raise ValueError("--promote needs --reason (it is recorded in the promotion log)")
    metrics = json.loads(Path(args.metrics).read_text()) if args.metrics else {}
    gate = json.loads(Path(args.gate).read_text()) if args.gate else None
    registry = get_registry(args.model_name)
    mv = registry.register(args.model_dir, metrics, gate=gate, description=args.description)
    if args.promote:
        mv = registry.promote(mv.version, args.reason)
    print(json.dumps({"name": mv.name, "version": mv.version, "production": mv.is_production}))
    return 0
