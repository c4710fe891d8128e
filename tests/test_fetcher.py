"""The GDELT fetcher against the real replay server over HTTP: windows, splitting, pacing, retries."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pandas as pd
import pytest
from news_signals.cli import main as cli_main
from news_signals.core.config import GDELT_DEFAULT_URL, Settings
from news_signals.core.text import article_id, normalise_title
from news_signals.daily.gdelt import (
    COLUMNS,
    GdeltClient,
    GdeltFetchError,
    fetch_day,
    normalise_articles,
    resolve_endpoint,
)

DAY = date(2026, 11, 5)  # inside the replay corpus' default range
DEFAULT_QUERY = "sourcecountry:SW (sourcelang:swedish OR sourcelang:english)"


def client_for(server, **kw) -> GdeltClient:
    opts = {"timeout_s": 5.0, "min_interval_s": 0.0, "max_retries": 3, "backoff_s": 0.01}
    opts.update(kw)
    return GdeltClient(server.url, **opts)


def settings_for(server) -> Settings:
    return replace(Settings(), gdelt_url=server.url, gdelt_min_interval_s=0.0)


def expected_titles(server, day: date, query: str = DEFAULT_QUERY) -> set[str]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    rows = server.articles(query, start, start + timedelta(days=1) - timedelta(seconds=1))
    return {normalise_title(r["title"]) for r in rows}


def test_dense_day_arrives_complete_without_duplicates(replay_server):
    # The day really is dense: some 6-hour window holds more than GDELT's 250-row cap.
    start = datetime(2026, 11, 5, tzinfo=UTC)
    per_window = [
        len(replay_server.articles(DEFAULT_QUERY, start + timedelta(hours=h), start + timedelta(hours=h + 6)))
        for h in (0, 6, 12, 18)
    ]
    assert max(per_window) > 250

    df = fetch_day(DAY, settings_for(replay_server), client=client_for(replay_server))
    stats = df.attrs["fetch_stats"]
    assert stats["full_windows"] >= 1 and stats["truncated_windows"] == 0
    assert stats["requests"] == stats["windows"] > 4  # the full windows were split and asked again
    assert set(df["title"].map(normalise_title)) == expected_titles(replay_server, DAY)
    assert df["url"].is_unique and df["article_id"].is_unique
    assert df["title"].map(normalise_title).is_unique
    assert stats["duplicate_titles"] > 0  # syndicated copies were dropped


def test_a_full_window_that_cannot_shrink_is_asked_per_language(replay_server):
    start = datetime(2026, 11, 5, tzinfo=UTC)
    for h in (0, 6, 12, 18):  # precondition: per language, every 6-hour window fits under the cap
        for lang in ("swedish", "english"):
            q = f"sourcecountry:SW sourcelang:{lang}"
            assert (
                len(replay_server.articles(q, start + timedelta(hours=h), start + timedelta(hours=h + 6)))
                < 250
            )
    client = client_for(replay_server)
    df = fetch_day(DAY, settings_for(replay_server), client=client, min_window_minutes=360)
    stats = df.attrs["fetch_stats"]
    assert stats["full_windows"] >= 1 and stats["truncated_windows"] == 0
    per_language = [r.query["query"] for r in replay_server.requests if "OR" not in r.query["query"]]
    assert per_language and all(q.count("sourcelang:") == 1 for q in per_language)
    assert set(df["title"].map(normalise_title)) == expected_titles(replay_server, DAY)


def test_contract_columns_ids_and_utc_seendate(replay_server):
    df = fetch_day(DAY, settings_for(replay_server), client=client_for(replay_server), max_articles=120)
    assert list(df.columns[: len(COLUMNS)]) == COLUMNS
    assert "socialimage" in df.columns
    assert str(df["seendate"].dtype) == "datetime64[ns, UTC]"
    day_start = pd.Timestamp(DAY, tz="UTC")
    assert ((df["seendate"] >= day_start) & (df["seendate"] < day_start + pd.Timedelta(days=1))).all()
    assert df["seendate"].is_monotonic_increasing
    assert (df["article_id"] == [article_id(u, t) for u, t in zip(df["url"], df["title"], strict=True)]).all()
    assert set(df["language"]) <= {"Swedish", "English"} and set(df["sourcecountry"]) == {"Sweden"}
    assert len(df) == 120


def test_windows_cover_the_day_with_gdelt_parameters(replay_server):
    fetch_day(DAY, settings_for(replay_server), client=client_for(replay_server), query="stockholm")
    sent = replay_server.requests
    assert len(sent) == 4  # sparse query: four 6-hour windows, none full
    starts = [q.query["startdatetime"] for q in sent]
    ends = [q.query["enddatetime"] for q in sent]
    assert starts == ["20261105000000", "20261105060000", "20261105120000", "20261105180000"]
    assert ends == ["20261105060000", "20261105120000", "20261105180000", "20261106000000"]
    for q in sent:
        assert q.query["mode"] == "artlist" and q.query["format"] == "json" and q.query["maxrecords"] == "250"
        assert "sourcecountry:SW" in q.query["query"] and "sourcelang:swedish" in q.query["query"]
        assert q.query["query"].startswith("stockholm ")


def test_query_countries_and_languages_are_applied(replay_server):
    df = fetch_day(
        DAY,
        settings_for(replay_server),
        client=client_for(replay_server),
        countries=["SW", "AS"],
        languages=["english"],
    )
    assert set(df["language"]) == {"English"}
    assert set(df["sourcecountry"]) <= {"Sweden", "Australia"}
    assert set(df["title"].map(normalise_title)) == expected_titles(
        replay_server, DAY, "(sourcecountry:SW OR sourcecountry:AS) sourcelang:english"
    )


def test_requests_are_paced(replay_server):
    interval = 0.25
    client = client_for(replay_server, min_interval_s=interval)
    fetch_day(DAY, settings_for(replay_server), client=client, query="och")
    assert len(client.request_times) == len(replay_server.requests) >= 4
    # The client never starts two requests closer than the interval ...
    assert min(b - a for a, b in pairwise(client.request_times)) >= interval
    # ... and the server sees them spread out too (minus thread-scheduling jitter on a busy machine).
    assert min(b - a for a, b in pairwise(r.at for r in replay_server.requests)) > interval / 2


@pytest.mark.parametrize("fault", ["429", "500", "html", "truncated", "slow"])
def test_each_fault_is_retried_and_the_day_still_arrives(replay_server, fault):
    replay_server.slow_delay_s = 1.5
    replay_server.inject(fault, count=2)
    client = client_for(replay_server, timeout_s=0.5 if fault == "slow" else 5.0)
    df = fetch_day(DAY, settings_for(replay_server), client=client, query="sverige")
    stats = df.attrs["fetch_stats"]
    assert stats["retries"] == 2
    assert sum(stats["faults"].values()) == 2
    assert replay_server.pending_faults() == 0
    assert [r.fault for r in replay_server.requests[:2]] == [fault, fault]
    assert set(df["title"].map(normalise_title)) == expected_titles(
        replay_server, DAY, f"sverige {DEFAULT_QUERY}"
    )
    assert len(df) > 0


def test_exhausted_retries_name_the_window_and_last_status(replay_server):
    replay_server.inject("500", count=3)
    with pytest.raises(GdeltFetchError) as err:
        fetch_day(DAY, settings_for(replay_server), client=client_for(replay_server, max_retries=2))
    message = str(err.value)
    assert "2026-11-05 00:00:00" in message and "HTTP 500" in message and "3 attempts" in message
    assert len(replay_server.requests) == 3


def test_rejected_query_fails_fast_with_the_reason(replay_server):
    with pytest.raises(GdeltFetchError, match="HTTP 400.*theme"):
        fetch_day(
            DAY, settings_for(replay_server), client=client_for(replay_server), query="theme:TAX_FNCACT"
        )
    assert len(replay_server.requests) == 1


def test_an_invalid_endpoint_is_named():
    with pytest.raises(GdeltFetchError, match="not a valid URL"):
        fetch_day(DAY, client=GdeltClient("not-a-url", min_interval_s=0.0))


def test_a_day_without_articles_is_an_empty_typed_frame(replay_server):
    df = fetch_day(date(2020, 1, 1), settings_for(replay_server), client=client_for(replay_server))
    assert df.empty and list(df.columns) == COLUMNS
    assert str(df["seendate"].dtype) == "datetime64[ns, UTC]"
    assert len(replay_server.requests) == 4


def test_dedupe_keeps_earliest_by_url_then_by_normalised_title():
    raw = pd.DataFrame(
        [
            {"url": "https://a.se/1", "title": "Storm över Göteborg", "seendate": "20261105T101500Z"},
            {"url": "https://a.se/1", "title": "Storm över Göteborg!", "seendate": "20261105T100000Z"},
            {"url": "https://b.se/9", "title": "STORM över  göteborg.", "seendate": "20261105T120000Z"},
            {"url": "https://c.se/2", "title": "Annan nyhet", "seendate": "20261105T130000Z"},
            {"url": "https://c.se/3", "title": "Igår", "seendate": "20261104T235959Z"},
            {"url": "https://c.se/4", "title": "", "seendate": "20261105T130000Z"},
            {"url": "https://c.se/5", "title": "Trasigt datum", "seendate": "not a date"},
        ]
    )
    df = normalise_articles(raw, DAY)
    assert df["url"].tolist() == ["https://a.se/1", "https://c.se/2"]
    assert df.loc[0, "title"] == "Storm över Göteborg!"  # the earliest sighting of that URL
    assert df.loc[0, "seendate"] == pd.Timestamp("2026-11-05 10:00", tz="UTC")


def test_endpoint_from_env_then_connection_then_gdelt(replay_server, monkeypatch):
    monkeypatch.delenv("NEWS_SIGNALS_GDELT_URL", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_GDELT_API", raising=False)
    assert resolve_endpoint(Settings()) == GDELT_DEFAULT_URL
    monkeypatch.setenv("AIRFLOW_CONN_GDELT_API", json.dumps({"conn_type": "http", "host": replay_server.url}))
    assert resolve_endpoint(Settings()) == replay_server.url
    df = fetch_day(DAY, replace(Settings(), gdelt_min_interval_s=0.0), query="stockholm")
    assert len(df) > 0 and len(replay_server.requests) == 4
    # URI form: Airflow puts the (quoted) path into ``schema``; ``?scheme=http`` for a plain-HTTP host
    host_port = replay_server.url.split("/")[2]
    monkeypatch.setenv("AIRFLOW_CONN_GDELT_API", f"http://{host_port}/api%2Fv2%2Fdoc%2Fdoc?scheme=http")
    assert resolve_endpoint(Settings()) == replay_server.url
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", "http://127.0.0.1:9/other")
    assert resolve_endpoint(Settings()) == "http://127.0.0.1:9/other"


def test_fetch_command_writes_parquet_atomically(replay_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", replay_server.url)
    out = tmp_path / "day.parquet"
    rc = cli_main(["fetch", "--date", "2026-11-05", "--output", str(out), "--query", "stockholm"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    df = pd.read_parquet(out)
    assert summary["rows"] == len(df) > 0 and summary["requests"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["day.parquet"]  # no temp files left


def test_fetch_command_failure_says_why_and_writes_nothing(replay_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", replay_server.url)
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_RETRIES", "1")
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_BACKOFF", "0.01")
    replay_server.inject("429", count=2)
    out = tmp_path / "day.parquet"
    assert cli_main(["fetch", "--date", "2026-11-05", "--output", str(out)]) == 1
    assert "HTTP 429" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_fetch_command_rejects_a_bad_date(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["fetch", "--date", "05/11/2026", "--output", str(tmp_path / "x.parquet")])
    assert exit_info.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    assert not (tmp_path / "x.parquet").exists()
