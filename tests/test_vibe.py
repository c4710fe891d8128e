"""Vibe vectors: the intensity formula on hand-checked numbers, the tag vote and the per-country rows."""

from __future__ import annotations

import math
from datetime import date

import pandas as pd
import pytest
from news_signals.core.taxonomy import CATEGORIES, empty_signals, signals_to_columns
from news_signals.features.pipeline import intensity, most_common_tag, vibe_vectors
from news_signals.features.store.base import VIBE_SPEC


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        ([], 0.0),
        ([0.05, -0.1, 0.1], 0.0),  # |s| <= 0.1 is noise: all dropped
        ([0.5], 0.5),  # n=1: weight 1
        ([-0.4] * 10, -0.6),  # weight 1 + log10(10)/2 = 1.5
        ([0.8] * 10, 1.0),  # 0.8 * 1.5 = 1.2, capped at 1
        ([0.3] * 100, 0.6),  # weight reaches its cap 2 at n = 100
        ([0.3] * 1000, 0.6),  # ... and stays there
        ([0.2, 0.4, 0.6], 0.4 * (1 + math.log10(3) / 2)),  # 0.4954243
        ([0.9, -0.3, 0.05], 0.3 * (1 + math.log10(2) / 2)),  # 0.05 dropped; mean 0.3 -> 0.3451545
        ([0.5, -0.5], 0.0),  # cancelling news: no sign
        ([float("nan"), -0.7], -0.7),
    ],
)
def test_intensity_hand_checked(scores, expected):
    assert intensity(scores) == pytest.approx(expected, abs=1e-9)


def test_intensity_literal_values():
    assert intensity([0.2, 0.4, 0.6]) == pytest.approx(0.4954243, abs=1e-7)
    assert intensity([-0.8, -0.6, -0.5]) == pytest.approx(-0.7844217, abs=1e-7)


def test_most_common_tag_ties_follow_vocabulary_order():
    assert most_common_tag("emergencies", ["fire", "explosion", "explosion", ""]) == "explosion"
    assert most_common_tag("emergencies", ["explosion", "fire"]) == "fire"  # tie: vocabulary order
    assert most_common_tag("emergencies", ["", ""]) == ""


def _row(country: str, **signals) -> dict:
    sig = empty_signals()
    for cat, (score, tag) in signals.items():
        sig[cat] = {"score": score, "tag": tag}
    return {"sourcecountry": country, **signals_to_columns(sig), "classifier": "model:tiny@1"}


def test_vibe_vectors_per_country():
    rows = pd.DataFrame(
        [
            _row("Sweden", emergencies=(-0.8, "fire")),
            _row("Sweden", emergencies=(-0.6, "fire"), sports=(0.6, "victory")),
            _row("Sweden", emergencies=(-0.5, "explosion")),
            _row("Sweden", emergencies=(0.05, "accident")),  # below the noise floor: not counted, tag ignored
            _row("Norway"),
            _row(""),  # no country -> "unknown"
        ]
    )
    vibes = vibe_vectors(rows, "2024-05-01").set_index("sourcecountry")
    assert list(vibe_vectors(rows, "2024-05-01").columns) == list(VIBE_SPEC.columns)
    assert sorted(vibes.index) == ["Norway", "Sweden", "unknown"]

    se = vibes.loc["Sweden"]
    assert se["date"] == date(2024, 5, 1)
    assert se["n_articles"] == 4
    assert se["emergencies_intensity"] == pytest.approx(-0.7844217, abs=1e-7)
    assert se["emergencies_tag"] == "fire" and se["emergencies_count"] == 3
    assert se["sports_intensity"] == pytest.approx(0.6) and se["sports_tag"] == "victory"
    assert se["classifier"] == "model:tiny@1"

    no = vibes.loc["Norway"]
    for c in CATEGORIES:
        assert no[f"{c}_intensity"] == 0.0 and no[f"{c}_tag"] == "" and no[f"{c}_count"] == 0


def test_vibe_vectors_of_nothing_is_empty():
    empty = pd.DataFrame(columns=["sourcecountry", "classifier"])
    assert vibe_vectors(empty, "2024-05-01").empty
