"""The int8 tolerance, stated on the classify contract: agreement measures computed by hand."""

from __future__ import annotations

import pytest
from news_signals.core.taxonomy import CATEGORIES, empty_signals
from news_signals.model import int8_check
from news_signals.model.int8_check import Int8Tolerance, compare_signals, failures


def signals(**present: tuple[str, float]):
    sig = empty_signals()
    for category, (tag, score) in present.items():
        sig[category] = {"score": score, "tag": tag}
    return sig


def test_agreement_counts_cells_present_cells_and_score_moves():
    reference = [
        signals(emergencies=("fire", -0.8), crime=("theft", -0.4)),
        signals(sports=("victory", 0.5)),
    ]
    other = [
        signals(emergencies=("fire", -0.7), crime=("", 0.0)),  # crime flips to absent
        signals(sports=("victory", 0.5), politics=("election", 0.1)),  # politics flips to present
    ]
    report = compare_signals(reference, other)
    n_cells = 2 * len(CATEGORIES)
    assert report["texts"] == 2 and report["cells"] == n_cells
    assert report["tag_agreement"] == pytest.approx((n_cells - 2) / n_cells)
    # present in either: emergencies, crime (text 1), sports, politics (text 2); 2 of 4 agree
    assert report["present_cells"] == 4
    assert report["present_tag_agreement"] == pytest.approx(0.5)
    # scores compared where tags agree and present: |-0.8 - -0.7| and |0.5 - 0.5|
    assert report["max_score_diff"] == pytest.approx(0.1)
    assert report["score_mae"] == pytest.approx(0.05)


def test_identical_outputs_are_within_and_each_miss_is_named():
    same = [signals(weather_wet=("flood", -0.6))] * 3
    assert failures(compare_signals(same, same)) == []
    report = {"tag_agreement": 0.99, "present_tag_agreement": 0.9, "max_score_diff": 0.2, "score_mae": 0.02}
    missed = failures(report)
    assert len(missed) == 4
    assert "99.00% of cells" in missed[0] and "90.00% of present cells" in missed[1]
    assert "0.200" in missed[2] and "0.0200" in missed[3]
    lenient = Int8Tolerance(min_tag_agreement=0.9, min_present_tag_agreement=0.9, max_score_diff=0.5, max_score_mae=0.5)
    assert failures(report, lenient) == []


def test_outputs_for_different_texts_are_refused():
    with pytest.raises(ValueError, match="same texts"):
        compare_signals([empty_signals()], [])


def test_verification_texts_are_headlines_in_the_requested_languages():
    from news_signals.labelling.keywords import KeywordLabeller

    texts = int8_check.verification_texts(["en"], n=200)
    assert 100 <= len(texts) <= 200 and len(set(texts)) > 0.9 * len(texts)
    assert all(0 < len(t) <= 90 for t in texts)
    leans = [KeywordLabeller().analyse(t).lang_lean for t in texts]
    assert not any(lang == "sv" for lang in leans)
    assert any(lang == "sv" for lang in (KeywordLabeller().analyse(t).lang_lean for t in int8_check.verification_texts(n=200)))


def test_the_held_out_human_rule_counts_only_when_both_scores_exist():
    base = {"tag_agreement": 1.0, "present_tag_agreement": 1.0, "max_score_diff": 0.0, "score_mae": 0.0}
    assert failures({**base, "human_macro_f1": {"fp32": 0.60, "int8": 0.595}}) == []  # within 0.01
    missed = failures({**base, "human_macro_f1": {"fp32": 0.60, "int8": 0.58}})
    assert len(missed) == 1 and "drops by 0.020" in missed[0] and "0.600 -> 0.580" in missed[0]
    assert failures({**base, "human_macro_f1": {"fp32": None, "int8": None}}) == []  # no gated category: not a rule
    assert failures({**base, "human_macro_f1": {"fp32": 0.5, "int8": 0.7}}) == []  # int8 better is fine
