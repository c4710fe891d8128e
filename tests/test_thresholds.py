"""Presence thresholds: tuned on validation rows, stored in the manifest, applied by ModelClassifier."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from news_signals.model.thresholds import (
    f1_curve,
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
