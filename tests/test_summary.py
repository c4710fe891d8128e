"""The demo summary reads what monthly_retrain wrote: held-out human numbers first, agreement apart."""

from __future__ import annotations

from news_signals.core.storage import Storage

from tools.summary import agreement_table, heldout_table


def human(f1: dict[str, float]) -> dict:
    cats = {c: {"precision": v, "recall": v, "f1": v, "rows": 300, "support": 40, "gated": True} for c, v in f1.items()}
    return {"categories": cats, "macro_f1": sum(f1.values()) / len(f1), "rows": 300}


def test_heldout_table_says_who_is_ahead_and_agreement_leaves_keywords_out(tmp_path):
    storage = Storage(str(tmp_path))
    assert "no held-out human labels" in heldout_table(storage)
    heldout = {
        "rows": 300,
        "rows_per_category": {"emergencies": {"known": 300, "present": 40}, "weather_wet": {"known": 300, "present": 40}},
        "gated_categories": ["emergencies", "weather_wet"],
        "reports": {
            "candidate": human({"emergencies": 0.70, "weather_wet": 0.60}),
            "production": human({"emergencies": 0.50, "weather_wet": 0.50}),
            "keywords": human({"emergencies": 0.60, "weather_wet": 0.60}),
        },
        "intervals": {"candidate-production": {"delta": 0.15, "low": 0.05, "high": 0.25, "confidence": 0.95}},
    }
    per_cat = {"emergencies": {"f1": 0.9}, **{c: {"f1": 0.5} for c in ("crime", "festivals", "transportation",
               "weather_temp", "weather_wet", "sports", "economics", "politics")}}
    reports = {n: {"macro_f1": 0.88, "per_category": per_cat} for n in ("candidate", "production", "keywords")}
    storage.write_json(
        storage.path("runs", "snap", "key", "evaluation.json"),
        {"heldout": heldout, "reports": reports, "test_rows": 500,
         "candidate_ref": "candidate", "production_ref": "news_signals@1"},
    )
    table = heldout_table(storage)
    assert "emergencies" in table and "0.7000" in table and "0.6500" in table  # per category and macro
    assert "candidate is ahead of the keyword labeller by 0.050 macro-F1 on 300 held-out" in table
    assert "production (news_signals@1) is behind the keyword labeller by 0.100" in table
    assert "candidate-production: +0.1500 [+0.0500, +0.2500]" in table
    agreement = agreement_table(storage)
    assert "keywords" not in agreement and "bootstrap labeller" in agreement and "0.880" in agreement


def test_labels_table_names_every_batch_and_says_plainly_when_the_annotator_is_simulated(tmp_path):
    from news_signals.labels.store import LabelRow, LabelStore

    from tools.oracle_annotator import ORACLE
    from tools.summary import labels_table

    storage = Storage(str(tmp_path))
    assert "none" in labels_table(storage)
    store = LabelStore(storage)
    store.import_rows([LabelRow("a1", "Flood closes the bridge", {"weather_wet": "flood"}, annotator="ann@team")],
                      source="team-a")
    table = labels_table(storage)
    assert "team-a (jsonl; by ann@team)" in table and "simulated" not in table  # a real team: nothing claimed
    store.import_rows([LabelRow("a2", "Snow stops trains", {"transportation": "delay"}, annotator=ORACLE)],
                      source="oracle-round-1", fmt="label-studio",
                      skipped={"cancelled_annotations": 3, "tasks_without_annotations": 3})
    table = labels_table(storage)
    assert "oracle-round-1" in table and "simulated annotator" in table and "never read" in table
    # each reason once, never summed: a task whose one annotation was cancelled is not two skips
    assert "3 cancelled annotations, 3 tasks without annotations" in table and "skipped 6" not in table
