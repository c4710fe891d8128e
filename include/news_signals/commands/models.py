"""List registered model versions (production marked), or promote / download one."""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-name", help="registry model name (default: settings)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--promote", type=int, metavar="VERSION", help="move production to VERSION (rollback)"
    )
    parser.add_argument("--reason", default="", help="why (required with --promote)")
    parser.add_argument("--download", type=int, metavar="VERSION", help="download VERSION and print its path")


def run(args: argparse.Namespace) -> int:
    from news_signals.registry import get_registry

    registry = get_registry(args.model_name)
    if args.promote is not None:
        registry.promote(args.promote, args.reason)
    if args.download is not None:
        print(registry.download(args.download))
        return 0
    history = registry.history()
    if args.json:
        print(json.dumps([h.to_dict() for h in history], default=str))
        return 0
    if not history:
        print(f"no versions of {registry.name} registered yet")
        return 0
    print(f"{'':2}{'version':>7}  {'created':<25} {'macro_f1':>8}  {'gate':<8} description")
    for h in history:
        f1 = h.metrics.get("macro_f1")
        gate = (h.gate or {}).get("decision", "-")
        print(
            f"{'*' if h.is_production else ' ':2}{h.version:>7}  {h.created_at:<25} "
            f"{f1 if f1 is None else round(float(f1), 4)!s:>8}  {gate:<8} {h.description}"
        )
    return 0
