"""The held-out human labels: the only numbers the promotion gate trusts.

The snapshot's test split is labelled by the bootstrap labeller, so a score there is agreement
with that labeller, not quality. Human labels are split once and for all by ``article_id`` hash
(``labels.split.is_heldout``); the held-out part never reaches a training split and is what the
gate scores candidate, production and the keyword labeller on.

Labels are partial: a row counts for a category only where a human said present or absent.
A category with too few known rows (or positives) is reported, not gated: its F1 would be noise.
Differences between two classifiers come with a paired bootstrap interval over the same rows,
because with a few hundred rows a 0.005 gain is noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals

if TYPE_CHECKING:
    import numpy as np

PRESENT, ABSENT_LABEL, UNKNOWN = 1, 0, -1
MIN_ROWS = 50  # known rows a category needs to be gated
MIN_POSITIVES = 10  # and present rows
BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class HeldoutSet:
    """Held-out texts with per-category truth: 1 present, 0 absent, -1 not labelled."""

    article_ids: list[str]
    texts: list[str]
    truth: Any  # int8 array [rows, len(CATEGORIES)]
    sources: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def rows_per_category(self) -> dict[str, dict[str, int]]:
        t = self.truth
        return {
            c: {"known": int((t[:, j] != UNKNOWN).sum()), "present": int((t[:, j] == PRESENT).sum())}
            for j, c in enumerate(CATEGORIES)
        }

    def gated_categories(
        self, min_rows: int = MIN_ROWS, min_positives: int = MIN_POSITIVES
    ) -> tuple[list[str], dict[str, str]]:
        """(categories the gate scores, {category: why it is only reported})."""
        gated, reported = [], {}
        for c, n in self.rows_per_category().items():
            if n["known"] < min_rows or n["present"] < min_positives:
                reported[c] = (
                    f"{n['known']} labelled rows, {n['present']} present "
                    f"(needs {min_rows} and {min_positives}): reported, not gated"
                )
            else:
                gated.append(c)
        return gated, reported


def truth_matrix(labels: Sequence[Mapping[str, str | None]]) -> np.ndarray:
    """Per row, per category: a tag → present, "" → absent, None/missing → unknown."""
    import numpy as np

    out = np.full((len(labels), len(CATEGORIES)), UNKNOWN, dtype=np.int8)
    for i, row in enumerate(labels):
        for j, c in enumerate(CATEGORIES):
            value = row.get(c)
            if value is not None and value == value:  # NaN from Parquet nulls is unknown too
                out[i, j] = PRESENT if value != ABSENT else ABSENT_LABEL
    return out


def load_heldout(storage: Storage | None = None) -> HeldoutSet | None:
    """The held-out part of the human-labels store, or None when it holds no held-out rows."""
    from news_signals.labels.store import LabelStore, split

    current = LabelStore(storage).current()
    if current.empty:
        return None
    _, held = split(current)
    if held.empty:
        return None
    held = held.sort_values("article_id").reset_index(drop=True)
    rows = held[list(CATEGORIES)].to_dict("records")
    sources = held["last_batch"].value_counts().to_dict() if "last_batch" in held else {}
    return HeldoutSet(
        held["article_id"].astype(str).tolist(),
        held["text"].astype(str).tolist(),
        truth_matrix(rows),
        {str(k): int(v) for k, v in sources.items()},
    )


def presence(signals: Sequence[Signals]) -> np.ndarray:
    """Predicted presence per row and category (a non-empty tag)."""
    import numpy as np

    return np.array([[s[c]["tag"] != ABSENT for c in CATEGORIES] for s in signals], dtype=bool).reshape(
        len(signals), len(CATEGORIES)
    )


def _counts(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> tuple[Any, Any, Any]:
    """tp, fp, fn per category (rows unknown for a category count for nothing); batched over weights."""
    known = truth != UNKNOWN
    gold = truth == PRESENT
    tp = (pred & gold).astype(float)
    fp = (pred & ~gold & known).astype(float)
    fn = (~pred & gold).astype(float)
    if weights is None:
        return tp.sum(0), fp.sum(0), fn.sum(0)
    return weights @ tp, weights @ fp, weights @ fn


def _f1(tp: Any, fp: Any, fn: Any) -> Any:
    import numpy as np

    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)


def score(pred: np.ndarray, held: HeldoutSet, gated: Sequence[str]) -> dict[str, Any]:
    """Per-category P/R/F1 on the labelled rows; macro-F1 over the gated categories only."""
    tp, fp, fn = _counts(pred, held.truth)
    f1 = _f1(tp, fp, fn)
    rows = held.rows_per_category()
    per_cat = {}
    for j, c in enumerate(CATEGORIES):
        if rows[c]["known"] == 0:
            continue
        p = tp[j] / (tp[j] + fp[j]) if tp[j] + fp[j] else 0.0
        r = tp[j] / (tp[j] + fn[j]) if tp[j] + fn[j] else 0.0
        per_cat[c] = {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f1[j]),
            "rows": rows[c]["known"],
            "support": rows[c]["present"],
            "gated": c in gated,
        }
    idx = [CATEGORIES.index(c) for c in gated]
    macro = float(f1[idx].mean()) if idx else float("nan")
    return {"categories": per_cat, "macro_f1": macro, "rows": len(held), "gated_categories": list(gated)}


def paired_bootstrap(
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    held: HeldoutSet,
    gated: Sequence[str],
    *,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 13,
) -> dict[str, Any]:
    """Macro-F1 of A minus B with a percentile interval, resampling rows (the same rows for both)."""
    import numpy as np

    idx = [CATEGORIES.index(c) for c in gated]
    if not idx or len(held) == 0:
        return {"delta": None, "low": None, "high": None, "samples": 0, "confidence": confidence}
    truth = held.truth[:, idx]
    a, b = pred_a[:, idx], pred_b[:, idx]
    delta = float(_f1(*_counts(a, truth)).mean() - _f1(*_counts(b, truth)).mean())
    rng = np.random.default_rng(seed)
    n = len(held)
    deltas = np.empty(samples)
    chunk = max(1, min(samples, 2_000_000 // max(n, 1)))  # bound the weight matrix's memory
    for start in range(0, samples, chunk):
        k = min(chunk, samples - start)
        weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(k)]).astype(float)
        fa = _f1(*_counts(a, truth, weights)).mean(axis=1)
        fb = _f1(*_counts(b, truth, weights)).mean(axis=1)
        deltas[start : start + k] = fa - fb
    tail = (1 - confidence) / 2
    low, high = np.quantile(deltas, [tail, 1 - tail])
    return {
        "delta": delta,
        "low": float(low),
        "high": float(high),
        "samples": samples,
        "confidence": confidence,
        "seed": seed,
    }


def heldout_reports(
    predictions: Mapping[str, np.ndarray],
    held: HeldoutSet,
    *,
    min_rows: int = MIN_ROWS,
    min_positives: int | None = None,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 13,
) -> dict[str, Any]:
    """Reports per classifier plus candidate-minus-X intervals, as evaluation.json stores them.

    ``min_positives`` defaults to a fifth of ``min_rows`` (at most MIN_POSITIVES).
    """
    if min_positives is None:
        min_positives = min(MIN_POSITIVES, max(1, min_rows // 5))
    gated, reported = held.gated_categories(min_rows, min_positives)
    reports = {name: score(pred, held, gated) for name, pred in predictions.items()}
    intervals = {}
    if "candidate" in predictions:
        for other in ("production", "keywords", "llm"):
            if other in predictions:
                intervals[f"candidate-{other}"] = paired_bootstrap(
                    predictions["candidate"], predictions[other], held, gated, samples=samples, seed=seed
                )
    return {
        "source": "held-out human labels",
        "rows": len(held),
        "rows_per_category": held.rows_per_category(),
        "gated_categories": gated,
        "reported_only": reported,
        "batches": held.sources,
        "reports": reports,
        "intervals": intervals,
    }
