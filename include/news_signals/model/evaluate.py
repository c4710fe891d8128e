"""One evaluation code path for every Classifier (the model, the keyword or hybrid labeller).

Metrics, all on the same rows:

- detection per category (present = tag != ""): precision, recall, F1 and support with
  ``sklearn.metrics.precision_recall_fscore_support``; ``macro_f1`` is the mean F1 over the
  categories that occur in the truth *or* in the predictions (as sklearn does for labels it
  sees), so a category nobody mentions does not count as a perfect 1 or a free 0;
  ``macro_f1_all`` averages all nine categories (absent-everywhere ones count 0).
- ``tag_accuracy``: among (row, category) pairs present in the truth, the share whose
  predicted tag equals the true tag.
- ``top{1,2,3}_accuracy``: among rows with at least one present category, whether the
  primary true category (largest |true score|, ties by taxonomy order) is among the k
  categories ranked first. Ranking uses P(present) when the classifier offers it
  (``classify_with_presence``, the model); otherwise predicted-present categories first,
  then |score|, then ``confidence`` when given (keyword labeller: present and |score|).
- ``score_mae`` over all pairs (absent = 0), ``score_mae_present`` over truth-present
  pairs, and ``sign_agreement``: among pairs both sides mark present with a nonzero true
  score, the share whose signs agree.
- latency p50/p95 in ms for one text at a time and throughput (texts/s) in batches of 64.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals, check_signals

log = logging.getLogger(__name__)

TABLE_METRICS = (
    "macro_f1",
    "macro_f1_all",
    "micro_f1",
    "tag_accuracy",
    "top1_accuracy",
    "top2_accuracy",
    "top3_accuracy",
    "score_mae",
    "score_mae_present",
    "sign_agreement",
)


def _present(sig: Mapping[str, Any]) -> bool:
    return str(sig.get("tag") or ABSENT) != ABSENT


def primary_category(sig: Signals) -> int | None:
    """Index of the present category with the largest |score| (taxonomy order breaks ties)."""
    best, best_abs = None, -1.0
    for j, c in enumerate(CATEGORIES):
        if _present(sig[c]) and abs(float(sig[c]["score"])) > best_abs:
            best, best_abs = j, abs(float(sig[c]["score"]))
    return best


def rank_categories(sig: Signals, presence: np.ndarray | None = None) -> list[int]:
    """Category indices, most likely present first (see the module docstring)."""
    if presence is not None:
        return sorted(range(len(CATEGORIES)), key=lambda j: (-float(presence[j]), j))

    def key(j: int) -> tuple[float, float, float, int]:
        s = sig[CATEGORIES[j]]
        return (-float(_present(s)), -abs(float(s["score"])), -float(s.get("confidence", 0.0)), j)

    return sorted(range(len(CATEGORIES)), key=key)


def score_predictions(
    truth: Sequence[Signals], predicted: Sequence[Signals], presence: np.ndarray | None = None
) -> dict[str, Any]:
    """All quality metrics for predictions against truth (same order, same length)."""
    from sklearn.metrics import precision_recall_fscore_support

    if len(truth) != len(predicted):
        raise ValueError(f"{len(truth)} truth rows but {len(predicted)} predictions; they must align row by row")
    n = len(truth)
    if n == 0:
        raise ValueError("nothing to evaluate: no rows")
    y_true = np.array([[_present(t[c]) for c in CATEGORIES] for t in truth], dtype=bool)
    y_pred = np.array([[_present(p[c]) for c in CATEGORIES] for p in predicted], dtype=bool)
    per_category: dict[str, dict[str, float | int]] = {}
    seen_f1: list[float] = []
    for j, c in enumerate(CATEGORIES):
        p, r, f, _ = precision_recall_fscore_support(
            y_true[:, j], y_pred[:, j], average="binary", pos_label=True, zero_division=0
        )
        support, n_pred = int(y_true[:, j].sum()), int(y_pred[:, j].sum())
        per_category[c] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": support, "predicted": n_pred}
        if support or n_pred:
            seen_f1.append(float(f))
    _, _, micro, _ = precision_recall_fscore_support(
        y_true.ravel(), y_pred.ravel(), average="binary", pos_label=True, zero_division=0
    )

    tag_hits = tag_total = 0
    abs_err: list[float] = []
    abs_err_present: list[float] = []
    sign_hits = sign_total = 0
    topk_hits = {1: 0, 2: 0, 3: 0}
    topk_total = 0
    for i, (t, p) in enumerate(zip(truth, predicted, strict=True)):
        for c in CATEGORIES:
            ts, ps = float(t[c]["score"]), float(p[c]["score"])
            err = abs(ps - ts)
            abs_err.append(err)
            if _present(t[c]):
                abs_err_present.append(err)
                tag_total += 1
                tag_hits += int(p[c]["tag"] == t[c]["tag"])
                if _present(p[c]) and ts != 0.0:
                    sign_total += 1
                    sign_hits += int(math.copysign(1, ts) == math.copysign(1, ps) and ps != 0.0)
        primary = primary_category(t)
        if primary is not None:
            topk_total += 1
            ranking = rank_categories(p, None if presence is None else presence[i])
            for k in topk_hits:
                topk_hits[k] += int(primary in ranking[:k])

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    return {
        "n_examples": n,
        "per_category": per_category,
        "macro_f1": float(np.mean(seen_f1)) if seen_f1 else 1.0,
        "macro_f1_all": float(np.mean([per_category[c]["f1"] for c in CATEGORIES])),
        "micro_f1": float(micro),
        "tag_accuracy": ratio(tag_hits, tag_total),
        "top1_accuracy": ratio(topk_hits[1], topk_total),
        "top2_accuracy": ratio(topk_hits[2], topk_total),
        "top3_accuracy": ratio(topk_hits[3], topk_total),
        "score_mae": float(np.mean(abs_err)),
        "score_mae_present": float(np.mean(abs_err_present)) if abs_err_present else None,
        "sign_agreement": ratio(sign_hits, sign_total),
        "counts": {"present_pairs": tag_total, "sign_pairs": sign_total, "rows_with_primary": topk_total},
    }


def predict(classifier: Any, texts: Sequence[str]) -> tuple[list[Signals], np.ndarray | None]:
    """Signals (and P(present) when the classifier can give it) for every text."""
    texts = list(texts)
    if hasattr(classifier, "classify_with_presence"):
        signals, presence = classifier.classify_with_presence(texts)
    else:
        signals, presence = classifier.classify_texts(texts), None
    if len(signals) != len(texts):
        raise ValueError(f"classifier {classifier.name} returned {len(signals)} results for {len(texts)} texts")
    for i, sig in enumerate(signals):
        try:
            check_signals(sig)
        except ValueError as exc:
            raise ValueError(f"classifier {classifier.name} broke the signals contract on row {i}: {exc}") from exc
    return list(signals), presence


def measure_speed(
    classifier: Any, texts: Sequence[str], *, latency_samples: int = 50, throughput_texts: int = 256, batch: int = 64
) -> dict[str, float]:
    """Latency p50/p95 (ms) one text at a time, and texts/s in batches of ``batch``."""
    texts = [t for t in texts if t] or ["empty"]
    classifier.classify_texts(texts[:1])  # warm-up: lazy loads, allocator
    lat = []
    for t in texts[:latency_samples]:
        start = time.perf_counter()
        classifier.classify_texts([t])
        lat.append((time.perf_counter() - start) * 1000.0)
    pool = (texts * (throughput_texts // len(texts) + 1))[:throughput_texts]
    start = time.perf_counter()
    for k in range(0, len(pool), batch):
        classifier.classify_texts(pool[k : k + batch])
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(lat, n=20, method="inclusive") if len(lat) > 1 else [lat[0]] * 19
    return {
        "latency_ms_p50_batch1": float(statistics.median(lat)),
        "latency_ms_p95_batch1": float(q[18]),
        f"throughput_texts_per_s_batch{batch}": len(pool) / elapsed if elapsed > 0 else float("inf"),
        "latency_samples": len(lat),
        "throughput_texts": len(pool),
    }


def _slim(sig: Signals) -> dict[str, dict[str, Any]]:
    return {c: {k: sig[c][k] for k in ("score", "tag", "confidence") if k in sig[c]} for c in CATEGORIES}


def example_rows(texts: Sequence[str], truth: Sequence[Signals], predicted: Sequence[Signals]) -> list[dict[str, Any]]:
    """One JSON-ready row per text: truth, prediction, per-category correctness (presence + tag)."""
    rows = []
    for text, t, p in zip(texts, truth, predicted, strict=True):
        correct = {c: p[c]["tag"] == t[c]["tag"] for c in CATEGORIES}
        rows.append({"text": text, "truth": _slim(t), "predicted": _slim(p), "correct": correct, "all_correct": all(correct.values())})
    return rows


def evaluate(
    classifier: Any,
    texts: Sequence[str],
    truth: Sequence[Signals],
    *,
    out_dir: str | Path | None = None,
    measure_latency: bool = True,
    latency_samples: int = 50,
    throughput_texts: int = 256,
) -> dict[str, Any]:
    """Quality (and optionally speed) of ``classifier`` on ``texts``; report.json + examples.jsonl in out_dir."""
    texts = list(texts)
    if len(texts) != len(truth):
        raise ValueError(f"{len(texts)} texts but {len(truth)} truth rows; they must align")
    predicted, presence = predict(classifier, texts)
    report: dict[str, Any] = {"classifier": classifier.name, **score_predictions(truth, predicted, presence)}
    report["ranking"] = "p_present" if presence is not None else "present,|score|,confidence"
    if measure_latency:
        report["speed"] = measure_speed(
            classifier, texts, latency_samples=latency_samples, throughput_texts=throughput_texts
        )
    if out_dir is not None:
        write_report(out_dir, report, example_rows(texts, truth, predicted))
    return report


def write_report(out_dir: str | Path, report: Mapping[str, Any], examples: Sequence[Mapping[str, Any]]) -> None:
    """report.json and examples.jsonl, each written atomically."""
    from news_signals.core.jsonl import write_jsonl_atomic
    from news_signals.core.storage import Storage

    store = Storage(str(out_dir))
    write_jsonl_atomic(Path(out_dir) / "examples.jsonl", examples)
    store.write_json(store.path("report.json"), report)


def evaluate_many(
    classifiers: Mapping[str, Any],
    texts: Sequence[str],
    truth: Sequence[Signals],
    *,
    out_dir: str | Path | None = None,
    measure_latency: bool = True,
) -> dict[str, Any]:
    """Several classifiers on the same rows: per-classifier reports plus a side-by-side table."""
    reports = {}
    for name, clf in classifiers.items():
        sub = None if out_dir is None else Path(out_dir) / name
        reports[name] = evaluate(clf, texts, truth, out_dir=sub, measure_latency=measure_latency)
    result = {"reports": reports, "table": comparison_table(reports)}
    if out_dir is not None:
        from news_signals.core.storage import Storage

        store = Storage(str(out_dir))
        store.write_json(store.path("comparison.json"), {"table": result["table"], "n_examples": len(texts)})
        store.write_bytes(store.path("comparison.txt"), result["table"].encode())
    return result


def comparison_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """A plain-text table: metrics (and per-category F1) as rows, classifiers as columns."""
    names = list(reports)
    rows: list[tuple[str, list[str]]] = []

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)

    for m in TABLE_METRICS:
        rows.append((m, [fmt(reports[n].get(m)) for n in names]))
    for c in CATEGORIES:
        rows.append((f"f1 {c}", [fmt(reports[n]["per_category"][c]["f1"]) for n in names]))
    for key in ("latency_ms_p50_batch1", "latency_ms_p95_batch1", "throughput_texts_per_s_batch64"):
        if all("speed" in reports[n] for n in names):
            rows.append((key, [fmt(reports[n]["speed"].get(key)) for n in names]))
    width = max(len(r[0]) for r in rows)
    cols = [max(len(n), 8) for n in names]
    lines = [" ".join([" " * width, *(n.rjust(w) for n, w in zip(names, cols, strict=True))])]
    for label, values in rows:
        lines.append(" ".join([label.ljust(width), *(v.rjust(w) for v, w in zip(values, cols, strict=True))]))
    return "\n".join(lines) + "\n"
