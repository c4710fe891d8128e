"""The demo summary reads what monthly_retrain wrote: the development-split table and its verdicts."""

from __future__ import annotations

from news_signals.core.storage import Storage

from tools.summary import development_table


def report(f1: dict[str, float]) -> dict:
    cats = {c: {"precision": v, "recall": v, "f1": v} for c, v in f1.items()}
    return {"categories": cats, "macro_f1": sum(f1.values()) / len(f1), "rows": 10450, "source": "dev split"}


def test_development_table_says_who_is_ahead(tmp_path):
    storage = Storage(str(tmp_path))
    assert "not evaluated" in development_table(storage)
    dev = {
        "candidate": report({"emergencies": 0.70, "weather_wet": 0.60}),
        "production": report({"emergencies": 0.50, "weather_wet": 0.50}),
        "keywords": report({"emergencies": 0.60, "weather_wet": 0.60}),
    }
    storage.write_json(
        storage.path("runs", "snap", "key", "evaluation.json"),
        {"development": dev, "candidate_ref": "candidate", "production_ref": "news_signals@1"},
    )
    table = development_table(storage)
    assert "emergencies" in table and "0.700" in table and "0.650" in table  # per category and macro
    assert "candidate is ahead of the keyword labeller by 0.050" in table
    assert "production (news_signals@1) is behind the keyword labeller by 0.100" in table
    assert "10450 rows: dev split" in table
