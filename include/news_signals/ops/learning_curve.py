"""Every registered version, the keyword and the hybrid labeller on today's held-out human labels.

The gate compares a candidate with production on the held-out set of its day; the held-out set
grows as annotators label more. This re-scores everything on the same, current rows, so the
question "did the human labels help?" has one table: macro-F1 (with a paired interval against
keywords) per version, next to how many human training labels each version's snapshot held.
Written to ``reports/learning_curve.json``; the demo's summary prints it, the history page draws it.
"""

from __future__ import annotations

import posixpath
from typing import Any

from news_signals.core.storage import Storage

REPORT = ("reports", "learning_curve.json")


def learning_curve(
    storage: Storage | None = None, model_name: str | None = None, hybrid: bool = True, seed: int = 13
) -> dict[str, Any] | None:
    """Score keywords, hybrid and every registered version on the current held-out rows; write the report."""
    from news_signals.labelling.classifiers import keyword_classifier, model_classifier
    from news_signals.registry import get_registry
    from news_signals.retrain.heldout import heldout_reports, load_heldout, paired_bootstrap, presence

    storage = storage or Storage()
    held = load_heldout(storage)
    if held is None:
        return None
    registry = get_registry(model_name, storage=storage)
    classifiers: dict[str, Any] = {"keywords": keyword_classifier()}
    if hybrid:
        from news_signals.labelling.hybrid import HybridLabeller

        classifiers["hybrid"] = HybridLabeller()
    versions = registry.history()
    for mv in versions:
        classifiers[mv.ref] = model_classifier(registry.download(mv.version))
    predictions = {name: presence(clf.classify_texts(held.texts)) for name, clf in classifiers.items()}
    report = heldout_reports(predictions, held)
    gated = report["gated_categories"]
    points = []
    for mv in versions:
        iv = paired_bootstrap(predictions[mv.ref], predictions["keywords"], held, gated, seed=seed)
        points.append(
            {
                "version": mv.version,
                "ref": mv.ref,
                "production": mv.is_production,
                "human_training_labels": _human_training_rows(storage, mv.metrics.get("snapshot_id")),
                "macro_f1": report["reports"][mv.ref]["macro_f1"],
                "vs_keywords": iv,
            }
        )
    out = {**report, "versions": points}
    storage.write_json(storage.path(*REPORT), out)
    return out


def _human_training_rows(storage: Storage, snapshot_id: str | None) -> int | None:
    """Human-labelled rows in the version's training split (from its snapshot manifest)."""
    if not snapshot_id:
        return None
    path = posixpath.join(storage.snapshot_dir(snapshot_id), "manifest.json")
    if not storage.fs.exists(path):
        return None
    human = storage.read_json(path).get("human_labels") or {}
    return int((human.get("rows_per_split") or {}).get("train", 0))


def table(curve: dict[str, Any] | None) -> str:
    """The learning curve as text: per category F1 of each labeller and version, then macro-F1."""
    if not curve:
        return "no held-out human labels yet (import some: python -m news_signals labels import ...)"
    reports = curve["reports"]
    names = list(reports)
    width = max(10, *(len(n) for n in names))
    labels = {p["ref"]: p["human_training_labels"] for p in curve["versions"]}
    head = f"{'held-out human F1':<16} {'rows':>5} " + " ".join(f"{n:>{width}}" for n in names)
    lines = [head, "-" * len(head)]
    for c, n in curve["rows_per_category"].items():
        if not n["known"]:
            continue
        gated = "" if c in curve["gated_categories"] else " (not gated: too few rows)"
        cells = " ".join(f"{reports[x]['categories'][c]['f1']:>{width}.3f}" for x in names)
        lines.append(f"{c:<16} {n['known']:>5} {cells}{gated}")
    lines.append(f"{'macro-F1':<16} {curve['rows']:>5} " + " ".join(f"{reports[x]['macro_f1']:>{width}.3f}" for x in names))
    lines.append(f"{'human labels':<16} {'':>5} " + " ".join(
        f"{'-' if labels.get(x) is None else labels[x]:>{width}}" for x in names
    ) + "   (human-labelled rows in the version's training split)")
    for p in curve["versions"]:
        iv = p["vs_keywords"]
        if iv.get("delta") is not None:
            lines.append(
                f"{p['ref']} minus keywords: {iv['delta']:+.3f} macro-F1, {int(iv['confidence'] * 100)}% interval "
                f"[{iv['low']:+.3f}, {iv['high']:+.3f}]{' (production)' if p['production'] else ''}"
            )
    return "\n".join(lines)
