"""Seeded sources of human labels: the disaster-response messages' development split.

The disaster messages (Figure Eight / Appen, ``split == "train"``, ``genre == "news"``; the
``validation`` and ``test`` splits are never read) are human-labelled for four of our categories.
They enter the project like any annotator's batch: as rows of the labels store, split by
``article_id`` hash into a held-out, a calibration and a training part (``labels.split``). The
other five categories are unknown in these rows, never "absent".

A disaster label says *that* a category is present, not which of our tags applies, so the tag is
the keyword labeller's when it names one the human label allows, else the label's own tag
(``fire`` → fire, ``floods`` → flood, ``transport`` → traffic). Scores and F1 use presence only.
"""

from __future__ import annotations

from collections.abc import Iterable

from news_signals.core.taxonomy import ABSENT, TAGS
from news_signals.labels.split import PARTS as SPLIT_PARTS
from news_signals.labels.split import part_of
from news_signals.labels.store import LabelRow, text_article_id

DISASTER_SOURCE = "disaster_messages:train/news"
# our category -> {disaster column: the tag it implies}; a category is present when any column is 1
DISASTER_TAGS: dict[str, dict[str, str]] = {
    "emergencies": {"fire": "fire", "earthquake": "earthquake"},
    "weather_wet": {"floods": "flood", "storm": "storm"},
    "weather_temp": {"cold": "cold"},
    "transportation": {"transport": "traffic"},
}
PARTS = ("all", *SPLIT_PARTS)


def disaster_label_rows(part: str = "all", limit: int | None = None) -> list[LabelRow]:
    """The development split as label rows; ``part`` keeps one part of ``labels.split`` (or all)."""
    from news_signals.corpus import disaster_train_news
    from news_signals.labelling.keywords import KeywordLabeller

    if part not in PARTS:
        raise ValueError(f"part {part!r}: choose one of {PARTS}")
    df = disaster_train_news()
    if set(df["split"]) != {"train"}:  # the held-out splits of the data set must never be read
        raise ValueError("the disaster development split may only contain split == 'train' rows")
    df = df[df["genre"] == "news"].drop_duplicates("message").reset_index(drop=True)
    if limit is not None:
        df = df.iloc[:limit]
    texts = df["message"].astype(str).tolist()
    keyword = KeywordLabeller().classify_texts(texts)
    rows = []
    for text, kw, (_, rec) in zip(texts, keyword, df.iterrows(), strict=True):
        aid = text_article_id(text)
        if part != "all" and part_of(aid) != part:
            continue
        rows.append(LabelRow(aid, text, disaster_labels(rec, kw), annotator="figure-eight"))
    return rows


def disaster_labels(record: object, keyword_signals: dict) -> dict[str, str | None]:
    """Our four categories from one disaster row (the other five stay unknown)."""
    labels: dict[str, str | None] = {}
    for category, columns in DISASTER_TAGS.items():
        implied = [tag for col, tag in columns.items() if int(record[col]) > 0]  # type: ignore[index]
        if not implied:
            labels[category] = ABSENT
            continue
        guess = keyword_signals[category]["tag"]
        labels[category] = guess if guess in implied else implied[0]
    return labels


def vocabulary_check(rows: Iterable[LabelRow]) -> None:
    """Every seeded tag is in its category's vocabulary (a guard for DISASTER_TAGS edits)."""
    for row in rows:
        for c, tag in row.labels.items():
            if tag not in (None, ABSENT) and tag not in TAGS[c]:
                raise ValueError(f"seeded tag {c}={tag!r} is outside the vocabulary {TAGS[c]}")
