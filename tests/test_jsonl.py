"""Strict JSON Lines readers shared by `classify`, `evaluate --input` and the retrain's gold file."""

from __future__ import annotations

import json

import pytest
from news_signals.core.jsonl import read_gold
from news_signals.core.taxonomy import empty_signals


def test_gold_accepts_text_or_title_and_checks_signals(tmp_path):
    crime = empty_signals()
    crime["crime"] = {"score": -0.7, "tag": "robbery"}
    path = tmp_path / "gold.jsonl"
    path.write_text(
        json.dumps({"text": "Bank robbed in Malmö", "signals": crime}) + "\n\n"
        + json.dumps({"title": "Rain", "description": "Heavy rain all day", "signals": empty_signals()}) + "\n"
    )
    texts, truth = read_gold(path)
    assert texts == ["Bank robbed in Malmö", "Rain. Heavy rain all day"]
    assert truth[0]["crime"] == {"score": -0.7, "tag": "robbery"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"text": "x"}', 'missing "signals"'),
        ('{"signals": {}}', 'needs "text" or "title"'),
        ('{"text": "x", "signals": {"crime": {"score": 0, "tag": ""}}}', "lack categories"),
        ("[1, 2]", "expected a JSON object"),
        ("{oops", "not valid JSON"),
    ],
)
def test_gold_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "gold.jsonl"
    path.write_text(json.dumps({"text": "ok", "signals": empty_signals()}) + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message) as err:
        read_gold(path)
    assert f"{path}:2" in str(err.value)


def test_gold_missing_or_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="gold file"):
        read_gold(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="no articles"):
        read_gold(tmp_path / "empty.jsonl")
