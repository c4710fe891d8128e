"""The end-of-demo summary: what was stored, how the model compares, what the gate decided.

Reads only what the pipelines wrote (partitions, registry, run folders, feature groups), so
it is also a quick health view after any run: ``python -m tools.summary``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from pathlib import Path

from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, tag_column


def partitions_table(storage: Storage, dates: Sequence[str] | None = None) -> str:
    """Row counts and per-category positives for each stored daily partition."""
    dates = list(dates) if dates else storage.partition_dates()
    stored = set(storage.partition_dates())
    short = {c: c[:6] for c in CATEGORIES}
    lines = [f"{'date':<11} {'rows':>5}  " + " ".join(f"{short[c]:>6}" for c in CATEGORIES)]
    total = 0
    for day in dates:
        if day not in stored:
            lines.append(f"{day:<11} {'MISSING':>5}")
            continue
        df = storage.read_parquet(storage.partition_file(day))
        total += len(df)
        counts = [int((df[tag_column(c)] != "").sum()) for c in CATEGORIES]
        lines.append(f"{day:<11} {len(df):>5}  " + " ".join(f"{n:>6}" for n in counts))
    lines.append(f"{'total':<11} {total:>5}   (columns: articles with a tag in each category)")
    return "\n".join(lines)


def _latest_evaluation(storage: Storage) -> dict | None:
    paths = storage.fs.glob(storage.path("runs", "*", "*", "evaluation.json"))
    if not paths:
        return None
    newest = max(paths, key=lambda p: storage.fs.info(p).get("mtime", 0) or 0)
    return storage.read_json(newest)


def agreement_table(storage: Storage) -> str:
    """Per-category F1 of the newest candidate (and production) against the snapshot's bootstrap labels.

    Agreement with the labeller that made the labels, not quality: the keyword labeller is left out
    on purpose (it would be scored against its own kind of labels).
    """
    evaluation = _latest_evaluation(storage)
    if not evaluation:
        return "no evaluation found (monthly_retrain has not run)"
    reports = evaluation["reports"]
    names = [n for n in ("candidate", "production") if reports.get(n)]
    lines = [f"{'category':<15} " + " ".join(f"{n:>10}" for n in names)]
    for c in CATEGORIES:
        cells = [f"{reports[n]['per_category'][c]['f1']:>10.3f}" for n in names]
        lines.append(f"{c:<15} " + " ".join(cells))
    lines.append(f"{'macro-F1':<15} " + " ".join(f"{reports[n]['macro_f1']:>10.3f}" for n in names))
    lines.append(f"({evaluation.get('test_rows')} rows of the snapshot's test split, labelled by its bootstrap labeller)")
    return "\n".join(lines)


def heldout_table(storage: Storage) -> str:
    """The newest retrain on the held-out human labels: per category, rows, and the intervals."""
    from news_signals.retrain.gate import heldout_table as table

    evaluation = _latest_evaluation(storage)
    heldout = (evaluation or {}).get("heldout")
    if not heldout:
        return "not evaluated: no held-out human labels (python -m news_signals labels import ...)"
    lines = [table(heldout)]
    reports = heldout["reports"]
    for name in (n for n in ("candidate", "production") if n in reports):
        lead = reports[name]["macro_f1"] - reports["keywords"]["macro_f1"]
        ref = evaluation.get(f"{name}_ref") or name  # type: ignore[union-attr]
        label = name if ref == name else f"{name} ({ref})"
        lines.append(
            f"{label} is {'ahead of' if lead > 0 else 'behind'} the keyword labeller by {abs(lead):.3f} "
            f"macro-F1 on {heldout['rows']} held-out human-labelled rows"
        )
    return "\n".join(lines)


def learning_curve_table(storage: Storage) -> str:
    """The learning curve the demo wrote (``news_signals.ops.learning_curve``)."""
    from news_signals.ops.learning_curve import REPORT, table

    path = storage.path(*REPORT)
    return table(storage.read_json(path) if storage.fs.exists(path) else None)


def registry_table(model_name: str | None = None, storage: Storage | None = None) -> str:
    from news_signals.registry import get_registry

    registry = get_registry(model_name, storage=storage)
    rows = registry.history()
    if not rows:
        return "no model registered"
    lines = [f"{'version':<8} {'held-out human macro-F1 [interval vs keywords]':<46} {'gate':<8} {'production':<10} created"]
    for mv in rows:
        gate = (mv.gate or {}).get("decision", "-")
        forced = " (forced)" if (mv.gate or {}).get("forced") else ""
        human = mv.metrics.get("heldout") or {}
        iv = (human.get("intervals") or {}).get("candidate-keywords") or {}
        if human.get("macro_f1") is None:
            cell = "- (no held-out human labels)"
        elif iv.get("low") is None:
            cell = f"{human['macro_f1']:.3f} ({human.get('rows')} rows)"
        else:
            cell = f"{human['macro_f1']:.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}] ({human.get('rows')} rows)"
        lines.append(
            f"{mv.version:<8} {cell:<46} {gate + forced:<8} {'yes' if mv.is_production else '':<10} {mv.created_at}"
        )
    return "\n".join(lines)


def feature_groups(storage: Storage) -> str:
    from news_signals.features.store import get_feature_store
    from news_signals.features.store.base import HEADLINE_SPEC, VIBE_SPEC

    store = get_feature_store(storage)
    lines = []
    for spec in (HEADLINE_SPEC, VIBE_SPEC):
        try:
            df = store.read(spec)
        except FileNotFoundError:
            lines.append(f"{spec.name}: empty")
            continue
        lines.append(f"{spec.name}: {len(df)} rows")
        if "classifier" in df.columns:
            for name, n in df["classifier"].value_counts().items():
                lines.append(f"  classifier {name}: {n} rows")
    lines.append(f"  ({store.describe()})")
    return "\n".join(lines)


def last_gate_table(storage: Storage) -> str:
    paths = storage.fs.glob(storage.path("runs", "*", "*", "gate.json"))
    if not paths:
        return "no gate decision yet"
    newest = max(paths, key=lambda p: storage.fs.info(p).get("mtime", 0) or 0)
    gate = storage.read_json(newest)
    head = f"{'rule':<28} {'value':>8} {'threshold':>9}  result  why"
    lines = [head]
    for r in gate["rules"]:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        thr = "-" if r["threshold"] is None else f"{r['threshold']:.4f}"
        lines.append(f"{r['name']:<28} {value:>8} {thr:>9}  {'PASS' if r['passed'] else 'FAIL':<6}  {r.get('detail') or ''}")
    forced = f" (FORCED: {gate.get('reason')})" if gate.get("forced") else ""
    lines.append(f"decision: {gate['decision'].upper()}{forced}")
    lines.append(f"  candidate {gate.get('candidate')}, production before: {gate.get('production') or 'none'}")
    lines.append(f"  gate.json: {posixpath.dirname(newest)}/gate.json")
    return "\n".join(lines)


def labels_table(storage: Storage) -> str:
    """Where the human labels came from: one line per import batch, and plainly, when they are simulated."""
    from news_signals.labels.store import LabelStore

    from tools.oracle_annotator import ORACLE

    batches = LabelStore(storage).batches()
    if not batches:
        return "  none (import some: python -m news_signals labels import ...)"
    lines = [
        f"  {b.batch_id}  {b.rows:>6,} rows  {b.source} ({b.format}; by {', '.join(b.annotators) or 'unknown'})"
        + ("; " + ", ".join(f"{n:,} {why.replace('_', ' ')}" for why, n in sorted(b.skipped.items())) if b.skipped else "")
        for b in batches
    ]
    if any(ORACLE in b.annotators for b in batches):
        lines.append(
            f"  Nobody labelled anything for this demo: {ORACLE} is a simulated annotator that answers from the "
            "public human labels of the disaster-response messages' train split (English, four categories; "
            "the data set's validation and test splits are never read)."
        )
    return "\n".join(lines)


def demo_summary(home: str | None = None, airflow_home: Path | None = None, backfill: Sequence[str] = ()) -> str:
    storage = Storage(home)
    parts = [
        "Daily partitions (articles/):",
        partitions_table(storage, backfill or None),
        "",
        "Human labels (labels/ import batches):",
        labels_table(storage),
        "",
        "Learning curve on the held-out human labels (every labeller and version on the same rows):",
        learning_curve_table(storage),
        "",
        "Last retrain on the held-out human labels (F1 per category; what the gate judged):",
        heldout_table(storage),
        "",
        "Last retrain: agreement with the snapshot's bootstrap labels (not quality; keywords left out):",
        agreement_table(storage),
        "",
        "Last promotion gate:",
        last_gate_table(storage),
        "",
        "Model registry:",
        registry_table(storage=storage),
        "",
        "Feature groups:",
        feature_groups(storage),
        "",
        "Where to look:",
        f"  data root        {storage.root}",
        f"  partitions       {storage.path('articles')}",
        f"  registry         {storage.path('registry')}",
        f"  features         {storage.path('features')}",
        f"  quarantine       {storage.path('quarantine')}",
    ]
    if airflow_home:
        parts += [
            f"  Airflow logs     {airflow_home / 'logs'}",
            "  Airflow UI       make ui   (then http://localhost:8080)",
        ]
    return "\n".join(parts)


if __name__ == "__main__":
    print(demo_summary())
