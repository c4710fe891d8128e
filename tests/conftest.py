"""Shared test setup: an isolated Airflow home and storage root, offline model hubs.

Environment is set at import time, before any test imports Airflow, so every test
(and every subprocess it starts) sees the same isolated configuration.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests/hopsworks_env needs hsml/hsfs, which only the isolated Hopsworks venv has: the main suite runs that
# folder with the venv's interpreter (tests/test_hopsworks_isolation.py) instead of collecting it here.
collect_ignore = [] if importlib.util.find_spec("hsml") else ["hopsworks_env"]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="news-signals-tests-"))

os.environ.update(
    {
        "AIRFLOW_HOME": str(_SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_SESSION_DIR / 'airflow' / 'airflow.db'}",
        "NEWS_SIGNALS_HOME": str(_SESSION_DIR / "data"),
        "NEWS_SIGNALS_GDELT_MIN_INTERVAL": "0",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        # subprocesses (the CLI, Airflow) can import tools/ like the tests do
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
)
(_SESSION_DIR / "airflow").mkdir(parents=True, exist_ok=True)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated SQLite metadata DB for dag.test(); created once per session."""
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    return Path(os.environ["AIRFLOW_HOME"])


@pytest.fixture()
def ns_home(tmp_path, monkeypatch) -> Path:
    """A fresh, empty NEWS_SIGNALS_HOME for one test."""
    home = tmp_path / "ns_home"
    home.mkdir()
    monkeypatch.setenv("NEWS_SIGNALS_HOME", str(home))
    return home


@pytest.fixture()
def replay_server():
    """A GDELT replay server on a free loopback port, serving the real-text corpus."""
    from tools.gdelt_replay import ReplayServer

    server = ReplayServer(host="127.0.0.1", port=0)
    server.start()
    try:
        yield server
    finally:
        server.stop()
