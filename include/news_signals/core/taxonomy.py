"""The signal taxonomy: the only place categories and tag vocabularies are defined.

Every labeller, the model heads, the validation suites and the feature-group schema read
these constants, so adding a tag here changes all of them together.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import TypedDict

CATEGORIES: tuple[str, ...] = (
    "emergencies",
    "crime",
    "festivals",
    "transportation",
    "weather_temp",
    "weather_wet",
    "sports",
    "economics",
    "politics",
)

TAGS: dict[str, tuple[str, ...]] = {
    "emergencies": ("fire", "earthquake", "explosion", "evacuation", "accident"),
    "crime": ("theft", "assault", "robbery", "police", "vandalism"),
    "festivals": ("concert", "celebration", "parade", "crowd", "event"),
    "transportation": ("traffic", "accident", "congestion", "delay", "closure"),
    "weather_temp": ("hot", "cold", "heatwave", "freeze"),
    "weather_wet": ("rain", "snow", "flood", "storm", "drought"),
    "sports": ("football", "hockey", "victory", "championship", "game"),
    "economics": ("market", "business", "trade", "employment", "inflation"),
    "politics": ("election", "protest", "government", "policy", "vote"),
}

ABSENT = ""  # the tag of a category that is not in the article


class Signal(TypedDict, total=False):
    score: float  # signed intensity in [-1, 1]; 0 when absent
    tag: str  # one of TAGS[category], or "" when absent
    confidence: float  # optional: how sure the labeller is, in [0, 1]


Signals = dict[str, Signal]


def score_column(category: str) -> str:
    return f"{category}_score"


def tag_column(category: str) -> str:
    return f"{category}_tag"


def confidence_column(category: str) -> str:
    return f"{category}_confidence"


def human_column(category: str) -> str:
    """A snapshot's boolean column: True where a human, not the bootstrap labeller, gave ``<category>_tag``."""
    return f"{category}_human"


SCORE_COLUMNS: tuple[str, ...] = tuple(score_column(c) for c in CATEGORIES)
TAG_COLUMNS: tuple[str, ...] = tuple(tag_column(c) for c in CATEGORIES)
SIGNAL_COLUMNS: tuple[str, ...] = tuple(col for c in CATEGORIES for col in (score_column(c), tag_column(c)))


def tag_vocabulary(category: str) -> tuple[str, ...]:
    """The tag head's classes for a category: index 0 is "absent"."""
    return (ABSENT, *TAGS[category])


def empty_signals() -> Signals:
    return {c: {"score": 0.0, "tag": ABSENT} for c in CATEGORIES}


def check_signals(signals: Mapping[str, Mapping]) -> None:
    """Raise ValueError naming the first category whose signal breaks the contract."""
    missing = [c for c in CATEGORIES if c not in signals]
    if missing:
        raise ValueError(f"signals lack categories {missing}; every one of {list(CATEGORIES)} is required")
    for c in CATEGORIES:
        score, tag = signals[c].get("score"), signals[c].get("tag")
        if not isinstance(score, int | float) or math.isnan(score) or not -1.0 <= score <= 1.0:
            raise ValueError(f"{c}: score {score!r} is not a number in [-1, 1]")
        if tag != ABSENT and tag not in TAGS[c]:
            raise ValueError(f"{c}: tag {tag!r} is not in the vocabulary {list(TAGS[c])}")
        if tag == ABSENT and score != 0.0:
            raise ValueError(f"{c}: absent tag must come with score 0, got {score}")


def signals_to_columns(signals: Mapping[str, Mapping], with_confidence: bool = False) -> dict[str, object]:
    """Flatten ``{category: {score, tag}}`` into ``{category}_score`` / ``{category}_tag`` columns."""
    row: dict[str, object] = {}
    for c in CATEGORIES:
        row[score_column(c)] = float(signals[c]["score"])
        row[tag_column(c)] = str(signals[c]["tag"])
        if with_confidence:
            row[confidence_column(c)] = float(signals[c].get("confidence", 1.0))
    return row


def columns_to_signals(row: Mapping[str, object]) -> Signals:
    """Inverse of :func:`signals_to_columns` (confidence kept when present)."""
    out: Signals = {}
    for c in CATEGORIES:
        sig: Signal = {"score": float(row[score_column(c)]), "tag": str(row[tag_column(c)] or "")}
        conf = row.get(confidence_column(c))
        if conf is not None:
            sig["confidence"] = float(conf)
        out[c] = sig
    return out


def taxonomy_dict() -> dict[str, list[str]]:
    return {c: list(TAGS[c]) for c in CATEGORIES}


def taxonomy_fingerprint() -> str:
    """A short hash of categories + vocabularies, stored in manifests to refuse mismatches."""
    blob = json.dumps(taxonomy_dict(), sort_keys=False).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
