"""Promotion gate: the rules on hand-made reports, then real tiny models through the retrain stages
(first model, a better one promoted, a degraded one kept with production untouched, forced)."""

from __future__ import annotations

import json
import posixpath
import shutil
from pathlib import Path

import pytest
from news_signals.retrain.gate import GateThresholds, decide


def report(f1: float, p95: float = 10.0, **per_cat: float) -> dict:
    return {
        "macro_f1": f1,
        "speed": {"latency_ms_p95_batch1": p95},
        "per_category": {c: {"f1": v} for c, v in per_cat.items()},
    }


KW = report(0.40, 0.5)


def test_first_model_needs_floor_and_keywords_only():
    d = decide(report(0.55), KW, None)
    assert d.promote and d.decision == "promote" and not d.forced
    assert {r.name: r.passed for r in d.rules} == {
        "macro_f1_floor": True,
        "beats_keywords": True,
        "vs_production": True,
        "latency_budget": True,
    }
    assert "first model" in d.rules[2].detail


def test_each_rule_can_block():
    assert decide(report(0.20), report(0.1), None).failed == ["macro_f1_floor"]
    t = GateThresholds(keyword_margin=0.1)
    assert decide(report(0.45), KW, None, t).failed == ["beats_keywords"]
    assert decide(report(0.60), KW, report(0.60)).failed == ["vs_production"]
    assert decide(report(0.60, p95=5000), KW, None).failed == ["latency_budget"]
    t = GateThresholds(per_category_floors={"sports": 0.3})
    assert decide(report(0.6, sports=0.1), KW, None, t).failed == ["f1_floor:sports"]
    t = GateThresholds(gold_min_macro_f1=0.5)
    assert decide(report(0.6), KW, None, t, gold={"macro_f1": 0.4}).failed == ["gold_floor"]


def test_better_promoted_degraded_kept_tie_needs_clear_speedup():
    prod = report(0.60, p95=20.0)
    assert decide(report(0.62), KW, prod).promote
    assert not decide(report(0.50), KW, prod).promote
    tie_fast = decide(report(0.598, p95=10.0), KW, prod)
    assert tie_fast.promote and "faster" in tie_fast.rules[2].detail
    assert not decide(report(0.598, p95=19.0), KW, prod).promote  # 5% faster is noise, not a reason


def test_a_p95_gain_without_a_throughput_gain_is_noise():
    """The demo's case: same architecture, p95 19.6 vs 24.5 ms under load, batch throughput +6%."""

    def timed(f1: float, p95: float, tp: float) -> dict:
        r = report(f1, p95=p95)
        r["speed"]["throughput_texts_per_s_batch64"] = tp
        return r

    prod = timed(0.6297, 24.5, 186.2)
    noise = decide(timed(0.6284, 19.6, 198.2), KW, prod)
    assert not noise.promote and noise.failed == ["vs_production"]
    real = decide(timed(0.6284, 12.0, 370.0), KW, prod)  # e.g. an int8 or a smaller student
    assert real.promote and "faster" in real.rules[2].detail
    assert not decide(report(0.62), KW, prod, same_as_production=True).promote


def test_force_promote_requires_reason_and_is_recorded():
    with pytest.raises(ValueError, match="needs a reason"):
        decide(report(0.1), KW, None, force_promote=True, reason="  ")
    d = decide(report(0.1), KW, None, force_promote=True, reason="rollback of a bad lexicon")
    assert d.promote and d.forced and d.reason == "rollback of a bad lexicon"
    assert "macro_f1_floor" in d.to_dict()["failed_rules"]
    assert "FORCED" in d.table()


def test_thresholds_from_params_are_checked():
    t = GateThresholds.from_mapping(
        {"min_gain": "0.02", "tolerance": None, "per_category_floors": {"sports": 0.2}}
    )
    assert t.min_gain == 0.02 and t.tolerance == GateThresholds().tolerance
    with pytest.raises(ValueError, match="unknown gate threshold 'min_f1'"):
        GateThresholds.from_mapping({"min_f1": 0.3})
    with pytest.raises(ValueError, match="unknown categories"):
        GateThresholds.from_mapping({"per_category_floors": {"sport": 0.2}})
    with pytest.raises(ValueError, match="must be a number"):
        GateThresholds.from_mapping({"min_gain": "lots"})


def test_keyword_rule_prefers_heldout_human_labels():
    """The test split is labelled by the bootstrap labeller (keywords look great there); humans decide."""
    def human(cand: float, kw: float) -> dict:
        reports = {"candidate": {"macro_f1": cand, "categories": {}}, "keywords": {"macro_f1": kw, "categories": {}}}
        return {"rows": 3100, "gated_categories": ["emergencies"], "reports": reports, "intervals": {},
                "rows_per_category": {"emergencies": {"known": 3100, "present": 250}}}

    on_test_only = decide(report(0.55), report(0.90), None)
    assert on_test_only.failed == ["beats_keywords"] and "agreement with bootstrap labels" in on_test_only.evidence
    with_human = decide(report(0.55), report(0.90), None, heldout=human(0.64, 0.60))
    rule = with_human.rules[1]
    assert with_human.promote and rule.value == 0.64 and rule.threshold == 0.60
    assert "held-out human labels (3100 rows" in with_human.evidence
    assert decide(report(0.95), report(0.50), None, heldout=human(0.58, 0.60)).failed == ["beats_keywords"]
    margin = decide(report(0.55), report(0.90), None, GateThresholds(keyword_margin=0.05), heldout=human(0.64, 0.60))
    assert margin.failed == ["beats_keywords"]


def test_table_lists_every_rule_with_value_and_threshold():
    table = decide(report(0.55), KW, report(0.5, p95=12.0)).table()
    for name in ("macro_f1_floor", "beats_keywords", "vs_production", "latency_budget"):
        assert name in table
    assert "0.5050" in table and "PROMOTE" in table  # production 0.50 + min_gain 0.005


# ---- real tiny models through the retrain stages -------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A snapshot in storage plus three real tiny artifacts: weak (1 epoch), good (8), degraded (no labels)."""
    import pandas as pd
    import torch
    from news_signals.core.storage import Storage
    from news_signals.core.taxonomy import CATEGORIES, score_column, tag_column

    from tools.tiny_model import make_synthetic_snapshot

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("gate")
    storage = Storage(str(root / "home"))
    snap = make_synthetic_snapshot(Path(storage.snapshot_dir("synthetic")), n_per_template=6)
    wiped = root / "wiped"
    shutil.copytree(snap, wiped)
    train = pd.read_parquet(wiped / "train.parquet")
    for c in CATEGORIES:
        train[score_column(c)], train[tag_column(c)] = 0.0, ""
    train.to_parquet(wiped / "train.parquet", index=False)
    from news_signals.model.train import TrainConfig, train

    from tools.tiny_model import build_tiny_base_model

    base = build_tiny_base_model(root / "base", list(train_texts(snap)))

    def fit(snapshot, out, epochs):
        config = TrainConfig(
            epochs=epochs,
            batch_size=8,
            lr=3e-3,
            head_lr_multiplier=5.0,
            patience=epochs,
            log_every=0,
            model_name="tiny",
            threads=2,
            train_path="full",  # a randomly initialised tiny encoder has no lower layers worth freezing
        )
        return train(snapshot, str(base), root / out, config)

    return {
        "storage": storage,
        "weak": fit(snap, "weak", 1),
        "good": fit(snap, "good", 5),  # reaches macro-F1 1.0 on the synthetic templates
        "degraded": fit(wiped, "degraded", 1),  # learned from a train split with every label removed
    }


def train_texts(snapshot):
    import pandas as pd

    return pd.read_parquet(Path(snapshot) / "train.parquet")["text"]


PARAMS = {
    "keyword_margin": -1.0,
    "min_macro_f1": 0.0,
    "latency_p95_budget_ms": 60000,
    "latency_samples": 5,
}


def run_gate(models, name, monkeypatch, **params):
    """evaluate → gate → register stages for one candidate; returns (gate, registered)."""
    from news_signals.retrain import pipeline as retrain

    storage = models["storage"]
    monkeypatch.setenv("NEWS_SIGNALS_HOME", storage.root)
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "local")
    work = storage.path("runs", "synthetic", f"{name}-{len(list(Path(storage.root).rglob('gate.json')))}")
    Path(work).mkdir(parents=True)
    plan = {
        "action": "local",
        "snapshot_id": "synthetic",
        "work_dir": work,
        "candidate_dir": str(models[name]),
        "job": {"base_model": "tiny", "epochs": 1},
    }
    p = {**PARAMS, **params}
    retrain.evaluate_stage(plan, p, storage)
    evaluation = json.loads(Path(posixpath.join(work, "evaluation.json")).read_text())
    assert evaluation["heldout"] is None  # no human labels in this store: the gate says it judged agreement
    gate = retrain.gate_stage(plan, p, storage)
    registered = retrain.register_stage(plan, p, promote=gate["promote"], storage=storage)
    saved = json.loads(Path(posixpath.join(work, "gate.json")).read_text())
    assert saved["decision"] == gate["decision"]
    return gate, registered


def test_real_models_first_better_degraded_forced_and_registry_failure(models, monkeypatch):
    from news_signals.registry import LocalRegistry, get_registry

    # 1. the first model ever: no production, promoted on floor + keywords alone
    gate, reg = run_gate(models, "weak", monkeypatch)
    assert gate["promote"] and reg["promoted"] and reg["production"] == reg["version"] == 1

    # 2. a really better model: promoted over production
    gate, reg = run_gate(models, "good", monkeypatch)
    assert gate["promote"], gate["table"]
    assert reg == {"version": 2, "name": "news_signals", "promoted": True, "production": 2}

    # 3. a deliberately degraded candidate: registered for the record, production untouched
    gate, reg = run_gate(models, "degraded", monkeypatch)
    assert not gate["promote"] and "vs_production" in gate["failed_rules"], gate["table"]
    assert reg["version"] == 3 and not reg["promoted"] and reg["production"] == 2
    registry = get_registry()
    assert registry.get(3).gate["decision"] == "keep"

    # 4. a registry failure fails the stage and leaves production where it was
    def broken(*args, **kwargs):
        raise OSError("disk full")

    with monkeypatch.context() as m, pytest.raises(OSError, match="disk full"):
        m.setattr(LocalRegistry, "register", broken)
        run_gate(models, "good", monkeypatch, min_gain=-1.0)
    assert get_registry().production().version == 2

    # 5. forced: the degraded model goes to production with the reason recorded
    gate, reg = run_gate(models, "degraded", monkeypatch, force_promote=True, reason="incident 42 rollback")
    assert gate["forced"] and reg["promoted"] and reg["production"] == 3
    # version 3 keeps the gate report it was registered with (immutable); the promotion log has the override
    promotions = get_registry().promotions()
    assert [p["version"] for p in promotions] == [1, 2, 3]
    assert promotions[-1]["reason"] == "incident 42 rollback" and promotions[-1]["previous"] == 2
