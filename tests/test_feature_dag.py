"""signal_feature_pipeline end to end with real dag.test(): promoted model, fallback, failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _feature_helpers import LogCapture, register_and_promote, tiny_artifact, write_partition
from news_signals.core.config import Settings
from news_signals.core.storage import Storage
from news_signals.features.store import HEADLINE_SPEC, VIBE_SPEC
from news_signals.features.store.local import LocalFeatureStore

ROOT = Path(__file__).resolve().parents[1]
DAG_FILE = ROOT / "dags" / "signal_feature_pipeline.py"
DAY = "2024-05-01"
HEAVY = ("torch", "transformers", "pandas", "great_expectations", "hopsworks", "sklearn", "numpy", "gdeltdoc")


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    return bag.dags["signal_feature_pipeline"]


@pytest.fixture()
def storage(ns_home, monkeypatch) -> Storage:
    monkeypatch.delenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", raising=False)
    return Storage(str(ns_home))


def _run(dag, **conf):
    from airflow.utils.state import DagRunState

    dr = dag.test(run_conf={"date": DAY, **conf})
    states = {ti.task_id: ti.state for ti in dr.get_task_instances()}
    return dr.state == DagRunState.SUCCESS, states


def test_dag_wiring(dag):
    assert [t.task_id for t in dag.topological_sort()] == [
        "resolve_model",
        "classify_partition",
        "write_headline_classifications",
        "write_vibe_vectors",
    ]
    assert dag.doc_md and "fallback" in dag.doc_md.lower()
    assert set(dag.params.keys()) == {"date", "classifier", "require_model"}
    assert dag.params["classifier"] == "auto" and dag.params["require_model"] is False
    assets = list(dag.timetable.asset_condition.objects)  # Airflow 3.3: AssetAll(...) of the scheduling assets
    assert [asset.name for asset in assets] == ["news_signals_daily_articles"]
    assert all(t.execution_timeout is not None for t in dag.tasks)


def test_dag_file_has_no_heavy_top_level_imports():
    code = (
        "import sys, airflow.sdk; before = set(sys.modules); "
        f"import runpy; runpy.run_path({str(DAG_FILE)!r}); "
        f"print(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {HEAVY!r}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_end_to_end_without_model_falls_back(airflow_db, dag, storage):
    write_partition(storage, DAY)
    with LogCapture("news_signals.features.pipeline") as logs:
        ok, states = _run(dag)
    assert ok, states
    rows = LocalFeatureStore(storage).read(HEADLINE_SPEC)
    assert len(rows) == 8 and set(rows["classifier"]) == {"keywords"}
    assert len(LocalFeatureStore(storage).read(VIBE_SPEC)) == 3
    assert any("falling back to keywords" in m for m in logs.warnings())
    assert not storage.fs.exists(storage.path("features", "_staging", f"date={DAY}"))


def test_end_to_end_with_promoted_model(airflow_db, dag, storage):
    write_partition(storage, DAY)
    version = register_and_promote(storage, tiny_artifact())
    ok, states = _run(dag)
    assert ok, states
    name = f"model:{Settings().model_name}@{version}"
    assert set(LocalFeatureStore(storage).read(HEADLINE_SPEC)["classifier"]) == {name}
    assert set(LocalFeatureStore(storage).read(VIBE_SPEC)["classifier"]) == {name}


def test_require_model_fails_the_run_and_writes_nothing(airflow_db, dag, storage):
    write_partition(storage, DAY)
    ok, states = _run(dag, require_model=True)
    assert not ok and states["resolve_model"] == "failed"
    assert states["write_headline_classifications"] != "success"
    assert not storage.fs.exists(storage.features_dir(HEADLINE_SPEC.name))


def test_cli_and_dag_write_the_same_feature_rows(airflow_db, dag, storage, tmp_path, monkeypatch, capsys):
    """The features command and the DAG call the same stages: same rows, same classifier, same vibes."""
    import json

    import pandas as pd
    from news_signals.cli import main

    write_partition(storage, DAY)
    version = register_and_promote(storage, tiny_artifact())
    ok, states = _run(dag)
    assert ok, states
    by_dag = {spec.name: LocalFeatureStore(storage).read(spec) for spec in (HEADLINE_SPEC, VIBE_SPEC)}
    storage.fs.rm(storage.path("features"), recursive=True)
    capsys.readouterr()
    assert main(["features", "--date", DAY]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classifier"] == f"model:{Settings().model_name}@{version}" and not summary["fell_back"]
    for spec in (HEADLINE_SPEC, VIBE_SPEC):
        by_cli = LocalFeatureStore(storage).read(spec)
        keys = list(spec.primary_key)
        pd.testing.assert_frame_equal(
            by_cli.sort_values(keys).reset_index(drop=True),
            by_dag[spec.name].sort_values(keys).reset_index(drop=True),
        )
