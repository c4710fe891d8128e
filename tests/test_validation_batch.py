"""GX validation of a labelled daily batch: pass, each failure named with its count, quarantine."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, TAGS, score_column, tag_column
from news_signals.core.text import article_id
from news_signals.daily.validation import (
    QUARANTINE_RESULT,
    QUARANTINE_SUMMARY,
    REQUIRED_COLUMNS,
    BatchLimits,
    BatchValidationError,
    check_batch,
    validate_batch,
)

DAY = "2024-01-05"
LIMITS = BatchLimits(min_rows=1, max_rows=1000, max_unlabelled_share=0.5)


def labelled_batch(n: int = 6) -> pd.DataFrame:
    """A valid batch: every other row has an emergencies fire signal, one row a sports victory."""
    rows = []
    for i in range(n):
        url, title = f"https://example.se/news/{i}", f"headline number {i}"
        row = {
            "article_id": article_id(url, title),
            "url": url,
            "title": title,
            "seendate": pd.Timestamp(f"{DAY}T{i % 24:02d}:15:00", tz="UTC"),
            "domain": "example.se",
            "language": "Swedish" if i % 2 else "English",
            "sourcecountry": "Sweden" if i % 3 else "SW",  # GDELT answers with names, filters by code
        }
        for c in CATEGORIES:
            row[score_column(c)], row[tag_column(c)] = 0.0, ""
        if i % 2 == 0:
            row["emergencies_score"], row["emergencies_tag"] = -0.7, "fire"
        if i == 1:
            row["sports_score"], row["sports_tag"] = 0.5, "victory"
        row["labeller"] = "keywords@1"
        rows.append(row)
    return pd.DataFrame(rows)


def settings_for(home: Path):
    from news_signals.core.config import Settings

    return Settings(home=str(home), countries=("SW",), languages=("swedish", "english"))


def test_valid_batch_passes_every_expectation(tmp_path):
    report = validate_batch(labelled_batch(), DAY, settings_for(tmp_path), limits=LIMITS)
    assert report.success, report.failure_message()
    assert report.row_count == 6 and not report.failed
    names = {o.name for o in report.outcomes}
    assert {
        "seendate_in_day",
        "article_id_unique",
        "row_count_in_range",
        "unlabelled_share_below_max",
    } <= names
    assert {f"{tag_column(c)}_in_vocabulary" for c in CATEGORIES} <= names
    assert json.loads(json.dumps(report.gx_result))["success"] is True
    assert "PASSED" in report.table()


def test_failing_batch_names_each_expectation_with_its_count_and_is_quarantined(tmp_path):
    df = labelled_batch()
    df.loc[0, "title"] = None  # 1 null title
    df.loc[1, "seendate"] = pd.Timestamp("2024-01-06T00:00:00", tz="UTC")  # next day: outside the window
    df.loc[2, "seendate"] = pd.Timestamp("2024-01-04T23:59:59", tz="UTC")  # previous day
    df.loc[3, "article_id"] = df.loc[4, "article_id"]  # 2 rows share an id
    df.loc[5, "language"] = "German"
    df.loc[0, "economics_score"] = 1.5
    df.loc[4, "crime_tag"] = "banana"  # not in the crime vocabulary
    settings = settings_for(tmp_path)

    with pytest.raises(BatchValidationError) as err:
        check_batch(df, DAY, settings, limits=LIMITS)

    msg = str(err.value)
    expected = {
        "title_not_null": 1,
        "seendate_in_day": 2,
        "article_id_unique": 2,
        "language_in_set": 1,
        "economics_score_in_range": 1,
        "crime_tag_in_vocabulary": 1,
    }
    failed = {o.name: o.unexpected_count for o in err.value.report.failed}
    assert failed == expected
    for name, count in expected.items():
        assert f"{name}: {count} unexpected" in msg
    assert "quarantine" in msg

    storage = Storage(str(tmp_path))
    folder = Path(storage.quarantine_dir(DAY))
    rejected = pd.read_parquet(folder / "part-0.parquet")
    assert len(rejected) == len(df) and rejected["article_id"].tolist() == df["article_id"].tolist()
    result = json.loads((folder / QUARANTINE_RESULT).read_text())
    assert result["gx_result"]["success"] is False
    assert sorted(result["report"]["failed"]) == sorted(expected)
    summary = (folder / QUARANTINE_SUMMARY).read_text()
    assert "seendate_in_day" in summary and "FAIL" in summary
    assert not (tmp_path / "articles").exists()
    assert storage.partition_dates() == []


def test_batch_level_row_count_and_unlabelled_share(tmp_path):
    df = labelled_batch(4)
    for c in CATEGORIES:  # 3 of 4 rows without any category
        df.loc[1:, tag_column(c)] = ""
        df.loc[1:, score_column(c)] = 0.0
    limits = BatchLimits(min_rows=5, max_rows=10, max_unlabelled_share=0.5)
    report = validate_batch(df, DAY, settings_for(tmp_path), limits=limits)
    failed = {o.name: o for o in report.failed}
    assert set(failed) == {"row_count_in_range", "unlabelled_share_below_max"}
    assert failed["row_count_in_range"].observed == 4
    assert failed["unlabelled_share_below_max"].unexpected_count == 3
    # the same batch passes when the limits allow it
    ok = validate_batch(df, DAY, settings_for(tmp_path), limits=BatchLimits(1, 10, 0.8))
    assert ok.success, ok.failure_message()


def test_missing_column_and_wrong_types_are_named(tmp_path):
    df = labelled_batch().drop(columns=["domain"])
    df["seendate"] = df["seendate"].astype(str)  # strings, not UTC timestamps
    df["politics_score"] = df["politics_score"].astype(str)
    report = validate_batch(df, DAY, settings_for(tmp_path), limits=LIMITS)
    failed = {o.name: o for o in report.failed}
    assert failed["columns_present"].observed == {"missing": ["domain"]}
    assert failed["domain_is_string"].error == "column 'domain' is missing from the batch"
    assert "seendate_is_utc_timestamp" in failed
    assert "politics_score_is_float" in failed
    assert "domain_is_string: error:" in report.failure_message()


def test_empty_day_fails_clearly_unless_zero_rows_are_allowed(tmp_path):
    empty = labelled_batch().iloc[0:0]
    report = validate_batch(empty, DAY, settings_for(tmp_path), limits=LIMITS)
    assert [o.name for o in report.failed] == ["row_count_in_range"]
    assert "empty day" in report.failure_message() and "min_rows=0" in report.failure_message()
    allowed = validate_batch(empty, DAY, settings_for(tmp_path), limits=BatchLimits(0, 10, 0.5))
    assert allowed.success, allowed.failure_message()


def test_country_and_language_sets_come_from_settings(tmp_path):
    df = labelled_batch()
    report = validate_batch(
        df, DAY, settings_for(tmp_path), limits=LIMITS, countries=["NO"], languages=["swedish"]
    )
    failed = {o.name: o.unexpected_count for o in report.failed}
    assert failed == {"sourcecountry_in_set": 6, "language_in_set": 3}


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="row-count range"):
        BatchLimits(min_rows=10, max_rows=5)
    with pytest.raises(ValueError, match="max_unlabelled_share"):
        BatchLimits(max_unlabelled_share=1.5)


def test_required_columns_follow_the_taxonomy():
    assert [c for c in REQUIRED_COLUMNS if c.endswith("_tag")] == [tag_column(c) for c in CATEGORIES]
    assert all(t for c in CATEGORIES for t in TAGS[c])
