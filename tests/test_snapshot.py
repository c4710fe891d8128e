"""Training snapshot: window, dedupe, balance, split, atomic write, idempotency, GX checks."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, tag_column

END = date(2026, 11, 10)


def write_daily_partitions(storage: Storage, end: date = END, days: int = 4, per_day: int = 150) -> list[str]:
    """Daily partitions made by the daily pipeline's own functions from the real replay corpus."""
    from news_signals.corpus.loader import load_corpus
    from news_signals.daily.pipeline import label_frame, normalise_articles
    from news_signals.labelling.keywords import KeywordLabeller

    records = load_corpus()
    labeller = KeywordLabeller()
    written = []
    for k in range(days):
        day = end - timedelta(days=days - 1 - k)
        # the corpus spans 30 replay days; take one replay day's texts per partition day
        chunk = [r for r in records if r.date == records[0].date + timedelta(days=k)][:per_day]
        rows = [
            {
                "url": f"https://replay.example/{r.uid}",
                "title": r.text,
                "seendate": pd.Timestamp(day.isoformat() + " 12:00", tz="UTC"),
                "domain": "replay.example",
                "language": "English" if r.lang == "en" else "Swedish",
                "sourcecountry": "Sweden",
            }
            for r in chunk
        ]
        from news_signals.core.text import article_id

        for row in rows:
            row["article_id"] = article_id(row["url"], row["title"])
        df = label_frame(normalise_articles(pd.DataFrame(rows)), labeller)
        storage.replace_partition(day, df)
        written.append(day.isoformat())
    return written


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Storage:
    storage = Storage(str(tmp_path_factory.mktemp("snap") / "home"))
    write_daily_partitions(storage)
    return storage


def params(**kw):
    from news_signals.retrain.snapshot import SnapshotParams

    base = {"end_date": END.isoformat(), "lookback_days": 30, "labeller": "keywords", "min_rows_per_category": 1}
    return SnapshotParams(**{**base, **kw})


def read(result, split):
    return pd.read_parquet(Path(result.path) / f"{split}.parquet")


def test_snapshot_splits_manifest_and_hashes(store):
    from news_signals.registry.base import sha256_file
    from news_signals.retrain.snapshot import build_snapshot

    result = build_snapshot(params(), store)
    m = result.manifest
    splits = {s: read(result, s) for s in ("train", "val", "test")}
    assert m["counts"] == {s: len(df) for s, df in splits.items()}
    assert all(n > 0 for n in m["counts"].values())
    assert m["source"]["dates"] == store.partition_dates()
    assert m["labeller"].startswith("keywords@")
    for fname, digest in m["files"].items():
        assert sha256_file(Path(result.path) / fname) == digest
    ids = [set(df["article_id"]) for df in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    # stratified: every primary category with >= 10 rows appears in train and test
    total = pd.concat(splits.values())
    for cat, n in total["primary_category"].value_counts().items():
        if n >= 10:
            assert cat in set(splits["train"]["primary_category"]) and cat in set(splits["test"]["primary_category"])
    for c in CATEGORIES:  # label counts in the manifest match the files
        assert sum(m["label_counts"]["train"][c].values()) == int((splits["train"][tag_column(c)] != "").sum())
    assert {"text", "date", "primary_category", "emergencies_confidence"} <= set(splits["train"].columns)
    # the balancing cap holds in train (no more unlabelled rows than labelled ones, max_none_ratio=1);
    # val and test keep the data's own mix, so thresholds and the gate see what production sees
    train_none = splits["train"]["primary_category"] == "none"
    assert train_none.sum() <= (~train_none).sum()
    held = pd.concat([splits["val"], splits["test"]])
    if m["stats"]["balanced_out"]:
        assert (held["primary_category"] == "none").mean() > train_none.mean()


def test_rerun_is_idempotent_and_seed_changes_split(store):
    from news_signals.retrain.snapshot import build_snapshot

    first = build_snapshot(params(), store)
    again = build_snapshot(params(), store)
    assert again.reused and again.id == first.id
    assert read(again, "train").equals(read(first, "train"))
    other = build_snapshot(params(seed=99), store)
    assert other.id != first.id
    assert set(read(other, "test")["article_id"]) != set(read(first, "test")["article_id"])


def test_near_duplicates_removed():
    from news_signals.retrain.snapshot import near_duplicates

    texts = [
        "Storm closes the E4 motorway near Uppsala",
        "Storm closes the E4 motorway near Uppsala!",
        "Riksbank raises interest rate to fight inflation",
        "Storm closes E4 motorway near Uppsala tonight",
    ]
    assert near_duplicates(texts, 0.99) == [1]
    assert near_duplicates(texts, 0.6) == [1, 3]


def test_strong_disagreement_rule():
    from news_signals.retrain.snapshot import strong_disagreement

    absent = {"score": 0.0, "tag": ""}
    assert strong_disagreement({"score": -0.7, "tag": "fire", "confidence": 0.5}, absent, 0.6)  # far apart
    assert strong_disagreement({"score": 0.2, "tag": "game", "confidence": 0.9}, absent, 0.6)  # confident, denied
    assert not strong_disagreement({"score": 0.2, "tag": "game", "confidence": 0.6}, absent, 0.6)
    assert strong_disagreement({"score": 0.3, "tag": "vote"}, {"score": -0.2, "tag": "protest"}, 0.6)  # sign flip
    assert not strong_disagreement({"score": -0.3, "tag": "vote"}, {"score": -0.2, "tag": "protest"}, 0.6)


def test_too_little_data_names_counts(store):
    from news_signals.retrain.snapshot import SnapshotError, build_snapshot

    with pytest.raises(SnapshotError, match=r"has \d+ labelled rows and needs at least 100000"):
        build_snapshot(params(min_rows_per_category=100000), store)
    with pytest.raises(SnapshotError, match="no daily partitions between"):
        build_snapshot(params(end_date="2020-01-31"), store)
    assert not any(p.name.startswith(".tmp-") for p in Path(store.path("snapshots")).iterdir())


def test_label_filter_and_disagreement_report(store, monkeypatch):
    from news_signals.retrain import snapshot as snap

    result = snap.build_snapshot(params(label_filter=("politics", "economics", "none")), store)
    all_rows = pd.concat(read(result, s) for s in ("train", "val", "test"))
    assert set(all_rows["primary_category"]) <= {"politics", "economics", "none"}

    class Contrarian:  # a labeller that disagrees with keywords on every politics row
        name, version = "contrarian", "1"

        def classify_texts(self, texts):
            from news_signals.labelling.keywords import KeywordLabeller

            out = KeywordLabeller().classify_texts(texts)
            for s in out:
                s["politics"] = {"score": -1.0, "tag": "protest", "confidence": 0.9}
            return out

    monkeypatch.setattr(snap, "make_labeller", lambda kind, llm_fallback=False: (Contrarian(), "contrarian@1"))
    result = snap.build_snapshot(params(), store)
    d = result.manifest["disagreements"]
    assert result.manifest["labeller"] == "contrarian@1"
    assert d["rows"] > 0 and set(d["per_category"]) == {"politics"}
    assert (Path(result.path) / d["file"]).is_file()
    assert read(result, "train")["politics_confidence"].eq(0.9).all()


def test_gx_validation_passes_then_catches_leak_and_shift(store):
    from news_signals.retrain.snapshot import build_snapshot
    from news_signals.retrain.validation import SnapshotChecks, SnapshotValidationError, check_snapshot

    older = build_snapshot(params(end_date=(END - timedelta(days=2)).isoformat()), store)
    current = build_snapshot(params(), store)
    report = check_snapshot(current.id, store, SnapshotChecks(min_train_rows=1, max_label_shift_kl=5.0))
    assert report.success and report.previous_id == older.id
    assert json.loads((Path(current.path) / "validation.json").read_text())["success"]

    with pytest.raises(SnapshotValidationError, match="label_shift_kl"):
        check_snapshot(current.id, store, SnapshotChecks(min_train_rows=1, max_label_shift_kl=1e-6))

    # leak one test row into train (in a snapshot no other test uses): GX catches id and title
    leaky = build_snapshot(params(seed=7), store)
    train, test = read(leaky, "train"), read(leaky, "test")
    pd.concat([train, test.head(1)]).to_parquet(Path(leaky.path) / "train.parquet", index=False)
    from news_signals.retrain.validation import validate_snapshot

    report = validate_snapshot(leaky.id, store, SnapshotChecks(min_train_rows=1, max_label_shift_kl=5.0))
    assert {"no_shared_article_id", "no_shared_title"} <= {c.name for c in report.failed}
    assert not report.success


def test_human_labels_override_per_category_never_leak_and_survive_balancing(tmp_path):
    """Held-out articles leave every split (by id and by text); training labels override bootstrap ones."""
    from news_signals.core.taxonomy import CATEGORIES, confidence_column, human_column, score_column
    from news_signals.core.text import normalise_title
    from news_signals.labels.split import is_heldout
    from news_signals.labels.store import LabelRow, LabelStore, text_article_id
    from news_signals.retrain.snapshot import build_snapshot

    storage = Storage(str(tmp_path / "home"))
    write_daily_partitions(storage)
    parts = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in storage.partition_dates())
    parts = parts.drop_duplicates("title")
    before = build_snapshot(params(), storage)
    train_part = parts[~parts["article_id"].map(is_heldout)].head(40)
    held_part = parts[parts["article_id"].map(is_heldout)].head(30)
    # the human says crime=theft on 40 training articles and leaves everything but crime unknown
    rows = [LabelRow(r.article_id, r.title, {"crime": "theft"}, annotator="ann") for r in train_part.itertuples()]
    # 30 held-out articles (their partition ids), plus one held-out row known only by its text
    rows += [LabelRow(r.article_id, r.title, {"crime": ""}, annotator="ann") for r in held_part.itertuples()]
    used = set(held_part["title"]) | set(train_part["title"])
    syndicated = next(t for t in parts["title"] if is_heldout(text_article_id(t)) and t not in used)
    rows.append(LabelRow(text_article_id(syndicated), syndicated, {"crime": ""}, annotator="ann"))
    # and one training-part article that is in no partition: it joins the snapshot as an extra row
    extra = next(
        t for t in (f"Thieves took bicycle number {i} from the central station, police said" for i in range(50))
        if not is_heldout(text_article_id(t))
    )
    rows.append(LabelRow(text_article_id(extra), extra, {"crime": "theft", "transportation": ""}, annotator="ann"))
    LabelStore(storage).import_rows(rows, source="test")

    after = build_snapshot(params(max_per_class=3), storage)  # a tight cap: human rows must survive it
    assert after.id != before.id  # new labels, new snapshot
    m = after.manifest["human_labels"]
    assert m["heldout_excluded"] == 31 and m["matched_rows"] == 41 and after.manifest["stats"]["human_extra_rows"] == 1
    splits = pd.concat(read(after, s) for s in ("train", "val", "test"))
    norm = set(splits["text"].map(normalise_title))
    assert not set(held_part["article_id"]) & set(splits["article_id"])
    assert normalise_title(syndicated) not in norm and not {normalise_title(t) for t in held_part["title"]} & norm
    human = splits[splits["human_categories"] > 0].set_index("article_id")
    assert len(human) == 41 and set(train_part["article_id"]) <= set(human.index)
    assert (human[tag_column("crime")] == "theft").all() and (human[score_column("crime")] < 0).all()
    assert (human[confidence_column("crime")] == 4.0).all()  # human_weight
    # which label is a human's is written per category, and the trainer's reader keeps the human weight
    assert human[human_column("crime")].all() and not human.loc[train_part["article_id"], human_column("sports")].any()
    assert not splits[splits["human_categories"] == 0][[human_column(c) for c in CATEGORIES]].to_numpy().any()
    from news_signals.model.snapshot_io import read_split

    read_back = pd.concat(read_split(after.path, s) for s in ("train", "val", "test")).set_index("article_id")
    assert (read_back.loc[human.index, confidence_column("crime")] == 4.0).all()  # not clipped to 1
    assert read_back.loc[human.index, human_column("crime")].all()
    kw = parts.set_index("article_id").loc[train_part["article_id"]]
    # unknown categories keep the bootstrap label, at half its confidence
    assert (human.loc[train_part["article_id"], tag_column("sports")] == kw[tag_column("sports")]).all()
    assert (human.loc[train_part["article_id"], confidence_column("sports")] <= 0.5).all()
    assert sum(m["rows_per_split"].values()) == 41
    assert m["rows_per_split"]["test"] == 0  # test measures agreement with the bootstrap labels: human rows serve in val
    assert not (read(after, "test")["human_categories"] > 0).any()


def test_calibration_rows_reach_val_only_and_every_other_human_row_trains(tmp_path):
    """The calibration part sets the thresholds (val), never the weights; active-learning rows train."""
    from news_signals.labels.split import part_of
    from news_signals.labels.store import LabelRow, LabelStore, text_article_id
    from news_signals.retrain.snapshot import build_snapshot

    storage = Storage(str(tmp_path / "home"))
    write_daily_partitions(storage)
    parts = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in storage.partition_dates())
    parts = parts.drop_duplicates("title")
    side = parts["article_id"].map(part_of)
    calibration, training = parts[side == "calibration"].head(25), parts[side == "training"].head(60)
    rows = [LabelRow(r.article_id, r.title, {"crime": "theft"}, annotator="ann") for r in calibration.itertuples()]
    rows += [LabelRow(r.article_id, r.title, {"crime": ""}, annotator="ann") for r in training.itertuples()]
    # a calibration article in no partition joins the snapshot as an extra row, in val
    extra = next(
        t for t in (f"Thieves took scooter number {i} from the harbour, police said" for i in range(200))
        if part_of(text_article_id(t)) == "calibration"
    )
    rows.append(LabelRow(text_article_id(extra), extra, {"crime": "theft"}, annotator="ann"))
    LabelStore(storage).import_rows(rows, source="test")

    snap = build_snapshot(params(), storage)
    human = {s: read(snap, s).query("human_categories > 0") for s in ("train", "val", "test")}
    assert set(human["val"]["article_id"]) == set(calibration["article_id"]) | {text_article_id(extra)}
    assert set(human["train"]["article_id"]) == set(training["article_id"])
    assert human["test"].empty
    assert snap.manifest["human_labels"]["rows_per_split"] == {"train": 60, "val": 26, "test": 0}
    # no article is in two splits after the routing
    ids = pd.concat(read(snap, s)["article_id"] for s in ("train", "val", "test"))
    assert ids.is_unique


def test_one_human_weight_default_everywhere():
    from news_signals.retrain.human_labels import DEFAULT_HUMAN_WEIGHT
    from news_signals.retrain.pipeline import RetrainParams
    from news_signals.retrain.snapshot import SnapshotParams

    assert SnapshotParams(end_date="2026-11-30").human_weight == DEFAULT_HUMAN_WEIGHT > 1.0
    assert RetrainParams().human_weight == DEFAULT_HUMAN_WEIGHT
    dag_file = (Path(__file__).resolve().parents[1] / "dags" / "monthly_retrain.py").read_text()
    assert f'"human_weight": Param(\n            {DEFAULT_HUMAN_WEIGHT},' in dag_file
