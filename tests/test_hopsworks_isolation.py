"""The Hopsworks boundary: the main environment (Airflow 3.3) has no hopsworks; every registry and feature-store
call crosses to the isolated venv's interpreter, where the real HopsworksRegistry / HopsworksFeatureStore run
against a stateful stand-in project built from autospecs of the real hsml/hsfs classes
(tests/hopsworks_env/hopsworks_standin.py). Nothing is skipped: without the venv these tests fail.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from hopsworks_env._hs_helpers import fake_artifact  # one artifact shape for both venvs' tests
from news_signals.core.hopsworks import HopsworksConfigError
from news_signals.features.store import HEADLINE_SPEC, VIBE_SPEC, FeatureValidationError, get_feature_store
from news_signals.isolated.proxy import (
    HopsworksFeatureStoreProxy,
    HopsworksRegistryProxy,
    hopsworks_python,
    worker_versions,
)
from news_signals.registry import RegistryError, get_registry

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-api-key-never-in-argv"
CONN = f"hopsworks://:{SECRET}@hops.example:443/news"


@pytest.fixture()
def standin(monkeypatch, ns_home):
    """The worker (a real subprocess on .venv-hopsworks) logs in to the stand-in project, not to a server."""
    monkeypatch.setenv("NEWS_SIGNALS_HOPSWORKS_STANDIN", "hopsworks_standin:login")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT / "tests" / "hopsworks_env"), os.environ["PYTHONPATH"]]))
    monkeypatch.setenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", CONN)
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "auto")
    monkeypatch.setenv("NEWS_SIGNALS_FEATURE_STORE", "auto")
    return ns_home




def _standin_calls(client) -> dict:
    return client.call("standin", action="calls")


def test_main_environment_has_no_hopsworks_and_the_venv_has_5_2_1():
    import importlib.util

    import sqlalchemy

    assert importlib.util.find_spec("hopsworks") is None and importlib.util.find_spec("hsfs") is None
    assert tuple(int(x) for x in sqlalchemy.__version__.split(".")[:3]) >= (2, 0, 48)
    versions = worker_versions()
    assert versions["hopsworks"] == "5.2.1" and versions["SQLAlchemy"] == "2.0.41"
    assert Path(versions["executable"]).parent == hopsworks_python().parent


def test_in_venv_autospec_suite_passes():
    """tests/hopsworks_env (autospecs of the real hsml/hsfs/hopsworks signatures) with the venv's python."""
    proc = subprocess.run([str(hopsworks_python()), "-m", "pytest", "tests/hopsworks_env", "-q", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    passed = re.search(r"(\d+) passed", proc.stdout)
    assert passed and int(passed.group(1)) >= 10, tail
    assert "failed" not in proc.stdout.splitlines()[-1] and "skipped" not in proc.stdout.splitlines()[-1]


def test_registry_runs_through_the_worker(standin, tmp_path, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    reg = get_registry("m")
    assert isinstance(reg, HopsworksRegistryProxy)
    try:
        assert reg.history() == [] and reg.production() is None
        v1 = reg.register(fake_artifact(tmp_path / "a", b"one"), {"macro_f1": 0.6, "per_category": {"sports": {"f1": 0.4}}},
                          {"decision": "promote"}, "first")
        v2 = reg.register(fake_artifact(tmp_path / "b", b"two"), {"macro_f1": 0.7}, None, "second")
        assert (v1.version, v2.version) == (1, 2) and len(v1.fingerprint) == 64
        assert reg.register(fake_artifact(tmp_path / "c", b"one"), {"macro_f1": 0.1}).version == 1  # same files
        reg.promote(1, "gate", by="promotion gate")
        reg.promote(2, "better", by="promotion gate")
        back = reg.rollback(1, "v2 regressed", "ada")
        assert back.version == 1 and back.is_production and reg.production().version == 1
        assert [(p["action"], p["version"], p["previous"]) for p in reg.promotions()] == [
            ("promote", 1, None), ("promote", 2, 1), ("rollback", 1, 2)]
        assert [(v.version, v.is_production) for v in reg.history()] == [(1, True), (2, False)]
        assert reg.get(2).description == "second" and reg.best("macro_f1").version == 2

        path = reg.download(1, dest=tmp_path / "dl")
        assert (path / "model.safetensors").read_bytes() == b"one"
        assert json.loads((path / "metrics.json").read_text())["macro_f1"] == 0.6
        assert reg.download(1, dest=tmp_path / "dl") == path  # verified cache, not downloaded again

        calls = _standin_calls(reg.client)
        assert calls["download"] == [1]
        assert [c["version"] for c in calls["create_model"]] == [1, 2]
        assert calls["create_model"][0]["metrics"] == {"macro_f1": 0.6, "f1_sports": 0.4}
        assert calls["delete_tag"] == [[1, "production"], [2, "production"]]
        # the key arrived on the worker's stdin: the stand-in saw it (as its sha256 here), ...
        assert calls["login"]["api_key_value"] == hashlib.sha256(SECRET.encode()).hexdigest()
        assert calls["login"]["project"] == "news" and calls["login"]["host"] == "hops.example"
        # ... but never on its command line, in its environment or in a log line
        pid = reg.client.pid
        assert SECRET.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert SECRET.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
        captured = capfd.readouterr()
        logs = caplog.text + captured.out + captured.err  # Airflow's structlog may route records past caplog
        assert "[hopsworks worker]" in logs and "registered m@2" in logs
        assert SECRET not in logs
    finally:
        reg.close()


def test_registry_errors_come_back_as_their_own_types(standin, tmp_path):
    reg = get_registry("m")
    try:
        with pytest.raises(RegistryError, match="no model m version 7"):
            reg.get(7)
        with pytest.raises(ValueError, match="needs a reason"):
            reg.promote(1, " ")
        reg.client.call("standin", action="fault", method="save", error="RuntimeError:upload interrupted")
        with pytest.raises(RegistryError, match="upload interrupted"):
            reg.register(fake_artifact(tmp_path / "a"), {})
        assert reg.history() == []  # nothing half-registered
        reg.register(fake_artifact(tmp_path / "a"), {})
        reg.client.call("standin", action="fault", method="add_tag", error="RuntimeError:REST 500")
        with pytest.raises(RuntimeError, match="REST 500"):
            reg.promote(1, "better")
        assert reg.production() is None
    finally:
        reg.close()


def test_one_worker_per_proxy_keeps_state_and_a_new_proxy_starts_fresh(standin, tmp_path):
    a, b = get_registry("m"), get_registry("m")
    try:
        a.register(fake_artifact(tmp_path / "a"), {})
        first = a.client.pid
        assert [v.version for v in a.history()] == [1] and a.client.pid == first  # the same worker, its state kept
        assert b.client.pid is None  # a proxy starts its worker at its first call
        assert b.history() == []  # its own worker, its own stand-in project
        assert b.client.pid not in (None, first)
    finally:
        a.close()
        b.close()


def _headline_rows() -> pd.DataFrame:
    from _feature_helpers import TinyClassifier, make_partition
    from news_signals.features.pipeline import classify_rows

    return classify_rows(make_partition("2024-05-01", 8), TinyClassifier())


def test_feature_store_runs_through_the_worker_with_parquet(standin):
    from news_signals.features.pipeline import vibe_vectors

    store = get_feature_store()
    assert isinstance(store, HopsworksFeatureStoreProxy)
    rows = _headline_rows()
    try:
        assert store.upsert(HEADLINE_SPEC, rows) == 8
        changed = rows.copy()
        changed.loc[0, "title"] = "Storm closes the E4 (updated)"
        store.upsert(HEADLINE_SPEC, changed)
        back = store.read(HEADLINE_SPEC)
        assert len(back) == 8 and list(back.columns) == list(HEADLINE_SPEC.columns)
        assert back.set_index("article_id").loc[rows.loc[0, "article_id"], "title"] == "Storm closes the E4 (updated)"
        pd.testing.assert_series_equal(back["seendate"], HEADLINE_SPEC.conform(changed)["seendate"],
                                       check_names=False)
        assert store.upsert(VIBE_SPEC, vibe_vectors(rows, "2024-05-01")) >= 1
        assert store.describe() == "hopsworks (news_featurestore)"

        calls = _standin_calls(store.client)
        groups = [c for c in calls["get_or_create_feature_group"]]
        assert [g["name"] for g in groups] == ["headline_classifications", "vibe_vectors"]  # cached per group
        head = groups[0]
        assert head["primary_key"] == ["article_id"] and head["event_time"] == "seendate" and head["online_enabled"]
        assert head["suite_type"] == "ExpectationSuite" and head["suite_policy"] == "STRICT"
        assert "expect_column_values_to_be_in_set" in head["suite_expectations"]
        assert calls["save_expectation_suite"] == [["headline_classifications", "strict"], ["vibe_vectors", "strict"]]
        assert [(c["group"], c["rows"], c["operation"]) for c in calls["insert"]][:2] == [
            ("headline_classifications", 8, "upsert"), ("headline_classifications", 8, "upsert")]
        assert not list(Path(store._tmp).iterdir())  # the parquet hand-over files are gone
    finally:
        store.close()


def test_feature_store_errors_and_bad_rows(standin):
    store = get_feature_store()
    rows = _headline_rows()
    try:
        bad = rows.copy()
        bad.loc[0, "article_id"] = "not-an-id"
        with pytest.raises(FeatureValidationError, match="article_id"):
            store.upsert(HEADLINE_SPEC, bad)
        assert store.client.pid is None  # validated here: the bad batch never reached the worker
        store.client.call("standin", action="fault", method="insert",
                          error="DataValidationException:expect_column_values_to_be_between failed")
        with pytest.raises(FeatureValidationError, match="STRICT"):
            store.upsert(HEADLINE_SPEC, rows)
        assert store.read(HEADLINE_SPEC).empty
    finally:
        store.close()


def test_missing_connection_or_interpreter_is_a_clear_error(ns_home, monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", raising=False)
    with pytest.raises(HopsworksConfigError, match="hopsworks_default"):
        get_feature_store(kind="hopsworks")
    monkeypatch.setenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", CONN)
    monkeypatch.setenv("NEWS_SIGNALS_HOPSWORKS_PYTHON", str(tmp_path / "nowhere" / "python"))
    with pytest.raises(HopsworksConfigError, match=r"make hopsworks-venv"):
        get_registry("m").history()
