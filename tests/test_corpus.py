"""The real-text corpus: sources present, cleaning, deterministic dates, the disaster train split only."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date

import pytest
from news_signals.core.text import normalise_title
from news_signals.corpus import (
    DEFAULT_DAYS,
    DEFAULT_START,
    SOURCES,
    disaster_train_news,
    load_corpus,
    load_texts,
)
from news_signals.corpus.loader import HOURLY_WEIGHTS, schedule, text_uid
from news_signals.corpus.sources import CorpusSourceMissing, _dehyphenate, package_dir


@pytest.fixture(scope="module")
def corpus():
    return load_corpus()


def test_every_source_contributes_in_both_languages(corpus):
    per_source = Counter(r.source for r in corpus)
    assert set(per_source) == set(SOURCES)
    assert per_source["disaster_news"] > 8000 and per_source["journal_speech"] > 5000
    assert per_source["journal_intertitle"] > 1000 and per_source["lee_news"] > 1000
    assert per_source["reuters_titles"] > 250
    langs = Counter(r.lang for r in corpus)
    assert set(langs) == {"en", "sv"} and langs["sv"] > 0.35 * len(corpus)


def test_texts_are_clean_and_unique(corpus):
    norms = [normalise_title(r.text) for r in corpus]
    assert len(set(norms)) == len(norms)
    for r in corpus:
        assert 20 <= len(r.text) <= 300 and r.text == " ".join(r.text.split())
        assert "-->" not in r.text and "\t" not in r.text
    reuters = [r.text for r in corpus if r.source == "reuters_titles"]
    assert not any(re.search(r"\d{4}-\d{2}-\d{2}$", t) for t in reuters)  # dateline stripped
    assert not any(re.match(r"^\d+ ", t) for t in reuters)  # line number stripped


def test_intertitle_ocr_noise_is_dropped():
    assert _dehyphenate("en av Dalarnas för=\tnämsta gårdar") == "en av Dalarnas förnämsta gårdar"
    kept = load_texts(("journal_intertitle",))
    assert kept
    for r in kept:
        # OCR garbage such as "ERSTA IDG EDO" or "SSESSSE" never survives: no all-caps runs
        assert not re.search(r"\b[A-ZÅÄÖ]{3,}\b", r.text), r.text
        assert r.text[0].isupper() and r.text[-1] in ".!?"
        assert "=" not in r.text  # hyphenation marks joined


def test_dates_are_deterministic_inside_the_range_on_the_15_minute_grid(corpus):
    first, last = DEFAULT_START, date.fromordinal(DEFAULT_START.toordinal() + DEFAULT_DAYS - 1)
    assert {r.date for r in corpus} == {date.fromordinal(first.toordinal() + i) for i in range(DEFAULT_DAYS)}
    assert all(first <= r.date <= last and r.seendate.date() == r.date for r in corpus)
    assert all(r.seendate.minute % 15 == 0 and r.seendate.second == 0 for r in corpus)
    assert all(r.seendate.tzinfo is not None and r.seendate.utcoffset().total_seconds() == 0 for r in corpus)
    sample = corpus[::997]
    assert [schedule(text_uid(r.source, r.text)) for r in sample] == [r.seendate for r in sample]
    per_day = Counter(r.date for r in corpus)
    assert min(per_day.values()) > 0.7 * max(per_day.values())  # spread evenly over days
    hours = Counter(r.seendate.hour for r in corpus)
    busiest, quietest = HOURLY_WEIGHTS.index(max(HOURLY_WEIGHTS)), HOURLY_WEIGHTS.index(min(HOURLY_WEIGHTS))
    assert hours[busiest] > 4 * hours[quietest]  # a news day, not a flat line


def test_disaster_rows_are_train_and_news_only_with_their_labels():
    df = disaster_train_news()
    assert set(df["split"]) == {"train"} and set(df["genre"]) == {"news"}
    assert len(df) == 10450
    for col in ("fire", "earthquake", "floods", "storm", "cold", "transport", "related"):
        assert df[col].dtype == "int64"
        assert set(df[col].unique()) <= {0, 1, 2}
    assert df["message"].str.len().min() > 0
    assert "original" not in df.columns
    # every disaster text the replay corpus serves is one of these train rows
    train_ids = set(df["id"].astype(str))
    served = [r for r in load_texts(("disaster_news",))]
    assert served and all(r.origin.rsplit("#id=", 1)[1] in train_ids for r in served)


def test_missing_package_is_a_clear_error():
    with pytest.raises(CorpusSourceMissing, match="requirements-corpus.txt"):
        package_dir("no_such_corpus_module_xyz", "no-such-corpus")


def test_unknown_source_is_rejected():
    with pytest.raises(ValueError, match="unknown corpus source"):
        load_texts(("wikipedia",))


def test_the_seeded_disaster_labels_fall_into_disjoint_parts_of_the_label_split():
    """The development split seeds the held-out and calibration parts; the oracle answers the rest."""
    from news_signals.labels.sources import disaster_label_rows
    from news_signals.labels.split import part_of

    every = {r.article_id for r in disaster_label_rows("all", limit=600)}
    parts = {p: {r.article_id for r in disaster_label_rows(p, limit=600)} for p in ("heldout", "calibration", "training")}
    assert all(part_of(a) == p for p, ids in parts.items() for a in ids)
    assert set().union(*parts.values()) == every and sum(map(len, parts.values())) == len(every)
    assert 0.05 < len(parts["calibration"]) / len(every) < 0.15
    with pytest.raises(ValueError, match="choose one of"):
        disaster_label_rows("validation")
