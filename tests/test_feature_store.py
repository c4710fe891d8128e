"""Feature store: local upserts by primary key (idempotent, atomic, validated) and the Hopsworks path."""

from __future__ import annotations

import pandas as pd
import pytest
from _feature_helpers import TinyClassifier, make_partition
from news_signals.core.storage import Storage
from news_signals.features.pipeline import classify_rows, vibe_vectors
from news_signals.features.store import (
    HEADLINE_SPEC,
    VIBE_SPEC,
    FeatureValidationError,
    get_feature_store,
)
from news_signals.features.store.local import LocalFeatureStore

DAY = "2024-05-01"


@pytest.fixture()
def rows() -> pd.DataFrame:
    return classify_rows(make_partition(DAY, 8), TinyClassifier())


@pytest.fixture()
def store(ns_home) -> LocalFeatureStore:
    return LocalFeatureStore(Storage(str(ns_home)))


def test_upsert_is_idempotent_and_replaces_by_primary_key(store, rows):
    assert store.upsert(HEADLINE_SPEC, rows) == 8
    assert store.upsert(HEADLINE_SPEC, rows) == 8  # a re-run
    stored = store.read(HEADLINE_SPEC)
    assert len(stored) == 8 and stored["article_id"].is_unique

    changed = rows.iloc[:3].copy()
    changed["classifier"] = "model:tiny@2"
    store.upsert(HEADLINE_SPEC, changed)
    stored = store.read(HEADLINE_SPEC).set_index("article_id")
    assert len(stored) == 8
    assert (stored.loc[changed["article_id"], "classifier"] == "model:tiny@2").all()
    assert (stored.drop(changed["article_id"])["classifier"] == "model:tiny@1").all()
    assert list(store.read(HEADLINE_SPEC).columns) == list(HEADLINE_SPEC.columns)


def test_new_day_adds_rows(store, rows):
    store.upsert(HEADLINE_SPEC, rows)
    store.upsert(HEADLINE_SPEC, classify_rows(make_partition("2024-05-02", 5), TinyClassifier()))
    assert len(store.read(HEADLINE_SPEC)) == 13


def test_bad_rows_are_rejected_and_nothing_changes(store, rows):
    store.upsert(HEADLINE_SPEC, rows)
    target = store.group_file(HEADLINE_SPEC)
    before = store.storage.fs.cat_file(target)

    bad = rows.copy()
    bad.loc[0, "crime_score"] = 1.7
    bad.loc[1, "crime_tag"] = "jaywalking"
    with pytest.raises(FeatureValidationError) as err:
        store.upsert(HEADLINE_SPEC, bad)
    assert "crime_score" in str(err.value) and "crime_tag" in str(err.value)
    assert store.storage.fs.cat_file(target) == before
    leftovers = [
        p for p in store.storage.fs.ls(store.storage.features_dir(HEADLINE_SPEC.name)) if ".tmp-" in p
    ]
    assert leftovers == []


def test_missing_column_is_named(store, rows):
    with pytest.raises(ValueError, match="classifier"):
        store.upsert(HEADLINE_SPEC, rows.drop(columns=["classifier"]))


def test_vibe_group_upserts_by_country_and_date(store, rows):
    vibes = vibe_vectors(rows, DAY)
    assert store.upsert(VIBE_SPEC, vibes) == 3
    assert store.upsert(VIBE_SPEC, vibes) == 3
    stored = store.read(VIBE_SPEC)
    assert sorted(stored["sourcecountry"]) == ["Finland", "Norway", "Sweden"]
    assert len(stored) == 3


def test_vibe_rows_from_a_model_and_keywords_name_both(store, rows):
    """English rows by the model, Swedish rows by keywords: the day's vibe row names both."""
    mixed = rows.copy()
    mixed["classifier"] = ["model:news_signals@3" if i % 2 else "keywords" for i in range(len(mixed))]
    vibes = vibe_vectors(mixed, DAY)
    assert "keywords+model:news_signals@3" in set(vibes["classifier"])
    assert store.upsert(VIBE_SPEC, vibes) == len(vibes)
    bad = vibes.assign(classifier="keywords+nonsense")
    with pytest.raises(FeatureValidationError, match="classifier"):
        store.upsert(VIBE_SPEC, bad)


def test_get_feature_store_defaults_to_local(ns_home, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", raising=False)
    assert isinstance(get_feature_store(), LocalFeatureStore)
    with pytest.raises(ValueError, match="hopsworks_default"):
        get_feature_store(kind="hopsworks")
