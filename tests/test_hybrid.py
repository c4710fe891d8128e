"""Hybrid labeller rules on hand-built cases, the language gate, config errors, and a real run."""

from __future__ import annotations

import json

import pytest
from news_signals.core.taxonomy import CATEGORIES, TAGS, check_signals
from news_signals.labelling.classifiers import Classifier
from news_signals.labelling.hybrid import CategoryParams, HybridLabeller
from news_signals.labelling.keywords import KeywordLabeller

# Known parameters so the rules are tested, not whatever the last calibration chose.
PARAMS = {"w": 0.6, "lo": 0.2, "hi": 0.5, "theta": 0.4}


@pytest.fixture(scope="module")
def config_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("hybrid_cfg") / "hybrid.json"
    path.write_text(
        json.dumps(
            {
                "version": "t1",
                "encoder": "minilm",
                "encoder_languages": ["en"],
                "embedding": {"thresholds": {}},
                "hybrid": {"default": PARAMS},
            }
        )
    )
    return path


@pytest.fixture(scope="module")
def hybrid(config_path, tmp_path_factory) -> HybridLabeller:
    return HybridLabeller(config_path=config_path, home=str(tmp_path_factory.mktemp("hyb_home")))


@pytest.fixture(scope="module")
def kw() -> KeywordLabeller:
    return KeywordLabeller()


def sims(category: str, tag: str, value: float) -> list[float]:
    return [value if t == tag else 0.1 for t in TAGS[category]]


def test_keyword_only(hybrid, kw):
    """A strong keyword hit stands even when the embedding is lukewarm."""
    a = kw.analyse("Skogsbrand utom kontroll i Dalarna", all_cues=True)
    sig = hybrid.decide("emergencies", a, similarity=0.2, tag_similarities=sims("emergencies", "accident", 0.2))
    assert sig["tag"] == "fire" and sig["score"] < 0
    assert 0.5 <= sig["confidence"] < 0.8


def test_embedding_only(hybrid, kw):
    """No keyword, but the text is very close to the category's prototypes: present, tag from prototypes."""
    a = kw.analyse("Two late goals sealed it for the home side", all_cues=True)
    assert "sports" not in a.strength or a.strength["sports"] < kw.threshold
    sig = hybrid.decide(
        "sports", a, similarity=0.9, tag_similarities=sims("sports", "football", 0.8), emb_polarity=0.2
    )
    assert sig["tag"] == "football" and sig["score"] > 0
    weak = hybrid.decide("sports", kw.analyse("Quiet day in town", all_cues=True), similarity=0.3)
    assert weak["tag"] == "" and weak["score"] == 0.0


def test_both_agree_is_most_confident(hybrid, kw):
    a = kw.analyse("Massive wildfire destroys homes", all_cues=True)
    both = hybrid.decide("emergencies", a, similarity=0.6, tag_similarities=sims("emergencies", "fire", 0.6))
    kw_only = hybrid.decide("emergencies", a, similarity=0.2, tag_similarities=sims("emergencies", "fire", 0.2))
    assert both["tag"] == "fire" and both["score"] < 0
    assert both["confidence"] > kw_only["confidence"]
    assert both["confidence"] >= 0.8


def test_conflict_weak_keyword_vetoed_by_embedding(hybrid, kw):
    """A weak keyword hit that the embedding flatly contradicts is dropped (and confidently so)."""
    a = kw.analyse("The bus was late", all_cues=True)
    strength = a.strength["transportation"]
    assert kw.threshold <= strength < 0.5  # keywords alone would call it
    veto = hybrid.decide("transportation", a, similarity=0.05)
    assert veto["tag"] == "" and veto["score"] == 0.0
    support = hybrid.decide("transportation", a, similarity=0.55)
    assert support["tag"] != ""


def test_conflicting_tags_follow_the_stronger_evidence(hybrid, kw):
    a = kw.analyse("Fire in a warehouse", all_cues=True)
    sig = hybrid.decide("emergencies", a, similarity=0.6, tag_similarities=sims("emergencies", "explosion", 0.35))
    assert sig["tag"] == "fire"  # keyword tag outweighs a middling embedding tag
    sig = hybrid.decide("emergencies", a, similarity=0.6, tag_similarities=sims("emergencies", "explosion", 0.95))
    assert sig["tag"] in ("fire", "explosion")


def test_cues_still_set_the_sign_for_embedding_only(hybrid, kw):
    a = kw.analyse("The derby was called off after fans fought on the pitch", all_cues=True)
    sig = hybrid.decide("sports", a, similarity=0.9, tag_similarities=sims("sports", "game", 0.8), emb_polarity=0.3)
    assert sig["score"] < 0  # cancelled / violent: bad news despite a "good" prototype lean


def test_confidence_is_symmetric_and_bounded():
    p = CategoryParams(**PARAMS)
    assert p.confidence(p.theta) == pytest.approx(0.5)
    assert p.confidence(1.0) == pytest.approx(1.0)
    assert p.confidence(0.0) == pytest.approx(1.0)
    assert 0.5 < p.confidence(0.3) < 1.0
    assert p.evidence(0.7, None) == 0.7  # language the encoder does not know: keywords alone


def test_language_gate_swedish_uses_keywords_only(hybrid, kw):
    """MiniLM is English-only in the config: a Swedish text's embedding cannot add or veto."""
    import numpy as np
    from news_signals.labelling.embeddings import EmbeddingScores

    texts = ["Polisen grep en man i Uppsala efter att han hade stulit en bil och kört mot rött", "It is a lovely day in the park"]
    analyses = [kw.analyse(t, all_cues=True) for t in texts]
    assert analyses[0].lang == "sv"
    n = len(CATEGORIES)
    high = EmbeddingScores(
        np.full((2, n), 0.95, dtype=np.float32),
        {c: np.full((2, len(TAGS[c])), 0.95, dtype=np.float32) for c in CATEGORIES},
        np.zeros((2, n), dtype=np.float32),
    )
    sv = hybrid.combine(analyses[0], high, 0)
    expected = kw.classify(texts[0])
    assert {c for c in CATEGORIES if sv[c]["tag"]} == {c for c in CATEGORIES if expected[c]["tag"]}
    en = hybrid.combine(analyses[1], high, 1)
    assert all(en[c]["tag"] for c in CATEGORIES)  # no language gate for English


def test_bad_config_is_refused(tmp_path):
    path = tmp_path / "hybrid.json"
    path.write_text(json.dumps({"hybrid": {"sports": {"w": 2, "lo": 0.1, "hi": 0.2, "theta": 0.3}}}))
    with pytest.raises(ValueError, match="sports"):
        HybridLabeller(config_path=path, home=str(tmp_path))
    path.write_text(json.dumps({"hybrid": {"curling": PARAMS}}))
    with pytest.raises(ValueError, match="curling"):
        HybridLabeller(config_path=path, home=str(tmp_path))


def test_real_encoder_end_to_end(hybrid):
    import torch

    torch.set_num_threads(2)
    texts = [
        "Wildfire forces thousands to flee their homes",
        "The striker scored twice as United won the derby",
        "Bankrån i Malmö – två gripna",
        "Library extends its opening hours",
    ]
    out = hybrid.classify_texts(texts)
    assert isinstance(hybrid, Classifier) and hybrid.name.startswith("hybrid@")
    for s in out:
        check_signals(s)
        assert all(0.0 <= v["confidence"] <= 1.0 for v in s.values())
    assert out[0]["emergencies"]["tag"] == "fire" and out[0]["emergencies"]["score"] < 0
    assert out[1]["sports"]["tag"] != "" and out[1]["sports"]["score"] > 0  # embedding recall
    assert out[2]["crime"]["tag"] == "robbery"
    assert not any(v["tag"] for v in out[3].values())
    # a text the encoder cannot read (Swedish for the English-only MiniLM) is never embedded
    encoder = hybrid.embeddings.encoder
    before = encoder.texts_encoded
    swedish = "Polisen grep en man i Uppsala efter att han hade stulit en bil"
    assert hybrid.classify_texts([swedish]) == [
        hybrid.combine(hybrid.keywords.analyse(swedish, all_cues=True), hybrid.embeddings.scores([]), -1)
    ]
    assert encoder.texts_encoded == before


def test_calibrated_hybrid_on_handwritten_dev_set(tmp_path):
    """The shipped (calibrated) config: English gains from the encoder, Swedish falls back to keywords."""
    import torch
    from news_signals.labelling.evaluation import handmade_dev_set, score_predictions

    torch.set_num_threads(2)
    hybrid = HybridLabeller(home=str(tmp_path))
    assert hybrid.encoder_languages == {"en"}
    en = handmade_dev_set("en")
    res = score_predictions(hybrid.classify_texts(en.texts), en.truth)
    kw_res = score_predictions(hybrid.keywords.classify_texts(en.texts), en.truth)
    assert res["macro_f1"] >= 0.9 and res["macro_f1"] >= kw_res["macro_f1"] - 0.02
    sv = handmade_dev_set("sv")
    hyb_sv = hybrid.classify_texts(sv.texts)
    kw_sv = hybrid.keywords.classify_texts(sv.texts)
    for h, k in zip(hyb_sv, kw_sv, strict=True):
        assert {c for c in CATEGORIES if h[c]["tag"]} == {c for c in CATEGORIES if k[c]["tag"]}
