"""The human-labels store: supersede across batches, partial labels, in-batch conflicts, idempotent
re-import, every GX refusal (nothing written), and the held-out hash split."""

from __future__ import annotations

import hashlib

import pytest
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES
from news_signals.core.text import article_id
from news_signals.labels.split import (
    CALIBRATION_FRACTION,
    HELDOUT_FRACTION,
    heldout_point,
    is_calibration,
    is_heldout,
    part_of,
)
from news_signals.labels.store import (
    LabelError,
    LabelRow,
    LabelStore,
    calibration_mask,
    split,
    text_article_id,
)


def store_files(home) -> list[str]:
    batches = home / "labels" / "batches"
    return sorted(p.name for p in batches.iterdir()) if batches.exists() else []


def row(aid: str, text: str, ref: str = "", annotator: str | None = "ann", **labels: str | None) -> LabelRow:
    return LabelRow(aid, text, dict(labels), annotator, ref=ref or f"row {aid}")


# ---- split --------------------------------------------------------------------------------------
def test_split_is_a_fixed_salted_hash_with_the_documented_fraction():
    # pinned: changing the salt or the hash would move labelled articles between training and held-out
    expected = int(hashlib.sha256(b"news-signals-heldout:abc123").hexdigest()[:8], 16) / 16**8
    assert heldout_point("abc123") == expected
    assert is_heldout("abc123") and not is_heldout("0000000000000000")
    ids = [article_id(f"https://news.example/{i}", "a headline") for i in range(10_000)]
    share = sum(is_heldout(a) for a in ids) / len(ids)
    assert HELDOUT_FRACTION == 0.3 and abs(share - 0.3) < 0.015
    # a larger fraction only adds articles to the held-out part, it never moves one out
    assert {a for a in ids if is_heldout(a)} <= {a for a in ids if is_heldout(a, 0.5)}
    with pytest.raises(ValueError, match="fraction"):
        is_heldout("x", 1.5)


def test_the_calibration_part_is_the_bucket_above_the_heldout_one_and_moves_nothing_out_of_it():
    ids = [article_id(f"https://news.example/{i}", "a headline") for i in range(10_000)]
    parts = [part_of(a) for a in ids]
    # the held-out part is exactly what it was before the calibration part existed
    assert [p == "heldout" for p in parts] == [is_heldout(a) for a in ids]
    assert [p == "calibration" for p in parts] == [is_calibration(a) for a in ids]
    assert CALIBRATION_FRACTION == 0.1 and abs(parts.count("calibration") / len(ids) - 0.1) < 0.01
    assert abs(parts.count("training") / len(ids) - 0.6) < 0.015
    for a, p in zip(ids[:200], parts[:200], strict=True):
        point = heldout_point(a)
        assert p == ("heldout" if point < 0.3 else "calibration" if point < 0.4 else "training")


def test_calibration_mask_follows_the_id_and_a_shared_text(ns_home):
    ids = [f"{i:016x}" for i in range(400)]
    cal_id = next(a for a in ids if part_of(a) == "calibration")
    train_id, other_id = [a for a in ids if part_of(a) == "training"][:2]
    store = LabelStore(Storage(str(ns_home)))
    store.import_rows([row(cal_id, "Snow closes the pass", weather_temp="cold")], source="a")
    store.import_rows(
        [row(train_id, "Snow closes the pass!", weather_temp="cold"), row(other_id, "Police arrest two", crime="police")],
        source="b",
    )
    training, held = split(store.current())
    assert held.empty
    mask = dict(zip(training["article_id"], calibration_mask(training), strict=True))
    # the syndicated copy of a calibration article is calibration too: it must not train the weights
    assert mask == {cal_id: True, train_id: True, other_id: False}


def test_split_sends_a_shared_text_to_the_heldout_side(ns_home):
    held_id = next(a for a in (f"{i:016x}" for i in range(100)) if is_heldout(a))
    train_id = next(a for a in (f"{i:016x}" for i in range(100)) if not is_heldout(a))
    other_id = next(a for a in (f"{i:016x}" for i in range(100, 200)) if not is_heldout(a))
    store = LabelStore(Storage(str(ns_home)))
    store.import_rows(
        [row(held_id, "Storm floods the old town", weather_wet="flood"), row(other_id, "Police arrest two", crime="police")],
        source="a",
    )
    # the same headline, syndicated under an id of the training side
    store.import_rows([row(train_id, "Storm floods the old town!", weather_wet="storm")], source="b")
    training, held = split(store.current())
    assert set(held["article_id"]) == {held_id, train_id}
    assert list(training["article_id"]) == [other_id]
    assert not set(training["article_id"]) & set(held["article_id"])


# ---- supersede and partial labels ---------------------------------------------------------------
def test_later_known_labels_supersede_per_article_and_category(ns_home):
    store = LabelStore(Storage(str(ns_home)))
    b1 = store.import_rows(
        [
            row("a1", "Fire at the harbour", annotator="ann1", emergencies="fire", crime=""),
            row("a2", "Team wins the cup", annotator="ann1", sports="victory"),
        ],
        source="round-1",
    )
    b2 = store.import_rows(
        [row("a1", "Fire at the harbour", annotator="ann2", crime="police")],  # partial: crime only
        source="round-2",
    )
    b3 = store.import_rows([row("a2", "Team wins the cup", annotator="ann3", sports="")], source="round-3")
    assert [b.batch_id for b in store.batches()] == [b1.batch_id, b2.batch_id, b3.batch_id]
    cur = store.current().set_index("article_id")
    assert set(cur.columns) >= {"text", *CATEGORIES, "heldout", "n_labelled", "last_batch", "annotator"}
    a1 = cur.loc["a1"]
    assert a1["emergencies"] == "fire"  # batch 2 did not label it: batch 1 stands
    assert a1["crime"] == "police"  # batch 2 corrected "" -> police
    assert a1["festivals"] is None  # never labelled: unknown, not absent
    assert a1["n_labelled"] == 2 and a1["last_batch"] == b2.batch_id and a1["annotator"] == "ann2"
    assert cur.loc["a2", "sports"] == ""  # an absent label is known: it supersedes "victory"
    assert cur.loc["a2", "n_labelled"] == 1
    assert bool(cur.loc["a1", "heldout"]) == is_heldout("a1")
    assert store.labelled_ids() == {"a1", "a2"}
    assert store.labelled_texts() == {"fire at the harbour", "team wins the cup"}


def test_agreeing_duplicates_merge_and_a_conflict_refuses_the_batch(ns_home):
    store = LabelStore(Storage(str(ns_home)))
    m = store.import_rows(
        [
            row("a1", "Fire at the harbour", "line 1", "ann1", emergencies="fire"),
            row("a1", "Fire at the harbour", "line 2", "ann2", emergencies="fire", crime=""),
        ],
        source="dups",
    )
    assert m.rows == 1 and m.annotators == ["ann1", "ann2"]
    cur = store.current().iloc[0]
    assert (cur["emergencies"], cur["crime"], cur["annotator"]) == ("fire", "", "ann1, ann2")
    before = store_files(ns_home)
    with pytest.raises(LabelError) as err:
        store.import_rows(
            [
                row("b1", "Storm hits", "task 5 annotation 11", weather_wet="storm"),
                row("b1", "Storm hits", "task 5 annotation 12", weather_wet="rain"),
                row("b2", "Quiet day", "task 6 annotation 13", crime=""),
            ],
            source="conflict",
        )
    msg = str(err.value)
    assert "task 5 annotation 11" in msg and "task 5 annotation 12" in msg and "weather_wet" in msg
    assert "'storm'" in msg and "'rain'" in msg and "nothing stored" in msg
    assert store_files(ns_home) == before  # not even the clean article b2


def test_reimporting_the_same_labels_is_a_no_op(ns_home):
    store = LabelStore(Storage(str(ns_home)))
    rows = [row("a1", "Fire at the harbour", emergencies="fire"), row("a2", "Cup final", sports="game")]
    first = store.import_rows(rows, source="file.jsonl")
    files = store_files(ns_home)
    again = store.import_rows(list(reversed(rows)), source="renamed.jsonl", fmt="label-studio")
    assert again == first and store_files(ns_home) == files and len(store.batches()) == 1
    changed = store.import_rows([row("a1", "Fire at the harbour", emergencies="explosion")], source="fix")
    assert changed.batch_id != first.batch_id and len(store.batches()) == 2


def test_manifest_describes_the_batch(ns_home):
    storage = Storage(str(ns_home))
    m = LabelStore(storage).import_rows(
        [row("a1", "Fire", annotator="x@y", emergencies="fire", crime=""), row("a2", "Rain", annotator=None, weather_wet="rain")],
        source="round-1",
        skipped={"cancelled_annotations": 2},
    )
    parquet = ns_home / "labels" / "batches" / f"{m.batch_id}.parquet"
    assert m.sha256 == hashlib.sha256(parquet.read_bytes()).hexdigest()
    assert m.batch_id.endswith(m.content_sha256[:8]) and m.batch_id[:8].isdigit() and "T" in m.batch_id
    assert (m.rows, m.source, m.format, m.annotators) == (2, "round-1", "jsonl", ["x@y"])
    assert m.per_category["emergencies"] == {"labelled": 1, "absent": 0, "unknown": 1}
    assert m.per_category["crime"] == {"labelled": 0, "absent": 1, "unknown": 1}
    assert m.skipped == {"cancelled_annotations": 2}
    on_disk = storage.read_json(str(ns_home / "labels" / "batches" / f"{m.batch_id}.json"))
    assert on_disk["content_sha256"] == m.content_sha256 and on_disk["created_at"] == m.created_at


def test_an_empty_store_reads_as_an_empty_frame(ns_home):
    store = LabelStore(Storage(str(ns_home)))
    cur = store.current()
    assert cur.empty and {"article_id", "text", "heldout", *CATEGORIES} <= set(cur.columns)
    training, held = split(cur)
    assert training.empty and held.empty and store.batches() == [] and store.labelled_ids() == set()


def test_text_article_id_ignores_spacing_and_punctuation():
    assert text_article_id("Fire at the  harbour!") == text_article_id("fire at the harbour")
    assert len(text_article_id("x")) == 16


# ---- GX refusals: the batch is refused whole, the row and the fix named, nothing written -----------
GOOD = row("g1", "Fire at the harbour", "line 1", emergencies="fire")


@pytest.mark.parametrize(
    "bad, expected",
    [
        (row("b1", "Cup final", "line 2", sport="game"), ["line 2", "unknown category 'sport'", "sports"]),
        (row("b1", "Blaze downtown", "line 2", emergencies="blaze"),
         ["line 2", "emergencies='blaze'", "valid tags for emergencies: fire, earthquake", '"" for absent']),
        (row("b1", "   ", "line 2", crime=""), ["line 2", "text is empty"]),
        (row("b2", "fire at the HARBOUR", "line 2", emergencies="fire"),
         ["line 1 and line 2", "duplicate article", "g1", "b2"]),
        (LabelRow("b1", 42, {"crime": ""}, ref="line 2"), ["line 2", "text 42 is not a string"]),
        (row("b1", "Cup final", "line 2", sports=["game"]), ["line 2", "sports=['game']", "valid tags for sports"]),
        (LabelRow(7, "Cup final", {"sports": "game"}, ref="line 2"), ["line 2", "article_id 7 is not an id"]),
        (row("b1", "Cup final", "line 2", sports=None), ["line 2", "no category is labelled"]),
        (LabelRow("b1", "Cup final", {"sports": "game"}, annotator=3, ref="line 2"), ["line 2", "annotator 3"]),
    ],
    ids=["unknown-category", "tag-outside-vocabulary", "empty-text", "duplicate-article", "text-not-string",
         "tag-wrong-type", "article-id-wrong-type", "nothing-labelled", "annotator-wrong-type"],
)
def test_gx_refuses_the_whole_batch(ns_home, bad, expected):
    store = LabelStore(Storage(str(ns_home)))
    store.import_rows([row("first", "An earlier batch", emergencies="")], source="seed")
    before = store_files(ns_home)
    with pytest.raises(LabelError) as err:
        store.import_rows([GOOD, bad], source="bad")
    for part in expected:
        assert part in str(err.value)
    assert store_files(ns_home) == before
    assert store.labelled_ids() == {"first"}


def test_an_empty_batch_and_an_empty_source_are_refused(ns_home):
    store = LabelStore(Storage(str(ns_home)))
    with pytest.raises(LabelError, match="no labelled rows"):
        store.import_rows([], source="x")
    with pytest.raises(LabelError, match="source"):
        store.import_rows([GOOD], source=" ")
    assert store_files(ns_home) == []
