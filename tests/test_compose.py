"""docker-compose.yaml: the compose tool accepts it, and everything it names exists.

`docker compose config` (v2 plugin) or `docker-compose config` (Debian's v1.29) runs when either is
installed (scripts/ensure_dockerd.sh installs one in CI); the YAML checks run everywhere.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yaml"
AIRFLOW_SERVICES = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery worker",
    "airflow-worker-gpu": "celery worker --queues gpu --concurrency 1",
}
# The two variables compose refuses to start without (docs/OPERATIONS.md); the values are test-only.
REQUIRED = {
    "AIRFLOW__CORE__FERNET_KEY": "dGVzdC1vbmx5LWZlcm5ldC1rZXktMzItYnl0ZXMhISE=",
    "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret",
    "POSTGRES_PASSWORD": "test-only",
}
ENV = {**os.environ, "PWD": str(ROOT), "AIRFLOW_UID": "50000", **REQUIRED}


def _compose_cmd() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def _resolved() -> dict:
    """The file after compose-style interpolation and YAML merge keys (what the tool sees)."""
    text = COMPOSE.read_text()
    text = re.sub(
        r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?]([^}]*))?\}",
        lambda m: ENV.get(m.group(1)) or ("" if "?" in m.group(0) else m.group(2)) or "",
        text,
    )
    return yaml.safe_load(text.replace("$$", "$"))


@pytest.fixture(scope="module")
def compose() -> dict:
    return _resolved()


def test_compose_tool_accepts_the_file():
    cmd = _compose_cmd()
    if cmd is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no compose tool in CI: scripts/ensure_dockerd.sh should have installed docker-compose")
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    proc = subprocess.run([*cmd, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=ENV, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    config = yaml.safe_load(proc.stdout)
    assert set(AIRFLOW_SERVICES) | {"postgres", "redis", "airflow-init"} <= set(config["services"])
    worker_env = config["services"]["airflow-worker"]["environment"]
    assert worker_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert worker_env["AIRFLOW__CORE__FERNET_KEY"] == REQUIRED["AIRFLOW__CORE__FERNET_KEY"]


@pytest.mark.parametrize("missing", sorted(REQUIRED))
def test_compose_refuses_to_start_without_a_fernet_key_jwt_secret_or_db_password(missing):
    """No silent default: without the key, connection passwords would sit unencrypted in Postgres."""
    cmd = _compose_cmd()
    if cmd is None:
        pytest.skip("no compose tool")
    env = {k: v for k, v in ENV.items() if k != missing}
    proc = subprocess.run([*cmd, "-f", str(COMPOSE), "config"], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.returncode != 0, proc.stdout[-500:]
    assert missing in proc.stderr and "docs/OPERATIONS.md" in proc.stderr, proc.stderr


def test_no_default_password_outside_the_example_env():
    text = COMPOSE.read_text()
    assert "airflow:airflow@" not in text and "POSTGRES_PASSWORD: airflow" not in text
    assert "FERNET_KEY: ''" not in text
    example = (ROOT / ".env.example").read_text()
    assert re.search(r"^AIRFLOW__CORE__FERNET_KEY=CHANGE-ME$", example, re.M)
    assert re.search(r"^AIRFLOW__API_AUTH__JWT_SECRET=CHANGE-ME$", example, re.M)
    assert re.search(r"^POSTGRES_PASSWORD=", example, re.M)
    assert ".env" in (ROOT / ".gitignore").read_text().split()


def test_every_base_image_is_overridable(compose):
    text = COMPOSE.read_text()
    for var, default in {
        "AIRFLOW_BASE_IMAGE": "apache/airflow:3.3.2-python3.11",
        "POSTGRES_IMAGE": "postgres:16",
        "REDIS_IMAGE": "redis:7.2-bookworm",
        "SOCKET_PROXY_IMAGE": "tecnativa/docker-socket-proxy:v0.3.0",
    }.items():
        assert f"${{{var}:-{default}}}" in text, var  # the official image stays the default
    assert compose["services"]["airflow-apiserver"]["build"]["args"]["AIRFLOW_IMAGE"] == "apache/airflow:3.3.2-python3.11"


def test_official_shape_and_our_image(compose):
    services = compose["services"]
    for name, command in AIRFLOW_SERVICES.items():
        svc = services[name]
        assert svc["command"] == command, name
        assert svc["build"]["context"] == "." and svc["build"]["dockerfile"] == "docker/airflow/Dockerfile", name
        assert svc["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert svc["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert svc["depends_on"]["redis"]["condition"] == "service_healthy"
        assert svc["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"


def test_database_urls_name_the_psycopg2_driver(compose):
    """SQLAlchemy 2.1 (Airflow 3.3) maps a bare postgresql:// to psycopg 3, which the image does not ship:
    the Celery result backend failed with "No module named 'psycopg'" until the driver was named."""
    env = compose["services"]["airflow-worker"]["environment"]
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")


def test_every_name_it_uses_exists(compose):
    services = compose["services"]
    named_volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for dep in svc.get("depends_on") or {}:
            assert dep in services, f"{name} depends on unknown service {dep}"
        build = svc.get("build")
        if build:
            context = ROOT / build["context"]
            dockerfile = context / build.get("dockerfile", "Dockerfile")
            assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
            # Every COPY source of our Dockerfile exists in the build context.
            for line in dockerfile.read_text().splitlines():
                m = re.match(r"COPY\s+(?:--\S+\s+)*(.+)\s+\S+$", line.strip())
                if m and "--from" not in line:
                    for src in m.group(1).split():
                        assert (context / src).exists(), f"{dockerfile}: COPY source {src} is missing"
        for volume in svc.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith(("/", ".")):
                if source.startswith(str(ROOT)) or source.startswith("."):
                    rel = Path(source).relative_to(ROOT) if source.startswith("/") else Path(source)
                    # dags, include, plugins, scripts, airflow_settings.yaml must exist; logs/config/data are created.
                    if rel.parts and rel.parts[0] not in ("logs", "config", "data"):
                        assert (ROOT / rel).exists(), f"{name}: volume source {source} missing"
            else:
                assert source in named_volumes, f"{name}: named volume {source} is not declared"


def test_workers_can_reach_a_docker_daemon_and_data_paths_match(compose):
    services = compose["services"]
    worker = services["airflow-worker-gpu"]
    assert "DOCKER_HOST" not in services["airflow-worker"]["environment"]  # only the gpu worker reaches Docker
    docker_host = worker["environment"]["DOCKER_HOST"]
    proxy_name, port = re.match(r"tcp://([^:]+):(\d+)", docker_host).groups()
    proxy = services[proxy_name]
    assert port in {str(p) for p in proxy.get("expose", [])}
    assert any(v.startswith("/var/run/docker.sock:") for v in proxy["volumes"])
    assert proxy_name in worker["depends_on"]
    # The trainer container is started by the host daemon: NEWS_SIGNALS_HOME must be the same path outside.
    home = worker["environment"]["NEWS_SIGNALS_HOME"]
    assert f"{home}:{home}" in worker["volumes"]
    assert worker["environment"]["NEWS_SIGNALS_TRAINER_IMAGE"]


def test_airflow_image_installs_our_requirements_and_package():
    text = (ROOT / "docker" / "airflow" / "Dockerfile").read_text()
    assert re.search(r"^FROM \$\{AIRFLOW_IMAGE\}", text, re.M)
    pinned = re.search(r"^apache-airflow==(\S+)$", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert f"apache/airflow:{pinned}-python3.11" in text  # the same Airflow as requirements.txt
    assert pinned.startswith("3.3.")
    local = (ROOT / "docker" / "local" / "airflow" / "Dockerfile").read_text()
    assert f"apache-airflow=={pinned}" in local
    # the isolated Hopsworks venv is baked in and is the interpreter the proxies use; the main env has no hopsworks
    assert "-r /opt/news_signals/requirements-hopsworks.txt -c /opt/news_signals/constraints-hopsworks.txt" in text
    assert "NEWS_SIGNALS_HOPSWORKS_PYTHON=/opt/hopsworks-venv/bin/python" in text
    assert "/opt/hopsworks-venv/bin/pip check" in text and '! python -c "import hopsworks"' in text
    ignore = (ROOT / ".dockerignore").read_text().split()
    assert "!requirements-hopsworks.txt" in ignore and "!constraints-hopsworks.txt" in ignore
    assert not re.search(r"^hopsworks", (ROOT / "requirements.txt").read_text(), re.M | re.I)
    assert "-r /opt/news_signals/requirements.txt -c /opt/news_signals/constraints.txt" in text
    assert "pip install --no-cache-dir --no-deps ${PIP_INSTALL_ARGS} /opt/news_signals" in text
