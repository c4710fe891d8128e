"""Human labels: import an annotated file, export a labelling queue, show what the store holds.

    labels import --file F [--format jsonl|label-studio] [--source NAME]
    labels export --n N --out F [--format jsonl|label-studio] [--seed S] [--lookback-days D] [--end-date YYYY-MM-DD]
    labels stats [--json]

An import is validated whole (Great Expectations) before anything is written; a bad file is
refused with the rows named and exits 2. ``export`` picks the most informative unlabelled
articles of the recent partitions (docs/LABELS.md); the Label Studio export carries the model's
predictions as pre-annotations, and ``labels config`` prints the labelling config to paste in.
"""

from __future__ import annotations

import argparse
import json
import posixpath

from news_signals.labels.sampler import comma_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the usage lines above as written
    sub = parser.add_subparsers(dest="labels_action", required=True, metavar="ACTION")
    imp = sub.add_parser("import", help="import an annotated file as one immutable batch")
    imp.add_argument("--file", required=True, help="the annotated file (local path or fsspec URL)")
    imp.add_argument("--format", choices=("jsonl", "label-studio"), default="jsonl")
    imp.add_argument("--source", help="where the labels come from (default: the file name)")
    exp = sub.add_parser("export", help="write the N most informative unlabelled articles for annotators")
    exp.add_argument("--n", type=int, required=True, help="how many articles")
    exp.add_argument("--out", required=True, help="output file (written atomically)")
    exp.add_argument("--format", choices=("jsonl", "label-studio"), default="jsonl")
    exp.add_argument("--seed", type=int, default=13, help="tie-break seed (same seed, same queue)")
    exp.add_argument("--lookback-days", type=int, default=30, help="partitions of the last D days")
    exp.add_argument("--end-date", help="last partition date of the window (default: the newest)")
    exp.add_argument("--no-hybrid", action="store_true", help="skip the hybrid labeller's second opinion")
    exp.add_argument("--categories", type=comma_list, help="the project's scope: only ask about these categories "
                     "(comma-separated; default all)")
    exp.add_argument("--languages", type=comma_list, help="the project's scope: only queue articles in these languages "
                     "(GDELT names or codes, comma-separated, e.g. English or en; default all)")
    stats = sub.add_parser("stats", help="batches, rows, per-category counts, training vs held-out")
    stats.add_argument("--json", action="store_true", help="machine-readable output")
    sub.add_parser("config", help="print the Label Studio labelling config")


def run(args: argparse.Namespace) -> int:
    return {"import": _import, "export": _export, "stats": _stats, "config": _config}[args.labels_action](args)


def _import(args: argparse.Namespace) -> int:
    from news_signals.labels.formats import read_labels
    from news_signals.labels.store import LabelError, LabelStore

    read = read_labels(args.file, args.format)
    source = args.source or posixpath.basename(args.file.rstrip("/"))
    store = LabelStore()
    before = {b.batch_id for b in store.batches()}
    try:
        manifest = store.import_rows(read.rows, source=source, fmt=args.format, skipped=read.skipped)
    except LabelError as exc:
        raise LabelError(exc.problems, what=args.file) from exc
    if manifest.batch_id in before:
        print(f"already imported as batch {manifest.batch_id} ({manifest.rows} articles): nothing changed")
        return 0
    skipped = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in read.skipped.items())
    print(
        f"batch {manifest.batch_id}: {manifest.rows} articles from {manifest.source} ({manifest.format})"
        + (f"; skipped {skipped}" if skipped else "")
    )
    return 0


def _export(args: argparse.Namespace) -> int:
    from news_signals.labels.sampler import export_queue

    summary = export_queue(
        args.n, args.out, args.format, seed=args.seed, lookback_days=args.lookback_days,
        end_date=args.end_date, use_hybrid=not args.no_hybrid, categories=args.categories, languages=args.languages,
    )
    print(json.dumps(summary, sort_keys=True))
    return 0


def stats_dict() -> dict:
    """What ``labels stats`` prints: batches, rows and per-category counts, overall and per split."""
    from news_signals.labels.store import LabelStore, calibration_mask, category_counts, split

    store = LabelStore()
    batches = store.batches()
    current = store.current()
    training, held = split(current)
    counts = category_counts

    return {
        "batches": len(batches),
        "batch_rows": sum(b.rows for b in batches),
        "articles": len(current),
        "training": len(training),
        "calibration": int(calibration_mask(training).sum()),  # of the training part: thresholds only
        "heldout": len(held),
        "per_category": counts(current),
        "per_category_training": counts(training),
        "per_category_heldout": counts(held),
        "sources": sorted({b.source for b in batches}),
    }


def _stats(args: argparse.Namespace) -> int:
    from news_signals.core.taxonomy import CATEGORIES

    s = stats_dict()
    if args.json:
        print(json.dumps(s, sort_keys=True))
        return 0
    print(
        f"{s['batches']} batches ({s['batch_rows']} rows), {s['articles']} articles: "
        f"{s['training']} training (of which {s['calibration']} calibration), {s['heldout']} held out"
    )
    print(f"{'category':<15} {'present':>8} {'absent':>7} {'unknown':>8}   {'train known':>11} {'held-out known':>14}")
    for c in CATEGORIES:
        a, t, h = s["per_category"][c], s["per_category_training"][c], s["per_category_heldout"][c]
        print(
            f"{c:<15} {a['labelled']:>8} {a['absent']:>7} {a['unknown']:>8}   "
            f"{t['labelled'] + t['absent']:>11} {h['labelled'] + h['absent']:>14}"
        )
    return 0


def _config(args: argparse.Namespace) -> int:
    from news_signals.labels.formats import label_config

    print(label_config(), end="")
    return 0
