"""`python -m news_signals doctor` against a tmp home, the GDELT replay server and closed loopback ports."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
from news_signals.commands import doctor


def _by_name(checks):
    return {c.name: c for c in checks}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def local_env(ns_home, monkeypatch, replay_server):
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", replay_server.url)
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "local")
    monkeypatch.setenv("NEWS_SIGNALS_FEATURE_STORE", "local")
    for var in ("AIRFLOW_CONN_NEWS_SIGNALS_WEBHOOK", "AIRFLOW_CONN_HOPSWORKS_DEFAULT"):
        monkeypatch.delenv(var, raising=False)
    return replay_server


def test_fresh_local_install(local_env):
    checks = _by_name(doctor.run_checks(timeout=5, skip={"gpu"}))
    for name in ("python", "airflow", "torch", "transformers", "great_expectations"):
        assert checks[name].status == "OK", checks[name]
    assert checks["airflow"].detail == "3.3.2"
    # hopsworks is not in this environment: the doctor asks the isolated interpreter
    assert checks["hopsworks"].status == "OK" and checks["hopsworks"].detail.startswith("5.2.1 in ")
    assert ".venv-hopsworks" in checks["hopsworks"].detail or "/opt/hopsworks-venv" in checks["hopsworks"].detail
    assert checks["storage"].status == "OK" and "writable; 0 daily partition(s)" in checks["storage"].detail
    assert checks["registry"].status == "WARN" and "monthly_retrain" in checks["registry"].fix
    assert checks["feature store"].status == "WARN"
    assert checks["gdelt"].status == "OK" and local_env.url in checks["gdelt"].detail
    assert checks["docker"].status in ("OK", "WARN")  # depends on the machine; never a FAIL
    assert checks["webhook"].status == "WARN"
    assert not os.listdir(os.environ["NEWS_SIGNALS_HOME"])  # the storage probe cleaned up after itself


def test_registered_models_and_webhook(local_env, monkeypatch):
    from tools.example_history import build_example_registry

    build_example_registry()
    monkeypatch.setenv(
        "AIRFLOW_CONN_NEWS_SIGNALS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": "https://hooks.example.org/T0/SECRETPATH", "password": "tok"}),
    )
    checks = _by_name(doctor.run_checks(skip={"gpu", "docker", "gdelt", "versions"}))
    assert checks["registry"].status == "OK" and "4 version(s), production v4" in checks["registry"].detail
    assert checks["webhook"].status == "OK" and "hooks.example.org" in checks["webhook"].detail
    assert "SECRETPATH" not in checks["webhook"].detail and "tok" not in checks["webhook"].detail.split("(")[0]


def test_gdelt_rate_limited_is_a_warning(local_env):
    local_env.inject("429")
    from news_signals.core.config import Settings

    check = doctor.check_gdelt(Settings(), timeout=5)
    assert check.status == "WARN" and "429" in check.detail


def test_gdelt_down_and_hopsworks_unreachable_fail_with_fixes(local_env, monkeypatch, capsys):
    port = _closed_port()
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", f"http://127.0.0.1:{port}/api/v2/doc/doc")
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "hopsworks")
    monkeypatch.setenv(
        "AIRFLOW_CONN_HOPSWORKS_DEFAULT",
        json.dumps({"conn_type": "hopsworks", "host": f"http://127.0.0.1:{port}", "schema": "proj", "password": "KEY-123-secret"}),
    )
    args = doctor.argparse.Namespace(timeout=2.0, json=False, skip=["gpu", "docker", "versions"])
    assert doctor.run(args) == 1
    out = capsys.readouterr().out
    assert "FAIL  gdelt" in out and "NEWS_SIGNALS_GDELT_URL" in out
    assert "FAIL  registry" in out and "unreachable" in out and "RUNBOOK" in out
    assert "KEY-123-secret" not in out


def test_cli_exit_code_on_unwritable_storage(tmp_path, local_env):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = {**os.environ, "NEWS_SIGNALS_HOME": str(blocker / "home")}
    proc = subprocess.run(
        [sys.executable, "-m", "news_signals", "doctor", "--json", "--skip", "gpu", "--skip", "docker",
         "--skip", "versions", "--skip", "gdelt"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["storage"]["status"] == "FAIL" and "NEWS_SIGNALS_HOME" in checks["storage"]["fix"]


def test_missing_hopsworks_interpreter_names_the_fix(local_env, monkeypatch, tmp_path):
    monkeypatch.setenv("NEWS_SIGNALS_HOPSWORKS_PYTHON", str(tmp_path / "none" / "python"))
    check = _by_name(doctor.run_checks(skip={"gpu", "docker", "gdelt", "webhook"}))["hopsworks"]
    assert check.status == "WARN" and "make hopsworks-venv" in check.fix  # local backends: a warning
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "hopsworks")
    check = _by_name(doctor.run_checks(skip={"gpu", "docker", "gdelt", "webhook", "registry"}))["hopsworks"]
    assert check.status == "FAIL" and str(tmp_path / "none" / "python") in check.detail
