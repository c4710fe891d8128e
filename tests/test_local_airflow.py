"""tools/local_airflow reads progress through Airflow's REST API, tested against the real api-server app.

The app is Airflow's own FastAPI application (``create_app``, SimpleAuthManager, the session's
SQLite metadata DB) driven through FastAPI's TestClient: the same routes, auth and serialisation as
``airflow api-server``, without a 2-core machine spending a minute starting one.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tools.local_airflow import AirflowAPI

DAG_ID = "gdelt_daily_ingest"


@pytest.fixture(scope="module")
def api_client(airflow_db):
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from fastapi.testclient import TestClient

    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[1] / "dags"))
    sync_bag_to_db(bag, "dags-folder", None)
    with TestClient(create_app("core")) as client:
        yield client


@pytest.fixture(scope="module")
def run_id(api_client):
    """One run of the daily DAG with two task states, created through Airflow's ORM."""
    from airflow.models.dag import DagModel
    from airflow.models.serialized_dag import SerializedDagModel
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    day = datetime(2024, 5, 1, tzinfo=UTC)
    with create_session() as session:
        assert session.get(DagModel, DAG_ID) is not None
        dag = SerializedDagModel.get_dag(DAG_ID, session=session)
        run = dag.create_dagrun(
            run_id="manual__rest_test", logical_date=day, data_interval=(day, day), run_after=day,
            run_type=DagRunType.MANUAL, triggered_by=DagRunTriggeredByType.TEST, state=DagRunState.RUNNING,
            conf={"date": "2024-05-01"}, session=session,
        )
        version = run.created_dag_version_id
        for task_id, state in (("fetch", TaskInstanceState.SUCCESS), ("label", TaskInstanceState.RUNNING),
                               ("publish", None)):
            session.add(TaskInstance(dag.get_task(task_id), run_id=run.run_id, state=state, dag_version_id=version))
        session.flush()
    return "manual__rest_test"


def _password() -> str:
    from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

    return json.loads(Path(SimpleAuthManager.get_generated_password_file()).read_text())["admin"]


def test_reads_dags_runs_task_states_and_backfills(api_client, run_id):
    api = AirflowAPI("", _password, http=api_client)
    assert {"gdelt_daily_ingest", "monthly_retrain", "signal_feature_pipeline"} <= api.dag_ids()
    assert api.import_errors() == []
    runs = {r["run_id"]: r for r in api.runs(DAG_ID)}  # other tests' dag.test() runs share this DB
    assert run_id in runs
    run = runs[run_id]
    assert run["state"] == "running" and run["logical_date"][:10] == "2024-05-01"
    assert run["conf"] == {"date": "2024-05-01"} and run["run_type"] == "manual"
    states = api.task_states(DAG_ID, run_id)
    assert states["fetch"] == "success" and states["label"] == "running" and states["publish"] is None
    assert api.has_backfill(DAG_ID) is False


def test_pages_through_more_items_than_one_page(api_client, monkeypatch):
    import tools.local_airflow as local_airflow

    monkeypatch.setattr(local_airflow, "PAGE", 1)
    api = AirflowAPI("", _password, http=api_client)
    assert len(api.dag_ids()) >= 3  # three requests of one DAG each


def test_an_expired_token_is_renewed_once(api_client):
    api = AirflowAPI("", _password, http=api_client)
    api._token = "not-a-token"
    assert DAG_ID in api.dag_ids()
    assert api._token != "not-a-token"


def test_a_wrong_password_says_so(api_client):
    api = AirflowAPI("", lambda: "wrong", http=api_client)
    with pytest.raises(RuntimeError, match="refused the login of 'admin'"):
        api.dag_ids()


def test_no_sql_left_in_the_tool():
    source = (Path(__file__).resolve().parents[1] / "tools" / "local_airflow.py").read_text()
    assert "sqlite3" not in source and "SELECT " not in source
    assert os.environ["AIRFLOW_HOME"]  # the session's Airflow, not a developer's


def test_import_errors_name_the_file_and_the_trace(api_client):
    from airflow.models.errors import ParseImportError
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(ParseImportError(filename="broken.py", bundle_name="dags-folder", stacktrace="SyntaxError: boom",
                                     timestamp=datetime.now(UTC)))
    try:
        errors = AirflowAPI("", _password, http=api_client).import_errors()
        assert ("broken.py", "SyntaxError: boom") in errors
    finally:
        with create_session() as session:
            session.query(ParseImportError).filter_by(filename="broken.py").delete()
