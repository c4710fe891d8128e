"""Drive a real local Airflow (SQLite, LocalExecutor) for the demo: start, backfill, trigger, wait.

Runs go through the scheduler exactly as in production; progress (DAGs parsed, import errors,
runs, task states, backfills) is read from Airflow's REST API (``/api/v2``, a token from
``/auth/token`` with SimpleAuthManager's generated admin password), because each ``airflow`` CLI
call costs seconds and the metadata DB's schema is Airflow's own business.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TERMINAL = {"success", "failed"}
PAGE = 100  # the API's default maximum page size


class AirflowAPI:
    """The few ``/api/v2`` reads the demo needs, authenticated as SimpleAuthManager's admin.

    ``http`` is anything with requests' ``get`` / ``post`` (a ``requests.Session``, or FastAPI's
    TestClient in tests); ``password`` is read when a token is first needed, because the api-server
    writes its generated password file only once it starts.
    """

    def __init__(self, base_url: str, password: Callable[[], str], user: str = "admin", http: Any = None) -> None:
        import requests

        self.base_url = base_url.rstrip("/")
        self.user = user
        self._password = password
        self.http = http or requests.Session()
        self._token: str | None = None

    def _login(self) -> str:
        resp = self.http.post(f"{self.base_url}/auth/token", json={"username": self.user, "password": self._password()},
                              timeout=30)
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"Airflow refused the login of {self.user!r} (HTTP {resp.status_code}): {resp.text[:200]}")
        return resp.json()["access_token"]

    def get(self, path: str, **params: Any) -> Any:
        """GET ``/api/v2{path}`` as JSON; a rejected (expired) token is renewed once."""
        for attempt in (1, 2):
            self._token = self._token or self._login()
            resp = self.http.get(f"{self.base_url}/api/v2{path}", params=params,
                                 headers={"Authorization": f"Bearer {self._token}"}, timeout=30)
            if resp.status_code in (401, 403) and attempt == 1:  # Airflow answers 403 to an expired JWT
                self._token = None
                continue
            if resp.status_code != 200:
                raise RuntimeError(f"GET /api/v2{path} answered HTTP {resp.status_code}: {resp.text[:200]}")
            return resp.json()
        raise AssertionError("unreachable")

    def pages(self, path: str, key: str, **params: Any) -> list[dict]:
        """Every item of a paginated collection (``key`` = ``dag_runs``, ``dags``, ...)."""
        items: list[dict] = []
        while True:
            page = self.get(path, limit=PAGE, offset=len(items), **params)
            items.extend(page[key])
            if not page[key] or len(items) >= page.get("total_entries", len(items)):
                return items

    def dag_ids(self) -> set[str]:
        return {d["dag_id"] for d in self.pages("/dags", "dags")}

    def import_errors(self) -> list[tuple[str, str]]:
        return [(e["filename"], e["stack_trace"]) for e in self.pages("/importErrors", "import_errors")]

    def runs(self, dag_id: str) -> list[dict]:
        """Runs oldest first as ``{run_id, state, logical_date, run_type, conf}``."""
        runs = self.pages(f"/dags/{dag_id}/dagRuns", "dag_runs", order_by="id")
        return [
            {"run_id": r["dag_run_id"], "state": r["state"], "logical_date": r.get("logical_date"),
             "run_type": r.get("run_type"), "conf": r.get("conf")}
            for r in runs
        ]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.pages(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", "task_instances")
        return {ti["task_id"]: ti["state"] for ti in tis}

    def has_backfill(self, dag_id: str) -> bool:
        return self.get("/backfills", dag_id=dag_id, limit=1)["total_entries"] > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def airflow_env(project: Path, airflow_home: Path, api_port: int, parallelism: int = 2) -> dict[str, str]:
    """Environment for every Airflow process of the demo (SQLite + LocalExecutor, our dags/ and plugins/)."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        **os.environ,
        "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://localhost:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://localhost:{api_port}/execution/",
        # Under load on 2 cores the API server can be slow to answer the first call of a task.
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "10",
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "10",
        "GX_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


@dataclass
class LocalAirflow:
    """``airflow standalone`` in the background, plus helpers to create runs and wait for them."""

    project: Path
    home: Path
    parallelism: int = 2
    api_port: int = field(default_factory=free_port)
    _proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.env = airflow_env(self.project, self.home, self.api_port, self.parallelism)
        self.log_file = self.home / "standalone.log"
        self.api = AirflowAPI(f"http://127.0.0.1:{self.api_port}", self._admin_password)

    # ---- lifecycle ------------------------------------------------------------------------
    def cli(self, *args: str, check: bool = True, attempts: int = 3) -> subprocess.CompletedProcess:
        """Run an ``airflow`` CLI command; retry (SQLite can be briefly locked by the scheduler)."""
        for attempt in range(1, attempts + 1):
            proc = subprocess.run(
                [shutil.which("airflow", path=self.env["PATH"]) or "airflow", *args],
                env=self.env,
                capture_output=True,
                text=True,
            )
            if proc.returncode == 0 or not check:
                return proc
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            print(f"  airflow {' '.join(args[:2])} failed (attempt {attempt}/{attempts}):\n{tail}", flush=True)
            time.sleep(5)
        raise RuntimeError(f"airflow {' '.join(args)} failed {attempts} times; last error:\n{tail}")

    def has_backfill(self, dag_id: str) -> bool:
        return self.api.has_backfill(dag_id)

    def migrate(self) -> None:
        self.cli("db", "migrate")

    def start(self, timeout: float = 240) -> None:
        self._proc = subprocess.Popen(
            [shutil.which("airflow", path=self.env["PATH"]) or "airflow", "standalone"],
            env=self.env,
            stdout=self.log_file.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.api_port}/api/v2/monitor/health"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"airflow standalone exited early; see {self.log_file}")
            try:
                with urllib.request.urlopen(url, timeout=3) as resp:
                    health = json.loads(resp.read())
                if health.get("scheduler", {}).get("status") == "healthy":
                    return
            except OSError:
                pass
            time.sleep(2)
        raise TimeoutError(f"Airflow did not become healthy within {timeout:.0f}s; see {self.log_file}")

    def stop(self) -> None:
        if self._proc and self._proc.poll() is None:
            os.killpg(self._proc.pid, 15)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, 9)

    @property
    def password_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    def _admin_password(self) -> str:
        try:
            return json.loads(self.password_file.read_text())["admin"]
        except (OSError, ValueError, KeyError) as exc:
            raise RuntimeError(f"no admin password in {self.password_file} ({exc}); is Airflow started?") from exc

    # ---- progress, through the REST API ---------------------------------------------------

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 300) -> None:
        """Wait until the dag-processor has parsed every DAG (and report import errors)."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found, errors = self.api.dag_ids(), self.api.import_errors()
            if errors:
                raise RuntimeError("DAG import errors:\n" + "\n".join(f"{f}:\n{s}" for f, s in errors))
            if wanted <= found:
                return
            time.sleep(3)
        raise TimeoutError(f"DAGs {sorted(wanted)} not parsed within {timeout:.0f}s; see {self.log_file}")

    def runs(self, dag_id: str) -> list[dict]:
        return self.api.runs(dag_id)

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return self.api.task_states(dag_id, run_id)

    def dags_test(self, dag_id: str, logical_date: str, conf: dict, log_file: Path, timeout: float) -> dict:
        """``airflow dags test`` with a conf (the run is recorded in the DB and shown in the UI).

        Used where the demo must choose the Params of a run (a scheduled run takes the defaults).
        """
        before = {r["run_id"] for r in self.runs(dag_id)}
        with log_file.open("w") as out:
            proc = subprocess.Popen(
                [shutil.which("airflow", path=self.env["PATH"]) or "airflow", "dags", "test", dag_id,
                 logical_date, "--conf", json.dumps(conf)],
                env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )
            start, last = time.monotonic(), ""
            while proc.poll() is None:
                if time.monotonic() - start > timeout:
                    proc.kill()
                    raise TimeoutError(f"airflow dags test {dag_id} did not finish in {timeout:.0f}s; see {log_file}")
                new = [r for r in self.runs(dag_id) if r["run_id"] not in before]
                if new:
                    states = self.task_states(dag_id, new[-1]["run_id"])
                    done = sorted(t for t, s in states.items() if s in ("success", "skipped"))
                    running = sorted(t for t, s in states.items() if s == "running")
                    line = f"done: {', '.join(done) or '-'}; running: {', '.join(running) or '-'}"
                    if line != last:
                        print(f"  [{time.monotonic() - start:5.0f}s] {dag_id}: {line}", flush=True)
                        last = line
                time.sleep(5)
        new = [r for r in self.runs(dag_id) if r["run_id"] not in before]
        if proc.returncode != 0 or not new:
            raise RuntimeError(f"airflow dags test {dag_id} failed (exit {proc.returncode}); see {log_file}")
        return new[-1]

    def wait_until_idle(self, dag_id: str, timeout: float, settle: float = 20) -> list[dict]:
        """Wait until ``dag_id`` has had no queued or running run for ``settle`` seconds."""
        start = time.monotonic()
        idle_since: float | None = None
        while time.monotonic() - start < timeout:
            runs = self.runs(dag_id)
            if any(r["state"] not in TERMINAL for r in runs):
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= settle:
                    return runs
            time.sleep(3)
        raise TimeoutError(f"{dag_id} still had active runs after {timeout:.0f}s")

    def wait_for_runs(self, dag_id: str, expected: int, timeout: float, progress_every: float = 15) -> list[dict]:
        """Block until ``expected`` runs of ``dag_id`` are finished; print progress as it goes."""
        start = time.monotonic()
        last_print = 0.0
        while True:
            runs = self.runs(dag_id)
            done = [r for r in runs if r["state"] in TERMINAL]
            now = time.monotonic()
            if len(done) >= expected:
                return runs
            if now - last_print >= progress_every:
                last_print = now
                active = [r for r in runs if r["state"] not in TERMINAL]
                detail = ""
                if active:
                    states = self.task_states(dag_id, active[0]["run_id"])
                    running = [t for t, s in states.items() if s in ("running", "queued", "up_for_retry")]
                    detail = f"; {active[0]['run_id']}: {', '.join(running) or 'scheduling'}"
                print(
                    f"  [{now - start:5.0f}s] {dag_id}: {len(done)}/{expected} runs finished{detail}",
                    flush=True,
                )
            if now - start > timeout:
                raise TimeoutError(f"{dag_id}: only {len(done)}/{expected} runs finished after {timeout:.0f}s")
            time.sleep(3)


def serve_ui(project: Path, airflow_home: Path, port: int = 8080) -> int:
    """``make ui``: the same local Airflow in the foreground, to browse runs, logs and the model page."""
    env = airflow_env(project, airflow_home, port)
    print(f"Airflow on http://localhost:{port} (user admin; password in "
          f"{airflow_home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it.")
    return subprocess.call([shutil.which("airflow", path=env["PATH"]) or "airflow", "standalone"], env=env)


if __name__ == "__main__":
    root = Path(__file__).resolve().parents[1]
    raise SystemExit(serve_ui(root, Path(os.environ.get("AIRFLOW_HOME", root / "airflow_home"))))
