"""core.dates.parse_day: the one day parser (Params, CLI flags, asset extras)."""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime

import pytest
from news_signals.core.dates import day_argument, parse_day


def test_parse_day_accepts_dates_datetimes_and_iso_text():
    assert parse_day("2024-05-01") == "2024-05-01"
    assert parse_day(" 2024-05-01T13:00:00+00:00 ") == "2024-05-01"
    assert parse_day(date(2024, 5, 1)) == "2024-05-01"
    assert parse_day(datetime(2024, 5, 1, 23, 59, tzinfo=UTC)) == "2024-05-01"


@pytest.mark.parametrize("bad", ["8 Nov", "2024-13-01", "", "05/11/2026", None])
def test_parse_day_names_what_was_wrong_and_the_form(bad):
    with pytest.raises(ValueError, match=r"end_date .* is not a day; pass it as YYYY-MM-DD"):
        parse_day(bad, "end_date")


def test_day_argument_is_an_argparse_type():
    parser = argparse.ArgumentParser()
    parser.add_argument("--date", type=day_argument)
    assert parser.parse_args(["--date", "2024-05-01"]).date == "2024-05-01"
    with pytest.raises(argparse.ArgumentTypeError, match="YYYY-MM-DD"):
        day_argument("yesterday")
