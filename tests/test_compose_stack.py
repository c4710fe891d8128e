"""The production stack for real: docker-compose.yaml under CeleryExecutor, driven through /api/v2 with a login.

Builds the images offline (tools.docker_build: Debian-based stand-ins for the official Airflow,
Postgres, Redis and socket-proxy images, our Airflow image, the trainer image), starts the stack with
the GDELT replay server (`--profile replay`), logs in as SimpleAuthManager's admin (`/auth/token`) and
then, as a user would: two `gdelt_daily_ingest` runs against the replay server, a tiny
`monthly_retrain` whose training runs in the trainer image through the DockerOperator on the
`gpu`-queue worker (via the socket proxy, on CPU), and `signal_feature_pipeline`, which must classify
with the registered model. Every run must succeed. `docker compose down -v` at the end, always.

State lives in a temporary directory (PWD / AIRFLOW_STATE_DIR point compose at it), so nothing is
written into the checkout. A failure message carries the failed tasks' logs and the containers' logs.
Set NEWS_SIGNALS_COMPOSE_STACK=0 to skip it (e.g. a machine with no Docker daemon outside CI).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
PROJECT = "news-signals-stack-test"
TRAINER_TAG = "news-signals-trainer:latest"
UP_TIMEOUT_S = 1200  # first start migrates the database; 7 Airflow processes import on 2 cores
RUN_TIMEOUT_S = {"gdelt_daily_ingest": 900, "monthly_retrain": 1500, "signal_feature_pipeline": 900}
DAG_IDS = tuple(RUN_TIMEOUT_S)
SERVICES = (
    "postgres", "redis", "docker-socket-proxy", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-worker-gpu", "gdelt-replay",
)

log = logging.getLogger(__name__)


def _docker_or_skip():
    if os.environ.get("NEWS_SIGNALS_COMPOSE_STACK") == "0":
        pytest.skip("NEWS_SIGNALS_COMPOSE_STACK=0")
    import docker

    try:
        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means no daemon
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Docker daemon in CI ({exc}); .ci/run runs scripts/ensure_dockerd.sh")
        pytest.skip(f"no Docker daemon ({exc}); scripts/ensure_dockerd.sh starts one")
    return client


def _compose_base() -> list[str]:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    pytest.fail("no compose tool (docker compose v2 or docker-compose); scripts/ensure_dockerd.sh installs one")


class Stack:
    """One compose project in a temporary state directory."""

    def __init__(self, client, state: Path, env: dict[str, str]) -> None:
        self.client, self.state, self.env = client, state, env
        self.cmd = [*_compose_base(), "-p", PROJECT, "-f", str(COMPOSE_FILE), "--profile", "replay"]
        self.base_url = f"http://127.0.0.1:{env['AIRFLOW_API_PORT']}"
        self.data = Path(env["PWD"]) / "data"

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.cmd, *args], capture_output=True, text=True, env=self.env, cwd=ROOT, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"`compose {' '.join(args)}` exited {proc.returncode}:\n{proc.stderr[-4000:]}\n{self.logs()}")
        return proc

    def containers(self) -> dict[str, Any]:
        found = self.client.containers.list(all=True, filters={"label": f"com.docker.compose.project={PROJECT}"})
        return {c.labels.get("com.docker.compose.service"): c for c in found}

    def logs(self, tail: int = 80) -> str:
        proc = subprocess.run([*self.cmd, "logs", "--no-color", f"--tail={tail}"], capture_output=True, text=True,
                              env=self.env, cwd=ROOT, timeout=120)
        return f"--- container logs (last {tail} lines each) ---\n{proc.stdout[-30000:]}"

    def wait_ready(self, timeout: float) -> None:
        """Every service healthy (or running when it has no healthcheck), airflow-init exited 0."""
        deadline = time.monotonic() + timeout
        while True:
            containers = self.containers()
            init = containers.get("airflow-init")
            if init is not None:
                init.reload()
                if init.status == "exited" and init.attrs["State"]["ExitCode"] != 0:
                    raise AssertionError(f"airflow-init failed:\n{init.logs(tail=100).decode(errors='replace')}")
            waiting = []
            for name in SERVICES:
                c = containers.get(name)
                if c is None:
                    waiting.append(f"{name}: missing")
                    continue
                c.reload()
                health = (c.attrs["State"].get("Health") or {}).get("Status")
                if c.status != "running" or health not in (None, "healthy"):
                    waiting.append(f"{name}: {c.status}/{health}")
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"stack not ready after {timeout:.0f} s: {waiting}\n{self.logs()}")
            time.sleep(5)


class API:
    """/api/v2 as the admin user: a token from /auth/token, renewed when it expires."""

    def __init__(self, base_url: str, password_file: Path) -> None:
        import requests

        self.base_url, self.password_file, self.http = base_url, password_file, requests.Session()
        self.token: str | None = None

    def login(self) -> str:
        password = json.loads(self.password_file.read_text())["admin"]
        resp = self.http.post(f"{self.base_url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        assert resp.status_code in (200, 201), f"login refused: HTTP {resp.status_code} {resp.text[:300]}"
        return resp.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in (1, 2):
            self.token = self.token or self.login()
            resp = self.http.request(method, f"{self.base_url}/api/v2{path}", timeout=60,
                                     headers={"Authorization": f"Bearer {self.token}"}, **kwargs)
            if resp.status_code in (401, 403) and attempt == 1:
                self.token = None
                continue
            assert resp.status_code in (200, 201), f"{method} /api/v2{path}: HTTP {resp.status_code} {resp.text[:500]}"
            return resp.json()
        raise AssertionError("unreachable")

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params)

    def unpause(self, dag_id: str) -> None:
        assert self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": False})["is_paused"] is False

    def trigger(self, dag_id: str, run_id: str, logical_date: str | None, conf: dict[str, Any]) -> str:
        body = {"dag_run_id": run_id, "logical_date": logical_date, "conf": conf}
        return self.call("POST", f"/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100, order_by="id")["dag_runs"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        tis = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=100)["task_instances"]
        return {ti["task_id"]: ti["state"] for ti in tis}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    client = _docker_or_skip()
    from cryptography.fernet import Fernet

    from tools.docker_build import build_stack_images, build_trainer_image, stack_image_env
    from tools.local_airflow import free_port

    logging.getLogger("tools.docker_build").setLevel(logging.INFO)
    started = time.monotonic()
    build_seconds = build_stack_images()
    build_seconds[TRAINER_TAG] = build_trainer_image(TRAINER_TAG).seconds
    log.info("images ready in %.0f s: %s", time.monotonic() - started, build_seconds)

    state = Path(tempfile.mkdtemp(prefix="news-signals-stack-", dir="/var/tmp"))
    (state / "data").mkdir()
    today = datetime.now(UTC).date()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "NEWS_SIGNALS_", "POSTGRES_"))},
        **stack_image_env(),
        "PWD": str(state),
        "AIRFLOW_PROJ_DIR": str(ROOT),
        "AIRFLOW_STATE_DIR": str(state),
        "AIRFLOW_UID": "50000",
        "AIRFLOW_API_PORT": str(free_port()),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "POSTGRES_PASSWORD": secrets.token_urlsafe(16),
        "AIRFLOW_WORKER_CONCURRENCY": "2",
        "NEWS_SIGNALS_TRAINER_IMAGE": TRAINER_TAG,
        "NEWS_SIGNALS_GDELT_URL": "http://gdelt-replay:8765/api/v2/doc/doc",
        "NEWS_SIGNALS_GDELT_MIN_INTERVAL": "0.1",
        "GDELT_REPLAY_START": (today - timedelta(days=10)).isoformat(),
        "GDELT_REPLAY_DAYS": "12",
    }
    s = Stack(client, state, env)
    s.compose("down", "-v", "--remove-orphans", check=False)  # a stack left by an interrupted run
    try:
        up_started = time.monotonic()
        s.compose("up", "-d", "--no-build", timeout=UP_TIMEOUT_S)
        s.wait_ready(UP_TIMEOUT_S)
        log.info("stack up in %.0f s", time.monotonic() - up_started)
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans", timeout=600, check=False)
        subprocess.run(["rm", "-rf", str(state)], check=False)


def _wait_dags(api: API, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        errors = api.get("/importErrors")["import_errors"]
        assert not errors, f"DAG import errors: {[(e['filename'], e['stack_trace'][-1500:]) for e in errors]}"
        found = {d["dag_id"] for d in api.get("/dags", limit=100)["dags"]}
        if set(DAG_IDS) <= found:
            return
        assert time.monotonic() < deadline, f"DAGs not parsed after {timeout} s: found {sorted(found)}"
        time.sleep(5)


def _failure_report(stack: Stack, api: API, dag_id: str, run_id: str) -> str:
    """The failed tasks' states and log tails, then the containers' logs."""
    lines = [f"{dag_id} / {run_id}:"]
    try:
        states = api.task_states(dag_id, run_id)
        lines.append(json.dumps(states, indent=1))
        for task_id, state in states.items():
            if state in ("failed", "upstream_failed", "up_for_retry"):
                for path in sorted((stack.state / "logs").glob(f"dag_id={dag_id}/run_id={run_id}/task_id={task_id}/*.log")):
                    lines.append(f"--- {path.relative_to(stack.state)} ---\n{path.read_text(errors='replace')[-6000:]}")
    except Exception as exc:  # noqa: BLE001 - the report must not hide the failure
        lines.append(f"(could not read task states: {exc})")
    return "\n".join(lines) + "\n" + stack.logs()


def _wait_run(stack: Stack, api: API, dag_id: str, run_id: str) -> dict[str, str | None]:
    deadline = time.monotonic() + RUN_TIMEOUT_S[dag_id]
    while True:
        run = api.get(f"/dags/{dag_id}/dagRuns/{run_id}")
        if run["state"] == "success":
            return api.task_states(dag_id, run_id)
        if run["state"] == "failed":
            pytest.fail(f"run failed: {_failure_report(stack, api, dag_id, run_id)}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"run still {run['state']} after {RUN_TIMEOUT_S[dag_id]} s: "
                        f"{_failure_report(stack, api, dag_id, run_id)}", pytrace=False)
        time.sleep(5)


def _next_logical(api: API, dag_id: str) -> str | None:
    """The logical date the scheduler would create a run for on unpause: triggering it ourselves first
    means unpausing creates no extra run (the scheduler skips a logical date that already has one)."""
    return api.get(f"/dags/{dag_id}").get("next_dagrun_logical_date")


def test_stack_runs_the_three_dags_through_the_rest_api(stack: Stack):
    started = time.monotonic()
    password_file = stack.state / "config" / "simple_auth_manager_passwords.json"
    assert password_file.is_file(), f"the api-server wrote no password file at {password_file}"
    api = API(stack.base_url, password_file)

    import requests

    anonymous = requests.get(f"{stack.base_url}/api/v2/dags", timeout=30)
    assert anonymous.status_code in (401, 403), anonymous.status_code  # the API needs the login
    _wait_dags(api)

    # Two daily ingests against the replay server (the Celery default-queue worker runs them).
    logical = _next_logical(api, "gdelt_daily_ingest")
    assert logical, "gdelt_daily_ingest has no next run"
    first = datetime.fromisoformat(logical.replace("Z", "+00:00"))
    days = [(first - timedelta(days=1)).date(), first.date()]
    ingest_runs = [
        api.trigger("gdelt_daily_ingest", f"stack_test_{day}", (first - timedelta(days=1 - i)).isoformat(),
                    {"date": day.isoformat()})
        for i, day in enumerate(days)
    ]
    api.unpause("gdelt_daily_ingest")
    for run_id in ingest_runs:
        _wait_run(stack, api, "gdelt_daily_ingest", run_id)
    from news_signals.core.storage import Storage

    storage = Storage(str(stack.data))
    assert [d.isoformat() for d in days] == [str(d)[:10] for d in storage.partition_dates()], storage.partition_dates()

    # A tiny retrain: the training task goes to the gpu queue -> the gpu worker -> DockerOperator via the proxy.
    base = _tiny_base_model(stack, storage)
    conf = {
        "end_date": days[-1].isoformat(),
        "lookback_days": 2,
        "trainer_backend": "docker",
        "base_model": str(base),
        "epochs": 1,
        "sample_size": 200,
        "labeller": "keywords",
        "min_rows_per_category": 1,
        "min_macro_f1": 0.0,  # a 1-epoch tiny model: the gate rules are tested in test_gate.py
        "keyword_margin": -1.0,
        "latency_p95_budget_ms": 60000,
    }
    monthly = _next_logical(api, "monthly_retrain")
    assert monthly, "monthly_retrain has no next run: unpausing would start a full-size scheduled retrain"
    retrain = api.trigger("monthly_retrain", "stack_test_retrain", monthly, conf)
    api.unpause("monthly_retrain")
    states = _wait_run(stack, api, "monthly_retrain", retrain)
    assert states["train_docker"] == "success" and states["train_local"] == "skipped", states
    assert states["register_and_promote"] == "success", states
    ti = api.get(f"/dags/monthly_retrain/dagRuns/{retrain}/taskInstances/train_docker")
    assert ti["queue"] == "gpu" and ti["pool"] == "gpu", ti
    assert ti["hostname"] and ti["hostname"] != api.get(
        f"/dags/monthly_retrain/dagRuns/{retrain}/taskInstances/choose_trainer")["hostname"], \
        "the training task should run on the gpu worker, not the default one"
    production = _production_version(stack)

    # The feature pipeline picks the promoted model up.
    api.unpause("signal_feature_pipeline")
    features = api.trigger("signal_feature_pipeline", "stack_test_features", None,
                           {"date": days[-1].isoformat(), "require_model": True})
    _wait_run(stack, api, "signal_feature_pipeline", features)
    classifiers = _headline_classifiers(stack)
    assert any(c.startswith("model:") and c.endswith(f"@{production}") for c in classifiers), classifiers

    # Every run of every DAG succeeded (the asset-triggered feature runs included; none still going).
    deadline = time.monotonic() + 600
    while True:
        pending = {d: [r["dag_run_id"] for r in api.runs(d) if r["state"] not in ("success", "failed")] for d in DAG_IDS}
        if not any(pending.values()) or time.monotonic() > deadline:
            break
        time.sleep(5)
    bad = {d: [(r["dag_run_id"], r["state"]) for r in api.runs(d) if r["state"] != "success"] for d in DAG_IDS}
    assert not any(bad.values()), f"runs not successful: {bad}\n{stack.logs()}"
    log.info("stack test: DAG runs done in %.0f s", time.monotonic() - started)


def _tiny_base_model(stack: Stack, storage) -> Path:
    """A tiny BERT whose WordPiece vocabulary is learned from the ingested titles, in the shared data dir."""
    import pandas as pd

    from tools.tiny_model import build_tiny_base_model

    titles = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in storage.partition_dates())["title"]
    out = build_tiny_base_model(stack.data / "base_models" / "tiny", list(titles))
    subprocess.run(["chmod", "-R", "a+rX", str(stack.data / "base_models")], check=True)
    return out


def _production_version(stack: Stack) -> int:
    env = {**os.environ, "NEWS_SIGNALS_HOME": str(stack.data), "NEWS_SIGNALS_REGISTRY": "local", "PYTHONPATH": str(ROOT)}
    code = (
        "from news_signals.registry import get_registry; "
        "import json; h = get_registry().history(); print(json.dumps([[v.version, v.is_production] for v in h]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    history = json.loads(out.stdout.strip().splitlines()[-1])
    production = [v for v, is_prod in history if is_prod]
    assert production, f"no production version in the registry: {history}"
    return production[0]


def _headline_classifiers(stack: Stack) -> set[str]:
    env = {**os.environ, "NEWS_SIGNALS_HOME": str(stack.data), "PYTHONPATH": str(ROOT)}
    code = (
        "from news_signals.core.storage import Storage; from news_signals.features.store import HEADLINE_SPEC; "
        "from news_signals.features.store.local import LocalFeatureStore; import json; "
        "print(json.dumps(sorted(set(LocalFeatureStore(Storage()).read(HEADLINE_SPEC)['classifier']))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))
