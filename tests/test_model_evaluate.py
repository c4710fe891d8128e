"""Evaluation metrics against numbers worked out by hand on four rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from news_signals.core.taxonomy import CATEGORIES, empty_signals
from news_signals.model.evaluate import evaluate, evaluate_many, score_predictions


def sig(**cats):
    s = empty_signals()
    for c, (tag, score) in cats.items():
        s[c] = {"score": score, "tag": tag}
    return s


TEXTS = ["robbery downtown", "derby and markets", "a quiet day", "river floods"]
TRUTH = [
    sig(crime=("robbery", -0.8)),
    sig(sports=("football", 0.5), economics=("market", 0.2)),
    sig(),
    sig(weather_wet=("flood", -0.9)),
]
PRED = [
    sig(crime=("robbery", -0.6)),  # TP, right tag, same sign
    sig(sports=("victory", -0.4), politics=("vote", 0.1)),  # sports TP wrong tag + wrong sign; econ FN; politics FP
    sig(),
    sig(),  # weather_wet FN
]


class Fixed:
    """A real Classifier with fixed answers per text (what a labeller would return)."""

    name = "fixed"

    def __init__(self, answers):
        self.answers = answers

    def classify_texts(self, texts):
        return [self.answers[t] for t in texts]


def test_metrics_match_hand_computation():
    m = score_predictions(TRUTH, PRED)
    pc = m["per_category"]
    assert (pc["crime"]["precision"], pc["crime"]["recall"], pc["crime"]["f1"]) == (1.0, 1.0, 1.0)
    assert pc["sports"]["f1"] == 1.0  # detection counts presence, not the tag
    assert pc["economics"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1, "predicted": 0}
    assert pc["politics"]["support"] == 0 and pc["politics"]["predicted"] == 1 and pc["politics"]["f1"] == 0.0
    # categories seen in truth or predictions: crime, sports, economics, politics, weather_wet
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0 + 0 + 0) / 5)
    assert m["macro_f1_all"] == pytest.approx(2 / 9)
    assert m["micro_f1"] == pytest.approx(4 / 7)  # TP 2, FP 1, FN 2
    assert m["tag_accuracy"] == pytest.approx(1 / 4)
    assert m["score_mae"] == pytest.approx((0.2 + 0.9 + 0.2 + 0.1 + 0.9) / 36)
    assert m["score_mae_present"] == pytest.approx((0.2 + 0.9 + 0.2 + 0.9) / 4)
    assert m["sign_agreement"] == pytest.approx(1 / 2)
    # primary categories: crime, sports, weather_wet; nothing predicted for row 3 → ranked by taxonomy order
    assert (m["top1_accuracy"], m["top2_accuracy"], m["top3_accuracy"]) == pytest.approx((2 / 3, 2 / 3, 2 / 3))


def test_topk_uses_presence_probabilities_when_given():
    presence = np.zeros((4, len(CATEGORIES)))
    presence[0, CATEGORIES.index("crime")] = 0.9
    presence[1, CATEGORIES.index("sports")] = 0.8
    presence[3, CATEGORIES.index("emergencies")] = 0.4
    presence[3, CATEGORIES.index("weather_wet")] = 0.3  # second
    m = score_predictions(TRUTH, PRED, presence)
    assert (m["top1_accuracy"], m["top2_accuracy"], m["top3_accuracy"]) == pytest.approx((2 / 3, 1.0, 1.0))


def test_evaluate_writes_report_and_examples(tmp_path):
    clf = Fixed(dict(zip(TEXTS, PRED, strict=True)))
    report = evaluate(clf, TEXTS, TRUTH, out_dir=tmp_path / "rep", latency_samples=3, throughput_texts=8)
    assert report["classifier"] == "fixed" and report["macro_f1"] == pytest.approx(0.4)
    assert report["speed"]["latency_samples"] == 3 and report["speed"]["throughput_texts_per_s_batch64"] > 0
    assert report["speed"]["latency_ms_p95_batch1"] >= report["speed"]["latency_ms_p50_batch1"]
    saved = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert saved["tag_accuracy"] == pytest.approx(0.25)
    rows = [json.loads(line) for line in (tmp_path / "rep" / "examples.jsonl").read_text().splitlines()]
    assert [r["text"] for r in rows] == TEXTS
    assert [r["all_correct"] for r in rows] == [True, False, True, False]
    assert rows[1]["correct"]["sports"] is False and rows[1]["correct"]["crime"] is True
    assert rows[1]["predicted"]["politics"] == {"score": 0.1, "tag": "vote"}


def test_evaluate_many_side_by_side_and_contract_errors():
    perfect = Fixed(dict(zip(TEXTS, TRUTH, strict=True)))
    result = evaluate_many({"perfect": perfect, "fixed": Fixed(dict(zip(TEXTS, PRED, strict=True)))}, TEXTS, TRUTH, measure_latency=False)
    assert result["reports"]["perfect"]["macro_f1"] == 1.0 and result["reports"]["fixed"]["macro_f1"] == pytest.approx(0.4)
    header, macro = result["table"].splitlines()[:2]
    assert header.split() == ["perfect", "fixed"] and macro.split() == ["macro_f1", "1.000", "0.400"]
    bad = Fixed({t: sig(crime=("fraud", -0.5)) for t in TEXTS})
    with pytest.raises(ValueError, match="row 0.*fraud"):
        evaluate(bad, TEXTS, TRUTH, measure_latency=False)
    with pytest.raises(ValueError, match="align"):
        evaluate(perfect, TEXTS[:2], TRUTH, measure_latency=False)


def test_evaluate_cli_on_gold_jsonl(tmp_path, capsys):
    from news_signals.cli import main

    gold = tmp_path / "gold.jsonl"
    rows = [
        {"title": "Police arrest robbery suspect", "signals": sig(crime=("robbery", -0.6))},
        {"title": "A quiet day at the library", "signals": sig()},
    ]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert main(["evaluate", "--input", str(gold), "--keywords", "--out", str(tmp_path / "rep"), "--no-latency"]) == 0
    report = json.loads((tmp_path / "rep" / "keywords" / "report.json").read_text())
    assert report["classifier"] == "keywords" and report["n_examples"] == 2
    assert "macro_f1" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"title": "x", "signals": {"crime": {"score": 0, "tag": ""}}}) + "\n")
    assert main(["evaluate", "--input", str(bad), "--keywords", "--out", str(tmp_path / "rep2")]) == 2
    assert "article 1" in capsys.readouterr().err
    assert main(["evaluate", "--input", str(gold), "--out", str(tmp_path / "rep3")]) == 2
