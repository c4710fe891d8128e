"""List registered model versions (production marked), promote / download one, or roll production back.

``models rollback --to N --reason "..." [--by NAME]`` moves production back to a version that served
before, recorded with who (default: the OS user), when and why in the promotion history.
``models history`` prints that history.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=["list", "rollback", "history"],
        default="list",
        help="list versions (default), roll production back (--to, --reason), or show the promotion history",
    )
    parser.add_argument("--model-name", help="registry model name (default: settings)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--to", type=int, metavar="VERSION", help="rollback: the version production goes back to")
    parser.add_argument(
        "--promote", type=int, metavar="VERSION", help="move production to VERSION (any registered version)"
    )
    parser.add_argument("--reason", default="", help="why (required with rollback and --promote; recorded)")
    parser.add_argument("--by", default=None, help="who (recorded; default: the OS user)")
    parser.add_argument("--download", type=int, metavar="VERSION", help="download VERSION and print its path")


def run(args: argparse.Namespace) -> int:
    from news_signals.registry import RegistryError

    try:
        return _run(args)
    except RegistryError as exc:  # a refused move: one clear line; production is unchanged
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from news_signals.registry import get_registry

    registry = get_registry(args.model_name)
    by = args.by or getpass.getuser()
    if args.action == "rollback":
        if args.to is None:
            raise ValueError("models rollback needs --to VERSION (`models` lists the registered versions)")
        mv = registry.rollback(args.to, args.reason, by)
        print(f"production {registry.name} is now version {mv.version} (rollback by {by}: {args.reason})")
        return 0
    if args.action == "history":
        moves = registry.promotions()
        if args.json:
            print(json.dumps(moves, default=str))
            return 0
        print(f"{'when':<33} {'action':<9} {'from':>5} {'to':>5}  {'by':<16} reason")
        for m in moves:
            print(
                f"{m.get('promoted_at') or '':<33} {m.get('action') or 'promote':<9} "
                f"{m.get('previous') if m.get('previous') is not None else '-'!s:>5} {m['version']:>5}  "
                f"{m.get('by') or '-':<16} {m.get('reason') or ''}"
            )
        return 0
    if args.promote is not None:
        registry.promote(args.promote, args.reason, by=by)
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
    print(f"{'':2}{'version':>7}  {'created':<25} {'held-out human macro-F1 [vs keywords]':<40} {'gate':<8} description")
    for h in history:
        gate = (h.gate or {}).get("decision", "-")
        print(
            f"{'*' if h.is_production else ' ':2}{h.version:>7}  {h.created_at:<25} "
            f"{_heldout_cell(h.metrics):<40} {gate:<8} {h.description}"
        )
    print("(macro-F1 on held-out human labels, with the paired 95% interval of the difference to the keyword "
          "labeller on the same rows; agreement with bootstrap labels: `models --json`, metrics.macro_f1)")
    return 0


def _heldout_cell(metrics: dict) -> str:
    human = metrics.get("heldout") or {}
    if human.get("macro_f1") is None:
        return "- (no held-out human labels)"
    iv = (human.get("intervals") or {}).get("candidate-keywords") or {}
    cell = f"{human['macro_f1']:.4f}"
    if iv.get("low") is not None:
        cell += f" [{iv['low']:+.3f}, {iv['high']:+.3f}]"
    return cell + f" ({human.get('rows')} rows)"
