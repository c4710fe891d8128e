"""The GDELT replay server over real HTTP: GDELT's answer shape, filters, dates, caps, faults."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime

import pytest
import requests
from news_signals.corpus import DEFAULT_START, load_corpus

from tools.gdelt_replay import FAULTS, MAX_RECORDS, ReplayServer, build_index, parse_query

DAY = date(2026, 11, 5)
FIELDS = {"url", "url_mobile", "title", "seendate", "socialimage", "domain", "language", "sourcecountry"}


def get(
    server: ReplayServer, query: str, start: str = "20261105000000", end: str = "20261105235959", **extra
):
    params = {"query": query, "mode": "artlist", "format": "json", "maxrecords": "250"}
    params.update({"startdatetime": start, "enddatetime": end, **extra})
    return requests.get(server.url, params=params, timeout=10)


def articles(resp: requests.Response) -> list[dict]:
    assert resp.status_code == 200, resp.text
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json().get("articles", [])


def test_answer_has_gdelt_shape_newest_first_and_capped(replay_server):
    rows = articles(get(replay_server, "sourcecountry:SW", maxrecords="40"))
    assert len(rows) == 40
    for row in rows:
        assert set(row) == FIELDS
        assert re.fullmatch(r"\d{8}T\d{6}Z", row["seendate"])
        assert row["language"] in {"Swedish", "English"}
        assert row["sourcecountry"] == "Sweden"
        assert row["url"].startswith(f"https://{row['domain']}/")
    seen = [r["seendate"] for r in rows]
    assert seen == sorted(seen, reverse=True)
    # maxrecords above GDELT's cap answers 250 at most
    assert len(articles(get(replay_server, "sourcecountry:SW", maxrecords="1000"))) == MAX_RECORDS


def test_country_and_language_filters_use_codes_in_queries_and_names_in_results(replay_server):
    abroad = articles(get(replay_server, "sourcecountry:AS", start="20261101000000", end="20261130235959"))
    assert abroad and {r["sourcecountry"] for r in abroad} == {"Australia"}
    by_name = articles(
        get(replay_server, "sourcecountry:australia", start="20261101000000", end="20261130235959")
    )
    assert [r["url"] for r in by_name] == [r["url"] for r in abroad]
    swedish = articles(get(replay_server, "sourcelang:swedish"))
    assert swedish and {r["language"] for r in swedish} == {"Swedish"}
    assert [r["url"] for r in articles(get(replay_server, "sourcelang:swe"))] == [r["url"] for r in swedish]
    both = articles(get(replay_server, "sourcecountry:SW (sourcelang:swedish OR sourcelang:english)"))
    assert {r["language"] for r in both} == {"Swedish", "English"}


def test_free_text_is_case_insensitive_and_of_words_phrases_or_and_not(replay_server):
    month = {"start": "20261101000000", "end": "20261130235959"}
    flood = articles(get(replay_server, "FLOODS", **month))
    assert flood and all(re.search(r"\bfloods\b", r["title"], re.I) for r in flood)
    both = articles(get(replay_server, "floods rain", **month))
    assert both and all(
        re.search(r"\bfloods\b", r["title"], re.I) and re.search(r"\brain\b", r["title"], re.I) for r in both
    )
    either = articles(get(replay_server, "(floods OR earthquake)", **month))
    count = {q: len(replay_server.articles(q)) for q in ("floods", "floods rain", "(floods OR earthquake)")}
    assert count["floods rain"] < count["floods"] < count["(floods OR earthquake)"]
    # "floodsx" is not "floods": word match, not substring
    assert all(re.search(r"\bfloods\b|\bearthquake\b", r["title"], re.I) for r in either)
    without = articles(get(replay_server, "floods -rain", **month))
    assert all(not re.search(r"\brain\b", r["title"], re.I) for r in without)
    phrase = articles(get(replay_server, '"heavy rain"', **month))
    assert phrase and all("heavy rain" in r["title"].lower() for r in phrase)


def test_date_window_is_inclusive_and_empty_answers_are_an_empty_object(replay_server):
    rows = replay_server.articles("sourcecountry:SW")
    stamp = next(r["seendate"] for r in rows if r["seendate"].startswith("20261105"))
    exact = stamp.replace("T", "").rstrip("Z")
    hits = articles(get(replay_server, "sourcecountry:SW", start=exact, end=exact))
    assert hits and {r["seendate"] for r in hits} == {stamp}
    resp = get(replay_server, "sourcecountry:SW", start="20200101000000", end="20200102000000")
    assert resp.status_code == 200 and resp.content == b"{}"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"startdatetime": "2026-11-05"}, "YYYYMMDDHHMMSS"),
        ({"mode": "timelinevol"}, "artlist"),
        ({"query": "(sourcecountry:SW"}, "unbalanced"),
        ({"query": "theme:TAX_DISEASE"}, "theme"),
        ({"maxrecords": "many"}, "maxrecords"),
    ],
)
def test_bad_requests_get_400_naming_the_problem(replay_server, params, message):
    query = params.pop("query", "sourcecountry:SW")
    resp = get(replay_server, query, **params)
    assert resp.status_code == 400
    assert message in resp.text


def test_faults_are_served_in_order_then_normal_answers(replay_server):
    replay_server.slow_delay_s = 0.05
    for fault in FAULTS:
        replay_server.inject(fault)
    replay_server.inject("500", count=2)
    r429 = get(replay_server, "sourcecountry:SW")
    assert r429.status_code == 429
    assert get(replay_server, "sourcecountry:SW").status_code == 500
    slow = get(replay_server, "sourcecountry:SW")
    assert slow.status_code == 200 and slow.json()["articles"]
    html = get(replay_server, "sourcecountry:SW")
    assert html.status_code == 200 and html.headers["Content-Type"].startswith("text/html")
    truncated = get(replay_server, "sourcecountry:SW")
    with pytest.raises(json.JSONDecodeError):
        json.loads(truncated.content)
    assert [get(replay_server, "sourcecountry:SW").status_code for _ in range(3)] == [500, 500, 200]
    assert replay_server.pending_faults() == 0
    assert [r.fault for r in replay_server.requests] == [*FAULTS, "500", "500", None]
    with pytest.raises(ValueError, match="unknown fault"):
        replay_server.inject("503")


def test_unknown_paths_404_and_health(replay_server):
    assert requests.get(f"{replay_server.base_url}/health", timeout=5).text == "ok"
    assert requests.get(f"{replay_server.base_url}/api/v2/geo/geo", timeout=5).status_code == 404


def test_articles_are_deterministic_and_follow_the_date_range():
    records = load_corpus()
    assert min(r.date for r in records) == DEFAULT_START
    subset = [r for r in records if r.date == DAY]
    assert [a.payload for a in build_index(subset)] == [a.payload for a in build_index(list(subset))]
    shifted = load_corpus(start_date=date(2027, 1, 1), days=7)
    assert {r.date for r in shifted} == {date(2027, 1, d) for d in range(1, 8)}
    assert {r.uid for r in shifted} == {r.uid for r in records}
    with ReplayServer(corpus=[r for r in shifted if r.date == date(2027, 1, 3)]) as server:
        rows = articles(get(server, "sourcelang:swedish", start="20270103000000", end="20270103235959"))
        assert rows and {r["seendate"][:8] for r in rows} == {"20270103"}


def test_some_syndicated_copies_share_a_title_on_another_domain(replay_server):
    rows = replay_server.articles(
        "", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    )
    by_title: dict[str, set[str]] = {}
    for r in rows:
        by_title.setdefault(r["title"], set()).add(r["domain"])
    copies = [t for t, d in by_title.items() if len(d) > 1]
    assert 0.01 * len(by_title) < len(copies) < 0.1 * len(by_title)


def test_parse_query_rejects_dangling_or():
    with pytest.raises(ValueError, match="OR needs"):
        parse_query("storm OR")


def test_replay_server_command_serves_until_terminated():
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tools.gdelt_replay",
            "--port",
            "0",
            "--start-date",
            "2026-11-01",
            "--days",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=os.environ.copy(),
    )
    try:
        url = None
        for _ in range(5):
            line = proc.stdout.readline()
            if line.startswith("export NEWS_SIGNALS_GDELT_URL="):
                url = line.split("=", 1)[1].strip()
                break
        assert url and url.endswith("/api/v2/doc/doc")
        params = {"query": "sourcecountry:SW", "mode": "artlist", "format": "json", "maxrecords": "5",
                  "startdatetime": "20261103000000", "enddatetime": "20261103235959"}  # fmt: skip
        rows = requests.get(url, params=params, timeout=10).json()["articles"]
        assert len(rows) == 5 and all(r["seendate"].startswith("20261103") for r in rows)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
