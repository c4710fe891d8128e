"""The gate on held-out human labels: partial truth, per-category row counts, paired intervals."""

from __future__ import annotations

import numpy as np
import pytest
from news_signals.core.taxonomy import CATEGORIES
from news_signals.retrain.gate import GateThresholds, decide
from news_signals.retrain.heldout import (
    PRESENT,
    UNKNOWN,
    HeldoutSet,
    heldout_reports,
    paired_bootstrap,
    score,
    truth_matrix,
)

E = CATEGORIES.index("emergencies")
W = CATEGORIES.index("weather_wet")


def held(n: int, positives: int, categories=("emergencies", "weather_wet")) -> HeldoutSet:
    """n rows labelled for ``categories`` (the first ``positives`` present), unknown elsewhere."""
    labels = [{c: ("fire" if c == "emergencies" else "rain") if i < positives else "" for c in categories} for i in range(n)]
    return HeldoutSet([f"a{i}" for i in range(n)], [f"text {i}" for i in range(n)], truth_matrix(labels))


def predictions(h: HeldoutSet, flip: int, seed: int = 0) -> np.ndarray:
    """The truth with ``flip`` known cells of each gated category wrong."""
    rng = np.random.default_rng(seed)
    pred = h.truth == PRESENT
    for j in (E, W):
        rows = np.flatnonzero(h.truth[:, j] != UNKNOWN)
        wrong = rng.choice(rows, size=flip, replace=False)
        pred[wrong, j] = ~pred[wrong, j]
    return pred


def test_truth_matrix_keeps_unknown_apart_from_absent():
    t = truth_matrix([{"crime": "theft", "sports": ""}, {"crime": None}, {}])
    crime, sports = CATEGORIES.index("crime"), CATEGORIES.index("sports")
    assert t[0, crime] == 1 and t[0, sports] == 0 and t[1, crime] == UNKNOWN and (t[2] == UNKNOWN).all()


def test_unknown_rows_count_for_nothing_and_small_categories_are_reported_not_gated():
    h = held(200, 60)
    labels = [{"emergencies": "fire" if i < 60 else "", "weather_wet": "rain" if i < 60 else ""} for i in range(200)]
    labels[0]["crime"] = "theft"  # one crime row: far too few to gate
    h = HeldoutSet(h.article_ids, h.texts, truth_matrix(labels))
    gated, reported = h.gated_categories(min_rows=50, min_positives=10)
    assert gated == ["emergencies", "weather_wet"] and "crime" in reported and "1 labelled rows" in reported["crime"]
    pred = h.truth == PRESENT
    pred[:, CATEGORIES.index("sports")] = True  # predictions on unknown cells cannot cost anything
    rep = score(pred, h, gated)
    assert rep["macro_f1"] == pytest.approx(1.0)
    assert rep["categories"]["crime"]["gated"] is False and rep["categories"]["crime"]["rows"] == 1
    assert "sports" not in rep["categories"]  # no labelled rows: not reported at all


def test_interval_excludes_zero_for_a_clear_gain_and_straddles_it_for_noise():
    h = held(400, 120)
    good, bad = predictions(h, 10), predictions(h, 80, seed=1)
    clear = paired_bootstrap(good, bad, h, ["emergencies", "weather_wet"], samples=500)
    assert clear["delta"] > 0.1 and clear["low"] > 0 and clear["low"] <= clear["delta"] <= clear["high"]
    a, b = predictions(h, 40, seed=2), predictions(h, 41, seed=3)
    noise = paired_bootstrap(a, b, h, ["emergencies", "weather_wet"], samples=500)
    assert noise["low"] < 0 < noise["high"]
    again = paired_bootstrap(a, b, h, ["emergencies", "weather_wet"], samples=500)
    assert again == noise  # seeded: the same rows give the same interval


def test_interval_of_a_model_with_itself_is_zero():
    h = held(100, 30)
    p = predictions(h, 5)
    iv = paired_bootstrap(p, p, h, ["emergencies", "weather_wet"], samples=200)
    assert iv["delta"] == iv["low"] == iv["high"] == 0.0


def gate_inputs(h: HeldoutSet, cand: np.ndarray, prod: np.ndarray | None, kw: np.ndarray) -> dict:
    preds = {"candidate": cand, "keywords": kw, **({"production": prod} if prod is not None else {})}
    return heldout_reports(preds, h, samples=500)


def report(macro: float, p95: float = 10.0) -> dict:
    return {"macro_f1": macro, "per_category": {}, "speed": {"latency_ms_p95_batch1": p95}}


def test_vs_production_needs_the_lower_bound_above_zero_not_a_point_gain():
    h = held(400, 120)
    kw = predictions(h, 100, seed=4)
    prod = predictions(h, 40, seed=5)
    slightly = predictions(h, 38, seed=6)  # a point gain of noise size
    heldout = gate_inputs(h, slightly, prod, kw)
    d = decide(report(0.9), report(0.5), report(0.9), heldout=heldout)
    vs = next(r for r in d.rules if r.name == "vs_production")
    assert heldout["intervals"]["candidate-production"]["low"] < 0 and not vs.passed and not d.promote
    assert "paired bootstrap" in vs.detail and d.evidence.startswith("held-out human labels (400 rows")
    clearly = predictions(h, 5, seed=7)
    d2 = decide(report(0.9), report(0.5), report(0.9), heldout=gate_inputs(h, clearly, prod, kw))
    assert d2.promote and next(r for r in d2.rules if r.name == "vs_production").value > 0
    # the threshold is configurable: demanding a lower bound above 0.5 keeps production
    d3 = decide(report(0.9), report(0.5), report(0.9), GateThresholds(min_interval_low=0.5),
                heldout=gate_inputs(h, clearly, prod, kw))
    assert not d3.promote


def test_keyword_rule_uses_heldout_humans_not_the_bootstrap_test_split():
    h = held(300, 90)
    kw, cand = predictions(h, 20, seed=8), predictions(h, 60, seed=9)
    # on the bootstrap test split the candidate looks better than keywords; on human labels it is worse
    d = decide(report(0.95), report(0.60), None, heldout=gate_inputs(h, cand, None, kw))
    rule = next(r for r in d.rules if r.name == "beats_keywords")
    assert not rule.passed and "candidate-keywords" in rule.detail and not d.promote
    table = d.table()
    assert "held-out human labels" in table and "emergencies" in table and "gated" in table


def test_without_heldout_labels_the_gate_says_it_judged_agreement():
    d = decide(report(0.8), report(0.6), None)
    assert d.promote and "agreement with bootstrap labels" in d.evidence
    assert "agreement with bootstrap labels" in d.table()
