"""Per-category decision thresholds on P(category present), tuned on the validation split.

The tag heads are trained with class weights (rare categories would otherwise never fire), which
moves their probabilities up: the argmax then over-predicts presence and loses precision. After
training, each category's threshold is the one that maximises F1 on the validation split (the
trainer's own held-out rows, never the test split or outside data). Categories with too few
validation positives keep the argmax, since a threshold fitted on a handful of rows is noise.

Where the validation split holds enough human-labelled rows of a category, its threshold is tuned
on those rows alone: the bootstrap labels are the teacher's definition of the category, the human
labels are the one the product is judged by (the gate scores held-out human labels), and a
threshold is exactly where the two disagree most (e.g. humans call fewer texts "emergencies").
The snapshot puts only the *calibration* part of the human labels in validation (``labels.split``):
a random sample, because a threshold follows the mix of the rows it is tuned on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)
MIN_POSITIVES = 8
MIN_HUMAN_POSITIVES = 15  # human-labelled validation positives a category needs to be tuned on them


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


def tune_presence_thresholds_human_first(
    presence: np.ndarray,
    gold_present: np.ndarray,
    human_known: np.ndarray,
    categories: Sequence[str],
    min_human_positives: int = MIN_HUMAN_POSITIVES,
    min_positives: int = MIN_POSITIVES,
) -> tuple[dict[str, float], dict[str, str]]:
    """Thresholds as ``tune_presence_thresholds``, on each category's human-labelled rows where it has
    ``min_human_positives`` present among them, else on every row; also ``{category: what it was tuned on}``."""
    presence = np.asarray(presence, dtype=np.float64)
    gold_present = np.asarray(gold_present, dtype=bool)
    human_known = np.asarray(human_known, dtype=bool)
    if human_known.shape != gold_present.shape:
        raise ValueError(f"human_known {human_known.shape} must have the shape of gold {gold_present.shape}")
    everywhere = tune_presence_thresholds(presence, gold_present, categories, min_positives)
    out: dict[str, float] = {}
    sources: dict[str, str] = {}
    for j, c in enumerate(categories):
        rows = human_known[:, j]
        n_present = int(gold_present[rows, j].sum())
        if n_present >= min_human_positives:
            tuned = tune_presence_thresholds(presence[rows][:, [j]], gold_present[rows][:, [j]], [c], min_human_positives)
            out[c] = tuned[c]
            sources[c] = f"human: {int(rows.sum())} rows, {n_present} present"
        elif c in everywhere:
            out[c] = everywhere[c]
            sources[c] = f"bootstrap: {len(rows)} rows ({n_present} human positives < {min_human_positives})"
    return out, sources


BLEND_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5)  # the model keeps at least half the say
# A blend is kept only where the human rows can tell: at least 50 positives (with fewer, one row moves
# F1 by 0.01-0.02) and an F1 gain of 0.02 over the model alone. Measured on the 2026-12-06 demo's
# calibration rows: smaller gains (weather_temp +0.015 on 46 positives) did not hold on held-out rows.
MIN_BLEND_GAIN = 0.02
MIN_BLEND_POSITIVES = 50


def tune_keyword_blend(
    presence: np.ndarray,
    keyword: np.ndarray,
    gold_present: np.ndarray,
    human_known: np.ndarray,
    categories: Sequence[str],
    thresholds: dict[str, float],
    sources: dict[str, str],
    weights: Sequence[float] = BLEND_WEIGHTS,
    min_gain: float = MIN_BLEND_GAIN,
    min_positives: int = MIN_BLEND_POSITIVES,
) -> tuple[dict[str, float], dict[str, float]]:
    """Per category tuned on human rows, the keyword weight ``w`` and threshold that maximise F1 of
    ``(1 - w) * presence + w * keyword`` there; kept only with ``min_positives`` human positives and
    an F1 ``min_gain`` over the model alone.
    Returns ``(thresholds, {category: w})`` (thresholds updated where a blend was kept)."""
    presence = np.asarray(presence, dtype=np.float64)
    keyword = np.asarray(keyword, dtype=np.float64)
    gold_present = np.asarray(gold_present, dtype=bool)
    human_known = np.asarray(human_known, dtype=bool)
    if not presence.shape == keyword.shape == gold_present.shape == human_known.shape:
        raise ValueError(f"presence {presence.shape}, keyword {keyword.shape}, gold and human_known must match")
    out, blend = dict(thresholds), {}
    for j, c in enumerate(categories):
        if c not in thresholds or not sources.get(c, "").startswith("human"):
            continue
        rows = human_known[:, j]
        gold = gold_present[rows, j]
        if int(gold.sum()) < min_positives:
            continue
        alone = f1_curve(presence[rows, j], gold)
        best_f1, best = float(alone[np.argmin(np.abs(GRID - thresholds[c]))]), None
        for w in weights:
            curve = f1_curve((1.0 - w) * presence[rows, j] + w * keyword[rows, j], gold)
            k = int(np.argmax(curve))
            if curve[k] >= best_f1 + min_gain and (best is None or curve[k] > best[0]):
                best = (float(curve[k]), float(w), float(GRID[k]))
        if best is not None:
            blend[c], out[c] = best[1], best[2]
    return out, blend
