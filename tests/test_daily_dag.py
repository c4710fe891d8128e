"""End to end: the real gdelt_daily_ingest DAG under dag.test() against the GDELT replay server."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, SIGNAL_COLUMNS, TAGS, tag_column
from news_signals.core.text import article_id
from news_signals.daily.assets import DAILY_ARTICLES_ASSET_URI
from news_signals.daily.validation import ARTICLE_COLUMNS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def gdelt(replay_server, monkeypatch):
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", replay_server.url)
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_MIN_INTERVAL", "0")
    monkeypatch.setenv("NEWS_SIGNALS_COUNTRIES", "SW")
    monkeypatch.setenv("NEWS_SIGNALS_LANGUAGES", "swedish,english")
    return replay_server


@pytest.fixture(scope="module")
def daily_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags" / "gdelt_daily_ingest.py"))
    assert bag.import_errors == {}
    return bag.dags["gdelt_daily_ingest"]


def task_states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_dag_run_publishes_the_day_with_the_partition_schema(airflow_db, ns_home, gdelt, daily_dag):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.settings import Session
    from news_signals.labelling.keywords import KeywordLabeller

    # dag.test() triggers a manual run at this logical date: its data interval is the previous day
    dr = daily_dag.test(logical_date=datetime(2026, 11, 4, tzinfo=UTC))
    assert dr.state == "success", task_states(dr)
    day = "2026-11-03"

    storage = Storage(str(ns_home))
    assert storage.partition_dates() == [day]
    df = pd.read_parquet(storage.partition_file(day))
    assert list(df.columns) == [*ARTICLE_COLUMNS, *SIGNAL_COLUMNS, "labeller"]
    assert len(df) > 50
    assert str(df["seendate"].dtype) == "datetime64[ns, UTC]"
    assert df["seendate"].min() >= pd.Timestamp(day, tz="UTC")
    assert df["seendate"].max() < pd.Timestamp("2026-11-04", tz="UTC")
    assert df["article_id"].is_unique
    assert all(
        a == article_id(u, t) for a, u, t in zip(df["article_id"], df["url"], df["title"], strict=True)
    )
    assert set(df["sourcecountry"]) == {"Sweden"}
    assert set(df["language"]) <= {"Swedish", "English"}
    assert set(df["labeller"]) == {KeywordLabeller().label}
    for c in CATEGORIES:
        assert set(df[tag_column(c)]) <= {ABSENT, *TAGS[c]}
    assert (df[[tag_column(c) for c in CATEGORIES]] != ABSENT).any(axis=1).sum() > 0, (
        "no article was labelled"
    )
    # every article the server holds for the day and the filters is there, once
    served = {
        a["url"]
        for a in gdelt.articles(
            "sourcecountry:SW",
            datetime(2026, 11, 3, tzinfo=UTC),
            datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC),
        )
    }
    assert set(df["url"]) <= served and len(df) >= 0.9 * len(served)
    assert not Path(storage.path("staging")).exists() or not any(Path(storage.path("staging")).iterdir())

    publish = next(ti for ti in dr.get_task_instances() if ti.task_id == "publish")
    assert publish.xcom_pull(task_ids="publish")["rows"] == len(df)
    with Session() as session:
        events = (
            session.query(AssetEvent)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .filter(AssetModel.uri == DAILY_ARTICLES_ASSET_URI)
            .all()
        )
        assert [e.extra.get("date") for e in events][-1] == day
        assert events[-1].extra["rows"] == len(df)


def test_failing_validation_quarantines_and_publishes_nothing(airflow_db, ns_home, gdelt, daily_dag):
    day = "2026-11-05"
    dr = daily_dag.test(
        logical_date=datetime(2026, 11, 6, 12, tzinfo=UTC),
        run_conf={"date": day, "min_rows": 100_000, "max_rows": 200_000},
    )
    assert dr.state == "failed"
    states = task_states(dr)
    assert states["fetch"] == "success" and states["label"] == "success"
    assert states["validate"] == "failed" and states["publish"] == "upstream_failed"

    storage = Storage(str(ns_home))
    assert storage.partition_dates() == []
    assert not Path(storage.path("articles")).exists()
    quarantine = Path(storage.quarantine_dir(day))
    assert sorted(p.name for p in quarantine.iterdir()) == [
        "part-0.parquet",
        "summary.txt",
        "validation.json",
    ]
    assert "row_count_in_range" in (quarantine / "summary.txt").read_text()
    assert len(pd.read_parquet(quarantine / "part-0.parquet")) > 0


def test_rerunning_a_day_outside_airflow_replaces_it_exactly(ns_home, gdelt):
    """The ingest-day path (same stage functions): deterministic, and a re-run replaces the partition."""
    from news_signals.daily.pipeline import ingest_day
    from news_signals.daily.validation import BatchLimits

    first = ingest_day("2026-11-07", max_articles=80, limits=BatchLimits(1, 1000, 1.0))
    storage = Storage(str(ns_home))
    before = pd.read_parquet(storage.partition_file("2026-11-07"))
    second = ingest_day("2026-11-07", max_articles=80, limits=BatchLimits(1, 1000, 1.0))
    after = pd.read_parquet(storage.partition_file("2026-11-07"))
    assert first["rows"] == second["rows"] == len(after) == 80
    pd.testing.assert_frame_equal(before, after)
    assert sorted(p.name for p in Path(storage.partition_dir("2026-11-07")).iterdir()) == ["part-0.parquet"]


def test_an_empty_day_fails_clearly_or_publishes_empty_when_allowed(ns_home, gdelt):
    """A day with no articles (before the replay corpus starts): documented choice, both ways."""
    from news_signals.daily.pipeline import ingest_day
    from news_signals.daily.validation import BatchLimits, BatchValidationError

    with pytest.raises(BatchValidationError, match=r"row_count_in_range.*empty day.*min_rows=0"):
        ingest_day("2026-10-01")
    storage = Storage(str(ns_home))
    assert storage.partition_dates() == []
    assert Path(storage.quarantine_dir("2026-10-01"), "validation.json").exists()

    result = ingest_day("2026-10-01", limits=BatchLimits(min_rows=0))
    assert result["rows"] == 0 and storage.partition_dates() == ["2026-10-01"]
    empty = pd.read_parquet(storage.partition_file("2026-10-01"))
    assert list(empty.columns) == [*ARTICLE_COLUMNS, *SIGNAL_COLUMNS, "labeller"] and empty.empty


def test_ingest_day_command(ns_home, gdelt, capsys):
    import json

    from news_signals.cli import main

    assert (
        main(["ingest-day", "--date", "2026-11-08", "--max-articles", "30", "--max-unlabelled-share", "1"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["day"] == "2026-11-08" and result["rows"] == 30
    assert Path(result["partition"]).exists() and sum(result["labels"].values()) >= 30

    assert main(["ingest-day", "--date", "8 Nov"]) == 2
    assert "pass it as YYYY-MM-DD" in capsys.readouterr().err
    # a failing batch exits 2 and names the expectation; the good partition from above is untouched
    assert main(["ingest-day", "--date", "2026-11-08", "--max-articles", "30", "--min-rows", "31"]) == 2
    assert "row_count_in_range" in capsys.readouterr().err
    assert len(pd.read_parquet(result["partition"])) == 30
