"""HopsworksFeatureStore against autospecs of the real hsfs classes (no local stand-in of the server here).

Runs inside the isolated Hopsworks venv (``.venv-hopsworks/bin/python -m pytest tests/hopsworks_env``),
where hsfs is installed; the main suite runs this folder there (tests/test_hopsworks_isolation.py).
"""

from __future__ import annotations

from datetime import date
from unittest.mock import create_autospec

import pandas as pd
import pytest
from _hs_helpers import headline_rows
from news_signals.core.taxonomy import CATEGORIES, tag_column
from news_signals.features.store.base import (
    HEADLINE_SPEC,
    VIBE_SPEC,
    FeatureValidationError,
    count_column,
    intensity_column,
)
from news_signals.features.store.hopsworks import HopsworksFeatureStore


@pytest.fixture()
def rows() -> pd.DataFrame:
    return headline_rows(8)


def vibe_rows() -> pd.DataFrame:
    row = {"sourcecountry": "SW", "date": date.fromisoformat("2024-05-01"), "n_articles": 8, "classifier": "keywords"}
    for c in CATEGORIES:
        row.update({intensity_column(c): 0.0, tag_column(c): "", count_column(c): 0})
    return pd.DataFrame([row])


def _hsfs_doubles():
    from hsfs.feature_group import FeatureGroup
    from hsfs.feature_store import FeatureStore

    fs = create_autospec(FeatureStore, instance=True)
    fg = create_autospec(FeatureGroup, instance=True)
    fs.get_or_create_feature_group.return_value = fg
    fg.get_expectation_suite.return_value = None
    fg.insert.return_value = (None, None)
    return fs, fg


def test_hopsworks_upsert_creates_group_with_keys_and_strict_suite(rows):
    from hsfs.expectation_suite import ExpectationSuite

    fs, fg = _hsfs_doubles()
    store = HopsworksFeatureStore(fs)
    assert store.upsert(HEADLINE_SPEC, rows) == 8
    store.upsert(HEADLINE_SPEC, rows)

    fs.get_or_create_feature_group.assert_called_once()  # cached per group
    kwargs = fs.get_or_create_feature_group.call_args.kwargs
    assert kwargs["name"] == "headline_classifications" and kwargs["version"] == 1
    assert kwargs["primary_key"] == ["article_id"] and kwargs["event_time"] == "seendate"
    assert kwargs["online_enabled"] is True
    suite = kwargs["expectation_suite"]
    assert isinstance(suite, ExpectationSuite) and suite.validation_ingestion_policy == "STRICT"
    types = {e.expectation_type for e in suite.expectations}
    assert {"expect_column_values_to_be_between", "expect_column_values_to_be_in_set"} <= types

    fg.save_expectation_suite.assert_called_once()
    assert fg.insert.call_count == 2
    inserted = fg.insert.call_args.args[0]
    assert fg.insert.call_args.kwargs["operation"] == "upsert"
    assert list(inserted.columns) == list(HEADLINE_SPEC.columns) and len(inserted) == 8


def test_hopsworks_rejection_is_a_clear_error(rows):
    from hopsworks_common.client.exceptions import DataValidationException

    fs, fg = _hsfs_doubles()
    fg.insert.side_effect = DataValidationException("expect_column_values_to_be_between failed")
    with pytest.raises(FeatureValidationError, match="STRICT"):
        HopsworksFeatureStore(fs).upsert(HEADLINE_SPEC, rows)


def test_hopsworks_bad_rows_never_reach_the_server(rows):
    fs, fg = _hsfs_doubles()
    bad = rows.copy()
    bad.loc[0, "article_id"] = "not-an-id"
    with pytest.raises(FeatureValidationError, match="article_id"):
        HopsworksFeatureStore(fs).upsert(HEADLINE_SPEC, bad)
    fg.insert.assert_not_called()


def test_from_connection_logs_in_with_key_and_project(monkeypatch, rows):
    import hopsworks
    from hopsworks.project import Project

    fs, fg = _hsfs_doubles()
    project = create_autospec(Project, instance=True)
    project.get_feature_store.return_value = fs
    login = create_autospec(hopsworks.login, return_value=project)
    monkeypatch.setattr(hopsworks, "login", login)
    monkeypatch.setenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", "hopsworks://:s3cret@hops.example:443/news")

    store = HopsworksFeatureStore.from_connection()
    kwargs = login.call_args.kwargs
    assert kwargs["api_key_value"] == "s3cret" and kwargs["project"] == "news"
    assert kwargs["host"] == "hops.example"
    store.upsert(VIBE_SPEC, vibe_rows())
    fkw = fs.get_or_create_feature_group.call_args.kwargs
    assert fkw["name"] == "vibe_vectors" and fkw["primary_key"] == ["sourcecountry", "date"]
    assert fkw["event_time"] == "date"
    assert "s3cret" not in repr(store.describe())
