"""Human labels inside the training snapshot: held-out rows out, training rows override bootstrap labels.

A student trained only on its teacher's labels copies the teacher. Human corrections are what
lets it do better, so per article and category a human label replaces the bootstrap label (at
full weight, times ``human_weight``); categories the human left unknown keep the bootstrap label
at ``unknown_weight`` of its confidence. Human-labelled articles that are not in the window's
partitions join the snapshot as extra rows: a correction is never wasted.

Held-out articles (``labels.split``) are removed from every split, matched by ``article_id`` and
by normalised text, so the same headline syndicated under another URL cannot leak either.
Calibration articles keep their human labels but go to the validation split only
(``snapshot.route_human_rows``): they set the presence thresholds, never the weights.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from news_signals.core.storage import Storage
from news_signals.core.taxonomy import (
    ABSENT,
    CATEGORIES,
    confidence_column,
    human_column,
    score_column,
    tag_column,
)
from news_signals.core.text import normalise_title

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HUMAN_COLUMN = "human_categories"  # how many categories of the row a human labelled (0 = bootstrap only)
DEFAULT_HUMAN_WEIGHT = 4.0  # measured: 4.0 beat 2.0 by +0.012 held-out human macro-F1 (docs/DEMO.md, 2026-12-06)
DEFAULT_UNKNOWN_WEIGHT = 0.5
FALLBACK_SCORE = 0.5  # |score| for a human "present" the labellers had no score for (sign from the tag's prior)


@dataclass
class HumanLabels:
    """The store's labels split for one snapshot build."""

    training: Any  # DataFrame: the training part (article_id, text, <category>...)
    heldout_ids: set[str] = field(default_factory=set)
    heldout_texts: set[str] = field(default_factory=set)
    fingerprint: str = "none"  # changes whenever the labels change, so the snapshot id does too
    batches: list[str] = field(default_factory=list)
    calibration_ids: set[str] = field(default_factory=set)  # training-part rows kept for thresholds
    calibration_texts: set[str] = field(default_factory=set)

    @property
    def empty(self) -> bool:
        return len(self.training) == 0 and not self.heldout_ids


def load(storage: Storage | None = None) -> HumanLabels:
    """Split the store's current labels into the training part and the held-out keys."""
    import pandas as pd

    from news_signals.labels.store import LabelStore, calibration_mask, split

    store = LabelStore(storage)
    batches = store.batches()
    current = store.current()
    if current.empty:
        return HumanLabels(pd.DataFrame(columns=["article_id", "text", *CATEGORIES]))
    training, held = split(current)
    fp = hashlib.sha256("|".join(b.sha256 for b in batches).encode()).hexdigest()[:12]
    calibration = training[calibration_mask(training)]
    return HumanLabels(
        training.reset_index(drop=True),
        set(held["article_id"].astype(str)),
        {normalise_title(t) for t in held["text"].astype(str)},
        fp,
        [b.batch_id for b in batches],
        set(calibration["article_id"].astype(str)),
        {normalise_title(t) for t in calibration["text"].astype(str)},
    )


def is_heldout_row(article_ids: pd.Series, texts: pd.Series, labels: HumanLabels) -> pd.Series:
    """True where the row is a held-out article (by id or by normalised text)."""
    return _matches(article_ids, texts, labels.heldout_ids, labels.heldout_texts)


def is_calibration_row(article_ids: pd.Series, texts: pd.Series, labels: HumanLabels) -> pd.Series:
    """True where the row is a calibration article (by id or by normalised text)."""
    return _matches(article_ids, texts, labels.calibration_ids, labels.calibration_texts)


def _matches(article_ids: pd.Series, texts: pd.Series, ids: set[str], norm_texts: set[str]) -> pd.Series:
    return article_ids.astype(str).isin(ids) | texts.astype(str).map(normalise_title).isin(norm_texts)


def extra_rows(raw: pd.DataFrame, labels: HumanLabels) -> pd.DataFrame:
    """Training-part human labels whose article is not among ``raw``'s rows, as rows to relabel."""
    import pandas as pd

    t = labels.training
    if t.empty:
        return raw.iloc[0:0]
    known_ids, known_norm = set(raw["article_id"].astype(str)), set(raw["_norm"])
    norm = t["text"].astype(str).map(normalise_title)
    new = t[~t["article_id"].astype(str).isin(known_ids) & ~norm.isin(known_norm)]
    return pd.DataFrame(
        {
            "article_id": new["article_id"].astype(str).to_numpy(),
            "text": new["text"].astype(str).to_numpy(),
            "title": new["text"].astype(str).to_numpy(),
            "date": "labels",
            "_norm": norm[new.index].to_numpy(),
        }
    )


def apply(
    df: pd.DataFrame,
    labels: HumanLabels,
    human_weight: float = DEFAULT_HUMAN_WEIGHT,
    unknown_weight: float = DEFAULT_UNKNOWN_WEIGHT,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Override ``df``'s bootstrap labels with the training part; return the frame and its stats."""
    df = mark_bootstrap(df.copy())
    t = labels.training
    stats: dict[str, Any] = {"matched_rows": 0, "per_category": {}, "overridden": {}}
    if t.empty:
        return df, stats
    by_id = {str(a): i for i, a in enumerate(t["article_id"])}
    by_norm = {normalise_title(str(x)): i for i, x in enumerate(t["text"])}
    match = [
        by_id.get(str(a), by_norm.get(n)) for a, n in zip(df["article_id"], df["_norm"], strict=True)
    ]
    priors = _tag_priors(df)
    per_cat = dict.fromkeys(CATEGORIES, 0)
    overridden = dict.fromkeys(CATEGORIES, 0)
    rows = [i for i, m in enumerate(match) if m is not None]
    for i in rows:
        human = t.iloc[match[i]]
        known = 0
        for c in CATEGORIES:
            value = human[c]
            conf = confidence_column(c)
            if value is None or value != value:  # unknown: keep the bootstrap label, at lower weight
                df.at[i, conf] = float(df.at[i, conf]) * unknown_weight
                continue
            known += 1
            per_cat[c] += 1
            if df.at[i, tag_column(c)] != value:
                overridden[c] += 1
            df.at[i, tag_column(c)] = value
            df.at[i, score_column(c)] = _score_for(c, value, float(df.at[i, score_column(c)]), priors)
            df.at[i, conf] = human_weight
            df.at[i, human_column(c)] = True
        df.at[i, HUMAN_COLUMN] = known
    stats.update(matched_rows=len(rows), per_category=per_cat, overridden=overridden)
    return df, stats


def mark_bootstrap(df: pd.DataFrame) -> pd.DataFrame:
    """Every label of ``df`` as the bootstrap labeller's: the human columns all 0 / False."""
    df[HUMAN_COLUMN] = 0
    for c in CATEGORIES:
        df[human_column(c)] = False
    return df


def _tag_priors(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Mean bootstrap score per (category, tag): the sign a human "present" takes when no score exists."""
    out = {}
    for c in CATEGORIES:
        present = df[df[tag_column(c)] != ABSENT]
        for tag, mean in present.groupby(tag_column(c))[score_column(c)].mean().items():
            out[(c, str(tag))] = float(mean)
        if len(present):
            out[(c, "")] = float(present[score_column(c)].mean())
    return out


def _score_for(category: str, tag: str, bootstrap: float, priors: dict[tuple[str, str], float]) -> float:
    if tag == ABSENT:
        return 0.0
    if bootstrap != 0.0:
        return bootstrap
    prior = priors.get((category, tag), priors.get((category, ""), -1.0))
    return FALLBACK_SCORE if prior > 0 else -FALLBACK_SCORE
