"""Per-category decision thresholds on P(category present), tuned on the validation split.

The tag heads are trained with class weights (rare categories would otherwise never fire), which
moves their probabilities up: the argmax then over-predicts presence and loses precision. After
training, each category's threshold is the one that maximises F1 on the validation split (the
trainer's own held-out rows, never the test split or outside data). Categories with too few
validation positives keep the argmax, since a threshold fitted on a handful of rows is noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
MIN_POSITIVES = 8


def f1_curve(p_present: np.ndarray, gold: np.ndarray, grid: np.ndarray = GRID) -> np.ndarray:
    """F1 at each threshold of ``grid`` (present when p >= threshold)."""
    pred = p_present[None, :] >= grid[:, None]  # [len(grid), n]
    tp = (pred & gold[None, :]).sum(axis=1)
    fp = (pred & ~gold[None, :]).sum(axis=1)
    fn = (~pred & gold[None, :]).sum(axis=1)
    denom = 2 * tp + fp + fn
    return np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)


def tune_presence_thresholds(
    presence: np.ndarray,
    gold_present: np.ndarray,
    categories: Sequence[str],
    min_positives: int = MIN_POSITIVES,
) -> dict[str, float]:
    """``{category: threshold}`` maximising validation F1; ties go to the threshold nearest 0.5."""
    presence = np.asarray(presence, dtype=np.float64)
    gold_present = np.asarray(gold_present, dtype=bool)
    if presence.shape != gold_present.shape or presence.shape[1] != len(categories):
        raise ValueError(f"presence {presence.shape} and gold {gold_present.shape} must both be [n, {len(categories)}]")
    out: dict[str, float] = {}
    for j, c in enumerate(categories):
        if int(gold_present[:, j].sum()) < min_positives:
            continue
        f1 = f1_curve(presence[:, j], gold_present[:, j])
        best = np.flatnonzero(np.isclose(f1, f1.max()))
        out[c] = float(GRID[best[np.argmin(np.abs(GRID[best] - 0.5))]])
    return out
