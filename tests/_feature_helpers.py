"""Helpers for the feature-pipeline tests: daily partitions in the DESIGN.md schema and a tiny classifier."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
from news_signals.storage import Storage
from news_signals.taxonomy import CATEGORIES, Signals, empty_signals, signals_to_columns
from news_signals.text import article_id

HEADLINES = [
    ("Fire destroys warehouse in Gothenburg harbour", "Sweden"),
    ("Police arrest two after jewellery store robbery", "Sweden"),
    ("Thousands celebrate at midsummer festival parade", "Sweden"),
    ("Heavy snow closes roads and delays trains", "Sweden"),
    ("Local team wins the hockey championship", "Norway"),
    ("Inflation falls as markets rally", "Norway"),
    ("Parliament votes on new climate policy", "Norway"),
    ("Heatwave breaks temperature records", "Finland"),
]


def make_partition(day: str | date, n: int = 8) -> pd.DataFrame:
    """A labelled daily partition as gdelt_daily_ingest writes it (columns of docs/DESIGN.md)."""
    iso = day if isinstance(day, str) else day.isoformat()
    rows = []
    for i in range(n):
        title, country = HEADLINES[i % len(HEADLINES)]
        title = f"{title} ({i})" if i >= len(HEADLINES) else title
        url = f"https://news.example/{iso}/{i}"
        rows.append(
            {
                "article_id": article_id(url, title),
                "url": url,
                "title": title,
                "seendate": pd.Timestamp(f"{iso}T{i % 24:02d}:00:00Z"),
                "domain": "news.example",
                "language": "English",
                "sourcecountry": country,
                **signals_to_columns(empty_signals()),
                "labeller": "keywords@1",
            }
        )
    return pd.DataFrame(rows)


def write_partition(storage: Storage, day: str, n: int = 8) -> pd.DataFrame:
    df = make_partition(day, n)
    storage.replace_partition(day, df)
    return df


class TinyClassifier:
    """A real Classifier: 'fire' → emergencies -0.8 fire, 'wins' → sports +0.6 victory, else nothing."""

    def __init__(self, name: str = "model:tiny@1") -> None:
        self.name = name
        self.calls: list[int] = []

    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        self.calls.append(len(texts))
        out = []
        for text in texts:
            sig = empty_signals()
            low = text.lower()
            if "fire" in low:
                sig["emergencies"] = {"score": -0.8, "tag": "fire"}
            if "wins" in low:
                sig["sports"] = {"score": 0.6, "tag": "victory"}
            out.append(sig)
        return out


__all__ = ["CATEGORIES", "TinyClassifier", "make_partition", "write_partition"]
