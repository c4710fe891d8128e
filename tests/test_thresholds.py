"""Presence thresholds: tuned on validation rows, stored in the manifest, applied by ModelClassifier."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from news_signals.model.thresholds import (
    f1_curve,
    tune_keyword_blend,
    tune_presence_thresholds,
    tune_presence_thresholds_human_first,
)


def test_threshold_separates_and_ties_go_nearest_half():
    rng = np.random.default_rng(0)
    pos, neg = rng.uniform(0.82, 0.97, 40), rng.uniform(0.05, 0.78, 200)
    p = np.concatenate([pos, neg])[:, None]
    gold = np.concatenate([np.ones(40, bool), np.zeros(200, bool)])[:, None]
    (t,) = tune_presence_thresholds(p, gold, ["x"]).values()
    assert neg.max() < t <= pos.min()  # every threshold in the gap has F1 1.0 ...
    assert t == pytest.approx(np.round(neg.max() + 0.005, 2), abs=0.011)  # ... and the lowest, nearest 0.5, wins
    assert f1_curve(p[:, 0], gold[:, 0]).max() == 1.0


def test_hand_computed_f1_and_too_few_positives():
    p = np.array([0.9, 0.6, 0.4, 0.2])
    gold = np.array([True, False, True, False])
    grid = np.array([0.3, 0.5, 0.95])
    # >=0.3: tp 2 fp 1 fn 0 -> 0.8; >=0.5: tp 1 fp 1 fn 1 -> 0.5; >=0.95: nothing -> 0
    assert f1_curve(p, gold, grid).tolist() == pytest.approx([0.8, 0.5, 0.0])
    assert tune_presence_thresholds(p[:, None], gold[:, None], ["x"]) == {}  # 2 positives < 8
    with pytest.raises(ValueError, match="must both be"):
        tune_presence_thresholds(p[:, None], gold[:, None], ["x", "y"])


def test_human_labelled_rows_set_the_threshold_when_they_have_enough_positives():
    """The teacher calls p >= 0.3 present, humans only p >= 0.7: the human rows decide, where there are enough."""
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 1, 600)
    teacher = p >= 0.3
    human_known = np.zeros(600, bool)
    human_known[:200] = True
    gold = teacher.copy()
    gold[:200] = p[:200] >= 0.7  # the human definition, on the human rows
    presence = np.stack([p, p], axis=1)
    gold2 = np.stack([gold, teacher], axis=1)
    known2 = np.stack([human_known, np.zeros(600, bool)], axis=1)  # the second category has no human rows
    thresholds, sources = tune_presence_thresholds_human_first(presence, gold2, known2, ["a", "b"])
    assert thresholds["a"] == pytest.approx(0.7, abs=0.02) and sources["a"].startswith("human: 200 rows")
    assert thresholds["b"] == pytest.approx(0.3, abs=0.02) and sources["b"].startswith("bootstrap")
    # too few human positives: the category falls back to every row (teacher and human rows together)
    few = known2.copy()
    few[:, 0] = False
    few[np.flatnonzero(gold[:200])[:5], 0] = True
    thresholds, sources = tune_presence_thresholds_human_first(presence, gold2, few, ["a", "b"])
    assert sources["a"].startswith("bootstrap") and thresholds["a"] < 0.6
    with pytest.raises(ValueError, match="human_known"):
        tune_presence_thresholds_human_first(presence, gold2, known2[:, :1], ["a", "b"])


def _blend_case(n_pos: int = 80, n_neg: int = 400, seed: int = 0):
    """A model that ranks half the positives well and misses the other half, which keywords catch."""
    rng = np.random.default_rng(seed)
    half = n_pos // 2
    model = np.concatenate([rng.uniform(0.6, 0.9, half), rng.uniform(0.0, 0.4, n_pos - half), rng.uniform(0.0, 0.7, n_neg)])
    keyword = np.concatenate([rng.uniform(0.0, 0.3, half), rng.uniform(0.8, 1.0, n_pos - half), rng.uniform(0.0, 0.3, n_neg)])
    gold = np.concatenate([np.ones(n_pos, bool), np.zeros(n_neg, bool)])
    return model[:, None], keyword[:, None], gold[:, None]


def test_keyword_blend_is_kept_where_keywords_catch_what_the_model_misses():
    p, kw, gold = _blend_case()
    known = np.ones_like(gold)
    thresholds, sources = tune_presence_thresholds_human_first(p, gold, known, ["x"])
    tuned, blend = tune_keyword_blend(p, kw, gold, known, ["x"], thresholds, sources)
    assert set(blend) == {"x"} and 0.1 <= blend["x"] <= 0.5
    mixed = (1 - blend["x"]) * p[:, 0] + blend["x"] * kw[:, 0]
    alone = f1_curve(p[:, 0], gold[:, 0]).max()
    assert f1_curve(mixed, gold[:, 0])[list(np.round(np.arange(0.05, 0.951, 0.01), 2)).index(tuned["x"])] >= alone + 0.02
    # keywords that carry nothing the model lacks: no blend, the threshold untouched
    useless = np.random.default_rng(1).uniform(0, 1, kw.shape)
    same, none = tune_keyword_blend(p, useless, gold, known, ["x"], thresholds, sources)
    assert none == {} and same == thresholds


def test_keyword_blend_needs_human_rows_and_enough_positives():
    p, kw, gold = _blend_case()
    known = np.ones_like(gold)
    thresholds, sources = tune_presence_thresholds_human_first(p, gold, known, ["x"])
    # tuned on bootstrap labels: the blend is a human-label decision, never made on the teacher's labels
    assert tune_keyword_blend(p, kw, gold, known, ["x"], thresholds, {"x": "bootstrap: 480 rows"})[1] == {}
    # 40 positives: one row moves F1 by ~0.02, so no blend however good it looks
    p, kw, gold = _blend_case(n_pos=40, n_neg=300)
    known = np.ones_like(gold)
    thresholds, sources = tune_presence_thresholds_human_first(p, gold, known, ["x"])
    assert tune_keyword_blend(p, kw, gold, known, ["x"], thresholds, sources)[1] == {}
    with pytest.raises(ValueError, match="must match"):
        tune_keyword_blend(p, kw[:10], gold, known, ["x"], thresholds, sources)


def test_decoder_blends_keyword_strength_before_the_threshold():
    from news_signals.model.decoder import Decoder
    from news_signals.model.predictor import Prediction

    probs = np.array([[0.7, 0.2, 0.1], [0.45, 0.5, 0.05]])  # P(present) 0.3 and 0.55
    pred = Prediction(np.zeros((2, 1)), {"x": probs})
    plain = Decoder(["x"], {"x": ["", "a", "b"]}, {"x": 0.5})
    assert plain.tag_indices("x", probs).tolist() == [0, 1]
    blended = Decoder(["x"], {"x": ["", "a", "b"]}, {"x": 0.5}, {"x": 0.5})
    with pytest.raises(ValueError, match="keyword_strength"):
        blended.presence(pred)
    pred.keyword_strength = np.array([[0.9], [0.0]])  # keywords sure of the first text, silent on the second
    assert blended.presence(pred)[:, 0] == pytest.approx([0.6, 0.275])
    assert blended.tag_indices("x", probs, blended.presence(pred)[:, 0]).tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        Decoder(["x"], {"x": ["", "a"]}, {"x": 0.5}, {"x": 1.5})
    # a blend without a threshold means nothing: ignored
    assert Decoder(["x"], {"x": ["", "a"]}, None, {"x": 0.3}).keyword_blend == {}


@pytest.fixture(scope="module")
def artifact(tmp_path_factory):
    from tools.tiny_model import build_tiny_artifact

    return build_tiny_artifact(tmp_path_factory.mktemp("thr") / "model")


def test_trainer_stores_thresholds_and_classifier_applies_them(artifact, tmp_path):
    from news_signals.core.taxonomy import ABSENT, CATEGORIES
    from news_signals.model.artifact import save_artifact
    from news_signals.model.inference import ModelClassifier, clear_cache

    manifest = json.loads((artifact / "news_signals.json").read_text())
    assert isinstance(manifest["presence_thresholds"], dict) and manifest["languages"] == []
    assert set(manifest["presence_thresholds"]) <= set(CATEGORIES)
    assert all(0.05 <= t <= 0.95 for t in manifest["presence_thresholds"].values())

    texts = ["Large fire destroys warehouse", "Hockey team reaches the final", "Floods cut off roads", "Museum opens"]
    clf = ModelClassifier.from_dir(artifact)
    pred = clf.predict(texts)
    presence = pred.presence()

    def resaved(thresholds: dict[str, float]):
        out = tmp_path / f"t{len(list(tmp_path.iterdir()))}"
        shutil.copytree(artifact, out)
        art = clf.artifact
        save_artifact(art.model, art.tokenizer, out, model_name="tiny", base_model="tiny", max_length=64,
                      presence_thresholds=thresholds)
        clear_cache()
        return ModelClassifier.from_dir(out)

    every = resaved({c: 0.0 for c in CATEGORIES}).classify_texts(texts)  # P >= 0: always present
    none = resaved({c: 1.0 for c in CATEGORIES}).classify_texts(texts)  # P >= 1: never (P(absent) > 0)
    for i in range(len(texts)):
        for c in CATEGORIES:
            assert every[i][c]["tag"] != ABSENT
            assert every[i][c]["tag"] == clf.vocabularies[c][1 + int(pred.tag_probs[c][i, 1:].argmax())]
            assert none[i][c] == {"score": 0.0, "tag": ABSENT, "confidence": pytest.approx(float(pred.tag_probs[c][i, 0]))}
    mid = {c: float(np.median(presence[:, j])) for j, c in enumerate(CATEGORIES)}
    some = resaved(mid).classify_texts(texts)
    for i in range(len(texts)):
        for j, c in enumerate(CATEGORIES):
            assert (some[i][c]["tag"] != ABSENT) == (presence[i, j] >= mid[c])


def test_classifier_applies_the_manifest_keyword_blend(artifact, tmp_path):
    """The served path (ModelClassifier) attaches the keyword strengths and decides on the blend."""
    from news_signals.core.taxonomy import ABSENT, CATEGORIES
    from news_signals.model.artifact import save_artifact
    from news_signals.model.decoder import keyword_strength
    from news_signals.model.inference import ModelClassifier, clear_cache

    texts = ["Train derailment blocks the railway line", "Bus drivers strike, traffic chaos downtown",
             "Museum opens a new wing", "Heavy snow closes the highway"]
    clf = ModelClassifier.from_dir(artifact)
    model_p = clf.predict(texts).presence()
    kw = keyword_strength(texts, CATEGORIES)
    j = CATEGORIES.index("transportation")
    assert kw[:, j].max() > 0.5  # the keywords see transport in these headlines
    threshold = 0.5
    out = tmp_path / "blended"
    shutil.copytree(artifact, out)
    art = clf.artifact
    save_artifact(art.model, art.tokenizer, out, model_name="tiny", base_model="tiny", max_length=64,
                  presence_thresholds={"transportation": threshold}, presence_keyword_blend={"transportation": 0.5})
    clear_cache()
    blended = ModelClassifier.from_dir(out)
    assert json.loads((out / "news_signals.json").read_text())["presence_keyword_blend"] == {"transportation": 0.5}
    signals, presence = blended.classify_with_presence(texts)
    expected = 0.5 * model_p[:, j] + 0.5 * kw[:, j]
    assert presence[:, j] == pytest.approx(expected, abs=1e-5)
    assert [s["transportation"]["tag"] != ABSENT for s in signals] == (expected >= threshold).tolist()
