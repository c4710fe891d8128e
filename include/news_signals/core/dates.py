"""The one parser of a day (``YYYY-MM-DD``) for Params, CLI flags, asset extras and partitions."""

from __future__ import annotations

import argparse
from datetime import date, datetime


def parse_day(value: str | date, what: str = "date") -> str:
    """``value`` as ``YYYY-MM-DD``: a date, a datetime or an ISO string (a timestamp is cut to its day).

    Anything else raises ValueError naming ``what`` and the value, with the expected form.
    """
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    try:
        return date.fromisoformat(str(value).strip()[:10]).isoformat()
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a day; pass it as YYYY-MM-DD, e.g. 2024-05-01") from None


def day_argument(value: str) -> str:
    """``argparse`` type for a ``--date``-like flag: the parse error becomes the usage message."""
    try:
        return parse_day(value, "day")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
