"""``python -m news_signals <command>``: every DAG task is a thin call into these commands.

Each command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; modules import heavy libraries inside ``run`` so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "classify": ("news_signals.commands.classify", "classify a JSON Lines file of articles"),
    "label": ("news_signals.commands.label", "label a JSON Lines file with keywords, hybrid or an LLM"),
    "fetch": ("news_signals.commands.fetch", "fetch one day of GDELT articles"),
    "ingest-day": ("news_signals.commands.ingest_day", "fetch, label, validate and publish one day"),
    "snapshot": ("news_signals.commands.snapshot", "build a training snapshot from daily partitions"),
    "retrain": ("news_signals.commands.retrain", "run monthly_retrain's stages here, with its Params"),
    "train": ("news_signals.commands.train", "train the multi-head model on a snapshot"),
    "evaluate": ("news_signals.commands.evaluate", "evaluate a model or the keyword labeller"),
    "gate": ("news_signals.commands.gate", "decide promotion for a retrain run (same stage as the DAG)"),
    "register": ("news_signals.commands.register", "register a retrain run's candidate (same stage as the DAG)"),
    "models": ("news_signals.commands.models", "list registered model versions"),
    "labels": ("news_signals.commands.labels", "import, export (active learning) and count human labels"),
    "features": ("news_signals.commands.features", "classify a partition into the feature store"),
    "doctor": ("news_signals.commands.doctor", "check the installation, storage and services"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="news_signals", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:  # Airflow 3.3 logs its config loading at INFO when a command imports it: not ours to show
        logging.getLogger("airflow").setLevel(logging.WARNING)
    try:
        return int(args._run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        # Bad input: one clear line, no traceback, non-zero exit.
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
