"""Measure labellers on the development data: the disaster messages' train/news rows.

Only ``split == "train"`` rows are ever read (via ``news_signals.corpus.disaster_train_news``);
the validation and test splits are reserved for outside evaluation. The disaster labels map
onto four of our categories; the others have no human labels here and are not scored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from news_signals.core.taxonomy import ABSENT, Signals

# our category -> disaster label columns (positive when any is 1)
DISASTER_MAPPING: dict[str, tuple[str, ...]] = {
    "emergencies": ("fire", "earthquake"),
    "weather_wet": ("floods", "storm"),
    "weather_temp": ("cold",),
    "transportation": ("transport",),
}
EVAL_CATEGORIES: tuple[str, ...] = tuple(DISASTER_MAPPING)


@dataclass(frozen=True)
class DevSet:
    texts: list[str]
    truth: dict[str, list[bool]]  # category -> gold label per text
    source: str


def disaster_dev_set(limit: int | None = None) -> DevSet:
    """Texts and mapped gold labels of the disaster train/news rows (never validation/test)."""
    from news_signals.corpus import disaster_train_news

    df = disaster_train_news()
    if set(df["split"]) != {"train"}:  # belt and braces: the held-out splits must never be scored here
        raise ValueError("the development set may only contain split == 'train' rows")
    df = df[df["genre"] == "news"].reset_index(drop=True)
    if limit is not None:
        df = df.iloc[:limit]
    truth = {cat: (df[list(cols)].max(axis=1) > 0).tolist() for cat, cols in DISASTER_MAPPING.items()}
    return DevSet(df["message"].astype(str).tolist(), truth, "disaster_response_messages split=train genre=news")


def prf(pred: Sequence[bool], gold: Sequence[bool]) -> dict[str, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn, "predicted": tp + fp}


def score_predictions(signals: Sequence[Signals], truth: Mapping[str, Sequence[bool]]) -> dict[str, object]:
    """Per-category precision/recall/F1 (present = non-empty tag) and their macro-F1."""
    per_cat = {}
    for cat, gold in truth.items():
        pred = [s[cat]["tag"] != ABSENT for s in signals]
        per_cat[cat] = prf(pred, gold)
    macro = sum(m["f1"] for m in per_cat.values()) / len(per_cat) if per_cat else 0.0
    return {"categories": per_cat, "macro_f1": macro}


def markdown_table(results: Mapping[str, Mapping[str, object]], f1_only: bool = False) -> str:
    """One row per labeller: P/R/F1 (or F1 only) per category, then macro-F1 (the README includes this)."""
    first = next(iter(results.values()), {"categories": {c: {} for c in EVAL_CATEGORIES}})
    cats = list(first["categories"])  # type: ignore[call-overload]
    unit = "F1" if f1_only else "P / R / F1"
    head = "| labeller | " + " | ".join(f"{c} {unit}" for c in cats) + " | macro-F1 |"
    sep = "|---|" + "---|" * (len(cats) + 1)
    rows = [head, sep]
    for name, res in results.items():
        cells = []
        for c in cats:
            m = res["categories"][c]  # type: ignore[index]
            cells.append(f"{m['f1']:.2f}" if f1_only else f"{m['precision']:.2f} / {m['recall']:.2f} / {m['f1']:.2f}")
        rows.append(f"| {name} | " + " | ".join(cells) + f" | **{res['macro_f1']:.3f}** |")
    return "\n".join(rows)


def to_json(results: Mapping[str, object]) -> str:
    return json.dumps(results, indent=2, sort_keys=True)


HANDMADE_FILE = "dev_handmade.json"


def handmade_dev_set(lang: str | None = None) -> DevSet:
    """The small hand-written development set (all nine categories, sv + en; provenance in the file)."""
    from importlib import resources

    from news_signals.core.taxonomy import CATEGORIES, TAGS

    data = json.loads(resources.files("news_signals.labelling").joinpath(HANDMADE_FILE).read_text("utf-8"))
    items = [it for it in data["items"] if lang is None or it["lang"] == lang]
    for it in items:
        for cat, tag in it["labels"].items():
            if cat not in CATEGORIES or tag not in TAGS[cat]:
                raise ValueError(f"{HANDMADE_FILE}: {it['text']!r} has label {cat}={tag!r} outside the taxonomy")
    truth = {cat: [cat in it["labels"] for it in items] for cat in CATEGORIES}
    return DevSet([it["text"] for it in items], truth, f"{HANDMADE_FILE} (hand-written, lang={lang or 'all'})")


def development_reports(classifiers: Mapping[str, object], dev: DevSet) -> dict[str, dict[str, object]]:
    """Each classifier on the same human-labelled development rows: P/R/F1 per labelled category.

    monthly_retrain runs this next to the snapshot's test split, because that split is labelled by
    the bootstrap labeller itself (which flatters the keyword labeller); the gate's keyword rule
    uses these numbers when they exist.
    """
    import time

    out: dict[str, dict[str, object]] = {}
    for name, clf in classifiers.items():
        start = time.perf_counter()
        signals = clf.classify_texts(dev.texts)  # type: ignore[attr-defined]
        res = score_predictions(signals, dev.truth)
        res.update(
            classifier=getattr(clf, "name", name),
            rows=len(dev.texts),
            source=dev.source,
            seconds=round(time.perf_counter() - start, 2),
        )
        out[name] = res
    return out
