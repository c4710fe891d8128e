"""The trainer container for real: build docker/trainer/Dockerfile offline and run monthly_retrain's
train task through a real DockerOperator against a real Docker daemon.

The image is built by tools.docker_build (debootstrap base + host wheelhouse), cached by a hash of
the Dockerfile, requirements and package source, so only the first run (or a source change) builds.
No daemon: skipped on a user's machine (with the reason), a failure in CI (CI=true), where
scripts/ensure_dockerd.sh has started one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from news_signals.core.config import PROJECT_ROOT

pytestmark = pytest.mark.docker

TEST_IMAGE = "news-signals-trainer:test"
END = date(2026, 11, 10)
LOGICAL = datetime(2026, 11, 10, tzinfo=UTC)


def _daemon_or_skip():
    import docker

    try:
        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # DockerException, connection errors
        reason = (
            f"no Docker daemon answers ({type(exc).__name__}: {exc}); start one with "
            "scripts/ensure_dockerd.sh (installs Debian's docker.io and runs dockerd)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the trainer-container test: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def docker_client():
    return _daemon_or_skip()


@pytest.fixture(scope="module")
def trainer_image(docker_client):
    """The offline-built trainer image (cached between runs by content hash)."""
    from tools.docker_build import build_trainer_image

    logging.getLogger("tools.docker_build").setLevel(logging.INFO)
    result = build_trainer_image(TEST_IMAGE)
    print(f"\ntrainer image {result.tag}: {'cached' if result.cached else 'built'} in {result.seconds:.0f} s, "
          f"{result.size_bytes / 1e6:.0f} MB (base {result.base_image})")
    return result


# ---- the one place that decides about GPUs --------------------------------------------------------
def test_no_gpu_leaves_device_requests_out_and_a_gpu_asks_for_all(monkeypatch, tmp_path):
    from docker.types import DeviceRequest
    from news_signals.retrain import trainer as tr

    assert tr.gpu_device_requests(False) is None
    [req] = tr.gpu_device_requests(True)
    assert isinstance(req, DeviceRequest) and req["Count"] == -1 and req["Capabilities"] == [["gpu"]]

    fake_node = tmp_path / "nvidiactl"
    monkeypatch.delenv("NEWS_SIGNALS_TRAINER_GPU", raising=False)
    monkeypatch.setattr(tr, "NVIDIA_DEVICE_NODES", (str(fake_node),))
    assert tr.use_gpu_default() is False  # auto, no device node
    assert tr.docker_operator_kwargs(command=[], snapshot_src="s", out_src="o", base_model_src="b")["device_requests"] is None
    fake_node.touch()
    assert tr.use_gpu_default() is True  # auto, a GPU is visible
    assert tr.docker_operator_kwargs(command=[], snapshot_src="s", out_src="o", base_model_src="b")["device_requests"]
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_GPU", "0")
    assert tr.use_gpu_default() is False  # explicit off wins
    fake_node.unlink()
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_GPU", "1")
    assert tr.use_gpu_default() is True  # explicit on: the Docker host has the GPU, this worker does not


# ---- the image itself -----------------------------------------------------------------------------
def test_image_runs_the_trainer_cli_offline(docker_client, trainer_image):
    image = docker_client.images.get(trainer_image.tag)
    assert image.attrs["Config"]["Entrypoint"] == ["python", "-m", "news_signals", "train"]
    env = dict(e.split("=", 1) for e in image.attrs["Config"]["Env"])
    assert env["HF_HUB_OFFLINE"] == "1"
    # --help of the real CLI, with networking off: everything it needs is inside.
    out = docker_client.containers.run(trainer_image.tag, ["--help"], remove=True, network_disabled=True)
    assert b"--snapshot" in out and b"--base-model" in out
    # Any uid can run it (HOME and the matplotlib cache live in /tmp).
    out = docker_client.containers.run(
        trainer_image.tag, ["-c", "import matplotlib.pyplot, os; print(os.getuid())"],
        entrypoint=["python"], user="65534:65534", remove=True, network_disabled=True,
    )
    assert out.strip().endswith(b"65534")
    # The PyPI-shipped MiniLM backbone (base model alias "minilm") resolves inside the image.
    out = docker_client.containers.run(
        trainer_image.tag,
        ["-c", "from news_signals.model.backbone import resolve_base_model; import os; "
               "p = resolve_base_model('minilm'); print(os.path.isfile(os.path.join(p, 'config.json')))"],
        entrypoint=["python"], remove=True, network_disabled=True,
    )
    assert out.strip().endswith(b"True")


def test_build_is_cached_by_content(trainer_image):
    from tools.docker_build import build_trainer_image

    again = build_trainer_image(TEST_IMAGE)
    # Same Dockerfile, requirements, source and base -> the same tag, reused without a build. (While
    # people edit the package during a local run the source may change in between: then it rebuilds.)
    assert again.cached == (again.context_tag == trainer_image.context_tag)
    if os.environ.get("CI") == "true":  # nobody edits the source during a CI run
        assert again.cached and again.context_tag == trainer_image.context_tag


# ---- monthly_retrain's train task in the container -------------------------------------------------
def _load_dag():
    spec = importlib.util.spec_from_file_location("monthly_retrain_docker", PROJECT_ROOT / "dags" / "monthly_retrain.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.monthly_retrain()


def test_monthly_retrain_trains_in_the_container_and_registers(
    docker_client, trainer_image, airflow_db, tmp_path, monkeypatch
):
    import pandas as pd
    import torch
    from news_signals.core.storage import Storage
    from news_signals.model.artifact import load_artifact
    from news_signals.registry import get_registry
    from news_signals.retrain.trainer import gpu_available
    from test_snapshot import write_daily_partitions

    from tools.tiny_model import build_tiny_base_model

    torch.set_num_threads(2)
    monkeypatch.setenv("NEWS_SIGNALS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_BACKEND", "docker")
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_IMAGE", TEST_IMAGE)
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "local")
    monkeypatch.delenv("NEWS_SIGNALS_TRAINER_GPU", raising=False)  # auto: no GPU here -> no device_requests
    storage = Storage()
    write_daily_partitions(storage, END, days=4, per_day=150)
    texts = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in storage.partition_dates())["title"]
    base = build_tiny_base_model(tmp_path / "tiny_base", list(texts))

    dag = _load_dag()
    train_task = dag.get_task("train_docker")
    assert train_task.image == TEST_IMAGE and train_task.pool == "gpu"
    if not gpu_available():
        assert train_task.device_requests is None

    before = _container_ids(docker_client)
    run_conf = {
        "trainer_backend": "docker",
        "base_model": str(base),
        "epochs": 1,
        "sample_size": 200,
        "labeller": "keywords",
        "min_rows_per_category": 1,
        "min_macro_f1": 0.0,  # a 1-epoch tiny model; the gate rules are tested in test_gate.py
        "keyword_margin": -1.0,
        "latency_p95_budget_ms": 60000,
    }
    dr = dag.test(logical_date=LOGICAL, run_conf=run_conf)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "success", states
    assert states["train_docker"] == "success" and states["train_local"] == "skipped", states

    # The container printed the artifact path it wrote: the container path, on the mounted work dir.
    ti = next(t for t in dr.get_task_instances() if t.task_id == "train_docker")
    last_line = ti.xcom_pull(task_ids="train_docker")  # DockerOperator pushes the container's last line
    summary = last_line if isinstance(last_line, dict) else json.loads(last_line)
    assert summary["artifact"] == "/out/candidate"

    # ... and that artifact is on the host, loadable (hashes verified), and registered.
    plan = ti.xcom_pull(task_ids="choose_trainer", key="plan")
    candidate = Path(plan["candidate_dir"])
    assert plan["docker"]["out_src"] == str(candidate.parent)  # the work dir is the mount, not the candidate
    loaded = load_artifact(candidate)
    assert loaded is not None
    [version] = get_registry().history()
    assert version.version == 1 and version.is_production
    assert (Path(version.path) / "news_signals.json").is_file()

    # auto_remove="success": no container left behind.
    assert _container_ids(docker_client) - before == set()


def _container_ids(client) -> set[str]:
    """Ids only (no per-container inspect): a container auto-removed mid-listing cannot fail the listing."""
    return {c["Id"] for c in client.api.containers(all=True)}
