"""Run the trainer CLI (``python -m news_signals train``) in a Docker container or as a local process.

Both backends run the very same command line, built in :func:`trainer_args`; the container's
entrypoint is ``python -m news_signals train`` (docker/trainer/Dockerfile), so the DockerOperator's
``command`` is just the arguments.

Configuration (environment; the DAG's ``trainer_backend`` Param overrides the backend per run):

- ``NEWS_SIGNALS_TRAINER_BACKEND`` = ``docker`` | ``local``; default ``docker`` when a Docker daemon
  is configured (``DOCKER_HOST`` set or ``/var/run/docker.sock`` present), else ``local``.
- ``NEWS_SIGNALS_TRAINER_IMAGE`` (default ``news-signals-trainer:latest``).
- ``NEWS_SIGNALS_TRAINER_QUEUE`` (default ``gpu``): the training task's Celery queue.
- ``NEWS_SIGNALS_TRAINER_GPU`` = 1 | 0 | auto (default auto = NVIDIA device nodes present): request
  every GPU via ``device_requests``; without a GPU they are left out.
- ``NEWS_SIGNALS_DOCKER_URL`` (default: the provider's, i.e. ``DOCKER_HOST`` or the local socket),
  ``NEWS_SIGNALS_DOCKER_CONN_ID`` (a registry login; default none).
- ``NEWS_SIGNALS_DOCKER_HOST_HOME``: where ``$NEWS_SIGNALS_HOME`` is on the Docker host, when the
  worker sees it at another path (bind-mount sources are host paths).
- ``NEWS_SIGNALS_TRAIN_TIMEOUT_H`` (default 6): the training tasks' execution_timeout.
- ``NEWS_SIGNALS_TRAINER_SECRET_ENV``: comma-separated names of worker environment variables to pass
  to the container as ``private_environment`` (never rendered, never logged); the
  ``huggingface_default`` connection's password, when it exists, becomes ``HF_TOKEN``.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from news_signals.core.config import Settings, default_home

log = logging.getLogger(__name__)

DEFAULT_IMAGE = "news-signals-trainer:latest"
BACKENDS = ("docker", "local")
GPU_POOL = "gpu"
CONTAINER_SNAPSHOT = "/snapshot"
CONTAINER_OUT = "/out"
CONTAINER_BASE_MODEL = "/base_model"


class TrainerError(RuntimeError):
    """The trainer exited non-zero; the message carries the last lines of its output."""


def trainer_image() -> str:
    return Settings.from_env().trainer_image or DEFAULT_IMAGE


def docker_configured() -> bool:
    return bool(os.environ.get("DOCKER_HOST")) or Path("/var/run/docker.sock").exists()


def default_backend() -> str:
    """``NEWS_SIGNALS_TRAINER_BACKEND`` if set, else docker when a daemon is configured, else local."""
    backend = Settings.from_env().trainer_backend
    if backend:
        if backend not in BACKENDS:
            raise ValueError(f"NEWS_SIGNALS_TRAINER_BACKEND={backend!r}; use one of {BACKENDS}")
        return backend
    return "docker" if docker_configured() else "local"


def resolve_backend(requested: str | None) -> str:
    """The Param value (``auto`` / ``docker`` / ``local``) resolved against the configuration."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return default_backend()
    if requested not in BACKENDS:
        raise ValueError(f"trainer_backend {requested!r}: use auto, docker or local")
    return requested


NVIDIA_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0")


def gpu_available() -> bool:
    """An NVIDIA GPU on this machine (its device nodes exist): cheap enough for DAG parsing."""
    return any(Path(node).exists() for node in NVIDIA_DEVICE_NODES)


def use_gpu_default() -> bool:
    """``NEWS_SIGNALS_TRAINER_GPU`` = 1 | 0 | auto (default auto: :func:`gpu_available`).

    Without a GPU, device_requests must be left out: the daemon refuses to start a container that asks
    for a GPU it cannot give. Set 1 where the workers see no GPU but the Docker host has one (compose).
    """
    value = Settings.from_env().trainer_gpu
    if value in ("", "auto"):
        return gpu_available()
    return value not in ("0", "false", "no")


def gpu_device_requests(use_gpu: bool) -> list[Any] | None:
    """``[DeviceRequest(count=-1, capabilities=[["gpu"]])]`` when GPUs are wanted, else None."""
    if not use_gpu:
        return None
    from docker.types import DeviceRequest

    return [DeviceRequest(count=-1, capabilities=[["gpu"]])]


def train_timeout() -> timedelta:
    return timedelta(hours=Settings.from_env().train_timeout_h)


@dataclass(frozen=True)
class TrainJob:
    """What to train: paths on this machine plus the trainer options (all plain values)."""

    snapshot_dir: str
    out_dir: str
    base_model: str = "minilm"
    epochs: int = 3
    sample: int | None = None
    seed: int = 13
    threads: int | None = None
    confidence_mode: str | None = None
    model_name: str | None = None
    languages: str = "auto"  # the trainer's --languages
    train_path: str = "fast"  # the trainer's --train-path


def trainer_args(
    job: TrainJob, *, snapshot: str | None = None, out: str | None = None, base_model: str | None = None
) -> list[str]:
    """The trainer CLI arguments (after ``train``); paths may be replaced by container paths."""
    args = [
        "--snapshot",
        snapshot or job.snapshot_dir,
        "--base-model",
        base_model or job.base_model,
        "--out",
        out or job.out_dir,
        "--epochs",
        str(int(job.epochs)),
        "--seed",
        str(int(job.seed)),
        "--train-path",
        job.train_path,
    ]
    if job.sample:
        args += ["--sample", str(int(job.sample))]
    if job.threads:
        args += ["--threads", str(int(job.threads))]
    if job.confidence_mode:
        args += ["--confidence-mode", job.confidence_mode]
    if job.model_name:
        args += ["--model-name", job.model_name]
    if job.languages and job.languages != "auto":
        args += ["--languages", job.languages]
    return args


def local_command(job: TrainJob) -> list[str]:
    return [sys.executable, "-m", "news_signals", "train", *trainer_args(job)]


def run_local(job: TrainJob, timeout_s: float | None = None, tail_lines: int = 30) -> Path:
    """Run the trainer as a subprocess, streaming its output to this log; TrainerError on failure."""
    cmd = local_command(job)
    log.info("local trainer: %s", " ".join(cmd))
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail: deque[str] = deque(maxlen=tail_lines)
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                line = line.rstrip()
                tail.append(line)
                log.info("[trainer] %s", line)
            code = proc.wait(timeout=timeout_s)
        except BaseException:
            proc.kill()  # a timeout or task kill must not leave the trainer running
            proc.wait()
            raise
    if code != 0:
        raise TrainerError(f"trainer exited with {code}; last output:\n" + "\n".join(tail))
    from news_signals.model.artifact import MANIFEST

    out = Path(job.out_dir)
    if not (out / MANIFEST).is_file():
        raise TrainerError(f"trainer finished but {out} holds no model artifact ({MANIFEST} missing)")
    return out


# ---- Docker ------------------------------------------------------------------------------------
def host_path(path: str) -> str:
    """``path`` as the Docker host sees it (``NEWS_SIGNALS_DOCKER_HOST_HOME`` replaces the home prefix)."""
    host_home = Settings.from_env().docker_host_home
    home = default_home().rstrip("/")
    if host_home and path.startswith(home):
        return host_home.rstrip("/") + path[len(home) :]
    return path


def trainer_mounts(snapshot_src: str, out_src: str, base_model_src: str) -> list[Any]:
    """Snapshot read-only, output read-write, base-model directory read-only (sources may be templates)."""
    from docker.types import Mount

    return [
        Mount(target=CONTAINER_SNAPSHOT, source=snapshot_src, type="bind", read_only=True),
        Mount(target=CONTAINER_OUT, source=out_src, type="bind", read_only=False),
        Mount(target=CONTAINER_BASE_MODEL, source=base_model_src, type="bind", read_only=True),
    ]


def docker_operator_kwargs(
    *,
    command: list[str] | str,
    snapshot_src: str,
    out_src: str,
    base_model_src: str,
    use_gpu: bool | None = None,
    image: str | None = None,
) -> dict[str, Any]:
    """Every DockerOperator argument of the training task, in one place."""
    settings = Settings.from_env()
    kwargs: dict[str, Any] = {
        "image": image or trainer_image(),
        "command": command,
        "mounts": trainer_mounts(snapshot_src, out_src, base_model_src),
        "device_requests": gpu_device_requests(use_gpu_default() if use_gpu is None else use_gpu),
        "auto_remove": "success",
        "mount_tmp_dir": False,
        "pool": GPU_POOL,
        "pool_slots": 1,
        "queue": settings.trainer_queue,  # CeleryExecutor: the worker beside the GPU daemon (compose: airflow-worker-gpu)
        "execution_timeout": train_timeout(),
        "environment": {"PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        "tty": False,
        "force_pull": False,
    }
    if settings.docker_url:
        kwargs["docker_url"] = settings.docker_url
    if settings.docker_conn_id:
        kwargs["docker_conn_id"] = settings.docker_conn_id
    return kwargs


def trainer_secrets() -> dict[str, str]:
    """Secrets for the container, read at run time only (never at DAG parse, never in XCom)."""
    from news_signals.core.connections import get_connection

    secrets: dict[str, str] = {}
    hf = get_connection("huggingface_default")
    if hf is not None and hf.password:
        secrets["HF_TOKEN"] = hf.password
    for name in Settings.from_env().trainer_secret_env:
        if os.environ.get(name):
            secrets[name] = os.environ[name]
    return secrets


@functools.cache
def trainer_operator_class() -> type:
    """DockerOperator that fills ``private_environment`` from :func:`trainer_secrets` when it runs."""
    from airflow.providers.docker.operators.docker import DockerOperator

    class TrainerDockerOperator(DockerOperator):
        """The trainer container; secrets are attached at execute time, so the DAG file holds none."""

        def execute(self, context: Any) -> Any:
            self._private_environment = {**(self._private_environment or {}), **trainer_secrets()}
            if self.user is None:  # the worker's uid: files in the mounted work dir stay the worker's
                self.user = f"{os.getuid()}:{os.getgid()}"
            return super().execute(context)

    TrainerDockerOperator.__module__ = __name__
    return TrainerDockerOperator
