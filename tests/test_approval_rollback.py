"""Approval and rollback.

End to end with ``dag.test()`` on the tiny-model setup of test_retrain_dag.py: with
``require_approval`` a PROMOTE waits in ``approve_promotion`` (the standard provider's HITL
operator) and a person answers through Airflow's real REST API (``PATCH …/hitlDetails``, logged in
with the SimpleAuthManager): Approve → production moves, recorded with the approver; Reject or no
answer before the timeout → production stays and the candidate is registered only. ``rollback_to``
moves production back from the UI; ``models rollback`` does it from the CLI. The registry-level
rollback runs on local files here; on Hopsworks in tests/hopsworks_env/test_registry_autospec.py (autospecs of
the real hsml classes, in the isolated venv) and through the worker in tests/test_hopsworks_isolation.py.

In Airflow 3.3 the HITL operator parks its task in AWAITING_INPUT (no trigger, no triggerer): an answer
through the REST API resumes it, inside dag.test() too; the response timeout is applied by the scheduler's
sweep (``SchedulerJobRunner.check_awaiting_input_timeouts``), which dag.test() does not run, so the
no-answer test runs that sweep beside it (``TimeoutSweeper``). Airflow 3.1.8 needed the triggerer's two
HITL requests added to dag.test()'s in-process supervisor instead; that workaround is gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from news_signals.core.storage import Storage
from news_signals.registry import LocalRegistry, RegistryError, get_registry
from test_registry import fake_artifact
from test_retrain_dag import END, LOGICAL, conf, load_dag, states


# ---- registry level ------------------------------------------------------------------------------
def test_local_rollback_records_who_when_why_and_refuses_bad_targets(tmp_path):
    reg = LocalRegistry("m", Storage(str(tmp_path / "home")))
    for i in (1, 2, 3):
        reg.register(fake_artifact(tmp_path / str(i), f"w{i}".encode()), {})
    with pytest.raises(RegistryError, match="no production model"):
        reg.rollback(1, "bad", "ada")
    reg.promote(1, "first", by="promotion gate")
    reg.promote(2, "better", by="promotion gate")
    with pytest.raises(RegistryError, match=r"m@3 was never in production \(versions that were: \[1, 2\]\)"):
        reg.rollback(3, "not a rollback", "ada")
    with pytest.raises(RegistryError, match="already production"):
        reg.rollback(2, "noop", "ada")
    with pytest.raises(ValueError, match="needs --reason"):
        reg.rollback(1, " ", "ada")
    with pytest.raises(ValueError, match="needs --by"):
        reg.rollback(1, "why", "")
    assert reg.production().version == 2  # every refusal left production alone

    mv = reg.rollback(1, "v2 mislabels storms as sports", "ada")
    assert mv.version == 1 and reg.production().version == 1
    last = reg.promotions()[-1]
    assert (last["action"], last["version"], last["previous"], last["by"], last["reason"]) == (
        "rollback", 1, 2, "ada", "v2 mislabels storms as sports"
    )
    assert last["promoted_at"] >= reg.promotions()[-2]["promoted_at"]
    assert [p["action"] for p in reg.promotions()] == ["promote", "promote", "rollback"]


def test_cli_rollback_and_history(tmp_path):
    home = tmp_path / "home"
    reg = LocalRegistry("news_signals", Storage(str(home)))
    for i in (1, 2):
        reg.register(fake_artifact(tmp_path / str(i), f"w{i}".encode()), {})
        reg.promote(i, f"gate {i}", by="promotion gate")
    env_vars = {**os.environ, "NEWS_SIGNALS_HOME": str(home), "NEWS_SIGNALS_REGISTRY": "local", "USER": "oncall-olga"}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "news_signals", "models", *args], env=env_vars,
                              capture_output=True, text=True, timeout=120)

    never = cli("rollback", "--to", "7", "--reason", "x")
    assert never.returncode == 2 and "never in production" in never.stderr and "Traceback" not in never.stderr
    missing = cli("rollback", "--reason", "x")
    assert missing.returncode == 2 and "needs --to" in missing.stderr
    done = cli("rollback", "--to", "1", "--reason", "v2 floods the weather_wet signal")
    assert done.returncode == 0, done.stderr
    assert reg.production().version == 1
    moves = json.loads(cli("history", "--json").stdout)
    assert moves[-1] | {"promoted_at": None} == {
        "version": 1, "previous": 2, "action": "rollback", "by": "oncall-olga",
        "reason": "v2 floods the weather_wet signal", "promoted_at": None,
    }
    table = cli("history").stdout
    assert "rollback" in table and "oncall-olga" in table


# ---- end to end with dag.test() ------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_db):
    """Four daily partitions and a tiny base model built from their texts, in a home of this module's own."""
    from _retrain_helpers import retrain_home

    yield from retrain_home(tmp_path_factory.mktemp("approval"), END, threads=1)


class TimeoutSweeper(threading.Thread):
    """The scheduler's part of a HITL timeout, which dag.test() has no scheduler for: Airflow 3.3's own
    ``SchedulerJobRunner.check_awaiting_input_timeouts`` on a loop until the run ends."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.stop, self.error = threading.Event(), None

    def run(self) -> None:
        from airflow.jobs.job import Job
        from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

        try:
            runner = SchedulerJobRunner(job=Job(), num_runs=1)
            while not self.stop.wait(0.5):
                runner.check_awaiting_input_timeouts()
        except Exception as exc:  # surfaced by the test
            self.error = exc


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory, airflow_db):
    """Airflow's real api-server app (TestClient) and a login for the approver "ada"."""
    from fastapi.testclient import TestClient

    passwords = tmp_path_factory.mktemp("auth") / "passwords.json"
    passwords.write_text(json.dumps({"ada": "admin-pw"}))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIRFLOW__CORE__AUTH_MANAGER",
                  "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "ada:admin")
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
        mp.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
        mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "approval-test-" + "0123456789abcdef" * 4)
        from airflow.api_fastapi import app as api_app

        client = TestClient(api_app.create_app(apps="core"))
        token = client.post("/auth/token", json={"username": "ada", "password": "admin-pw"}).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        try:
            yield client
        finally:
            api_app.purge_cached_app()


class Approver(threading.Thread):
    """Answers the first waiting approval request of monthly_retrain through the REST API, as the UI would."""

    def __init__(self, client, choice: str) -> None:
        super().__init__(daemon=True)
        self.client, self.choice, self.answered, self.error = client, choice, None, None

    def run(self) -> None:
        deadline = time.monotonic() + 600
        try:
            while time.monotonic() < deadline:
                resp = self.client.get("/api/v2/dags/monthly_retrain/dagRuns/~/hitlDetails",
                                       params={"response_received": False})
                waiting = [d for d in resp.json().get("hitl_details", [])
                           if d["task_instance"]["task_id"] == "approve_promotion"] if resp.status_code == 200 else []
                if waiting:
                    d = waiting[0]
                    run_id = d["task_instance"]["dag_run_id"]
                    self.answered = self.client.patch(
                        f"/api/v2/dags/monthly_retrain/dagRuns/{run_id}/taskInstances/approve_promotion/-1/hitlDetails",
                        json={"chosen_options": [self.choice], "params_input": {}},
                    )
                    self.body = d["body"]
                    return
                time.sleep(0.5)
        except Exception as exc:  # surfaced by the test
            self.error = exc


def _run(env, approver=None, **kw):
    if approver is not None:
        approver.start()
    dr = load_dag().test(logical_date=LOGICAL, run_conf=conf(env, require_approval=True, **kw))
    if approver is not None:
        approver.join(timeout=30)
        assert approver.error is None, approver.error
    return dr


def test_approve_promotes_and_records_the_approver(env, airflow_api):
    approver = Approver(airflow_api, "Approve")
    dr = _run(env, approver)
    s = states(dr)
    assert str(dr.state) == "success", s
    assert approver.answered is not None and approver.answered.status_code == 200, approver.answered
    assert "macro_f1_floor" in approver.body and "decision: PROMOTE" in approver.body  # the gate table
    assert s["approve_promotion"] == "success"
    assert s["register_and_promote"] == "success" and s["register_only"] == "skipped"
    prod = get_registry().production()
    assert prod is not None and prod.gate["approval"]["approved"] is True and prod.gate["approval"]["by"] == "ada"
    last = get_registry().promotions()[-1]
    assert last["by"] == "ada" and "approved by ada" in last["reason"]


def test_reject_keeps_production_and_registers_the_candidate(env, airflow_api):
    before = get_registry().production()
    assert before is not None
    approver = Approver(airflow_api, "Reject")
    # force_promote: the gate says PROMOTE whatever this 1-epoch candidate scores
    dr = _run(env, approver, seed=5, force_promote=True, reason="test: a promotable candidate")
    s = states(dr)
    assert str(dr.state) == "success", s
    assert s["approve_promotion"] == "success"
    assert s["register_only"] == "success" and s["register_and_promote"] == "skipped"
    registry = get_registry()
    assert registry.production().version == before.version  # production stayed
    newest = max(registry.history(), key=lambda v: v.version)
    assert newest.version > before.version and not newest.is_production
    assert newest.gate["approval"] == newest.gate["approval"] | {"approved": False, "by": "ada", "timed_out": False}


def test_no_answer_before_the_timeout_is_a_reject(env, monkeypatch):
    monkeypatch.setenv("NEWS_SIGNALS_APPROVAL_TIMEOUT_HOURS", str(2 / 3600))  # two seconds
    before = get_registry().production()
    sweeper = TimeoutSweeper()
    sweeper.start()
    try:
        dr = _run(env, seed=7, force_promote=True, reason="test: nobody answers")
    finally:
        sweeper.stop.set()
        sweeper.join(timeout=30)
    assert sweeper.error is None, sweeper.error
    s = states(dr)
    assert str(dr.state) == "success", s
    assert s["register_only"] == "success" and s["register_and_promote"] == "skipped"
    registry = get_registry()
    assert registry.production().version == before.version
    newest = max(registry.history(), key=lambda v: v.version)
    assert newest.gate["approval"]["timed_out"] is True and newest.gate["approval"]["approved"] is False


def test_rollback_from_the_ui_moves_production_back_and_trains_nothing(env):
    registry = get_registry()
    first = registry.production().version
    # a second production version: promote the candidate of seed 5 (already trained, reused)
    dr = load_dag().test(logical_date=LOGICAL, run_conf=conf(env, seed=5, force_promote=True, reason="test"))
    assert str(dr.state) == "success", states(dr)
    assert registry.production().version != first
    runs_before = sorted(p.name for p in Path(env["storage"].path("runs")).rglob("*"))

    bad = load_dag().test(logical_date=LOGICAL, run_conf={"rollback_to": 99, "reason": "typo"})
    assert str(bad.state) == "failed" and states(bad)["rollback"] == "failed"
    assert registry.production().version != first

    dr = load_dag().test(logical_date=LOGICAL, run_conf={"rollback_to": first, "reason": "v2 regressed on storms"})
    s = states(dr)
    assert str(dr.state) == "success", s
    assert s["rollback"] == "success" and s["snapshot"] == "skipped" and s["register_only"] == "skipped"
    assert registry.production().version == first
    last = registry.promotions()[-1]
    assert last["action"] == "rollback" and last["reason"] == "v2 regressed on storms" and last["by"]
    assert sorted(p.name for p in Path(env["storage"].path("runs")).rglob("*")) == runs_before
