"""The Airflow side of the Hopsworks boundary: a registry and a feature store that call the worker.

Each proxy instance owns one long-lived worker process (``<hopsworks python> -m
news_signals.isolated.worker``), started at its first call and spoken to in JSON lines
(protocol: :mod:`news_signals.isolated.worker`). The login keyword arguments, API key included,
are the first line written to the worker's stdin: never argv, never the worker's environment
(``AIRFLOW_CONN_HOPSWORKS_DEFAULT`` is removed from it), never a log line or an XCom value.
DataFrames cross as parquet files in a private temp directory.

The interpreter: ``$NEWS_SIGNALS_HOPSWORKS_PYTHON``, else ``.venv-hopsworks/bin/python`` in the
project (``make hopsworks-venv``), else ``/opt/hopsworks-venv/bin/python`` (the Airflow image).
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from news_signals.core.hopsworks import DEFAULT_CONN_ID, HopsworksConfigError
from news_signals.features.store.base import FeatureGroupSpec, FeatureStore, FeatureValidationError
from news_signals.registry.base import ModelRegistry, ModelVersion, RegistryError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

PYTHON_ENV = "NEWS_SIGNALS_HOPSWORKS_PYTHON"
TIMEOUT_ENV = "NEWS_SIGNALS_HOPSWORKS_TIMEOUT"
IMAGE_PYTHON = "/opt/hopsworks-venv/bin/python"
_ERRORS: dict[str, type[BaseException]] = {
    "RegistryError": RegistryError,
    "FeatureValidationError": FeatureValidationError,
    "HopsworksConfigError": HopsworksConfigError,
    **{n: getattr(builtins, n) for n in ("ValueError", "RuntimeError", "TypeError", "KeyError", "LookupError",
                                         "FileNotFoundError", "PermissionError", "TimeoutError", "ConnectionError")},
}


class HopsworksWorkerError(RuntimeError):
    """The worker failed in a way that has no matching exception type here (or it died)."""


def hopsworks_python() -> Path:
    """The isolated interpreter; HopsworksConfigError naming the fix when there is none."""
    from news_signals.core.config import PROJECT_ROOT, Settings

    configured = Settings.from_env().hopsworks_python
    candidates = [Path(configured)] if configured else [PROJECT_ROOT / ".venv-hopsworks" / "bin" / "python",
                                                        Path(IMAGE_PYTHON)]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise HopsworksConfigError(
        f"no Hopsworks interpreter at {' or '.join(str(p) for p in candidates)}: the Hopsworks client runs in its "
        f"own venv; build it with `make hopsworks-venv` (or set {PYTHON_ENV} to its bin/python)"
    )


def _login_kwargs(conn_id: str) -> dict[str, Any]:
    from news_signals.core.hopsworks import connection, login_kwargs

    return login_kwargs(connection(conn_id))


class WorkerClient:
    """One worker process: send a request, read its answer (JSON lines), map errors back to our types."""

    def __init__(self, init: dict[str, Any], python: Path | None = None) -> None:
        self._init = init  # holds the login (secret): only ever written to the worker's stdin
        self._python = python
        self._proc: subprocess.Popen | None = None
        self._answers: queue.Queue = queue.Queue()
        self._stderr_tail: deque[str] = deque(maxlen=30)
        self._lock = threading.Lock()
        from news_signals.core.config import Settings

        self.timeout = Settings.from_env().hopsworks_timeout_s

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _start(self) -> None:
        python = self._python or hopsworks_python()
        env = {k: v for k, v in os.environ.items() if k.upper() != f"AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}"}
        self._proc = subprocess.Popen(
            [str(python), "-m", "news_signals.isolated.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, encoding="utf-8", bufsize=1, env=env,
        )
        proc = self._proc
        threading.Thread(target=self._read_stdout, args=(proc,), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc,), daemon=True).start()
        weakref.finalize(self, _stop, proc)
        log.info("started the Hopsworks worker (pid %s) on %s", proc.pid, python)
        self._send(self._init)

    def _read_stdout(self, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            self._answers.put(line)
        self._answers.put(None)

    def _read_stderr(self, proc: subprocess.Popen) -> None:
        for line in proc.stderr:
            line = line.rstrip()
            if line:
                self._stderr_tail.append(line)
                log.info("[hopsworks worker] %s", line)

    def _send(self, msg: dict[str, Any]) -> Any:
        assert self._proc is not None and self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps(msg, default=str) + "\n")
            self._proc.stdin.flush()
            line = self._answers.get(timeout=self.timeout)
        except queue.Empty:
            self.close(kill=True)
            raise HopsworksWorkerError(f"the Hopsworks worker did not answer {msg.get('op')} within {self.timeout:.0f} s "
                                       f"({TIMEOUT_ENV}); it was stopped") from None
        except (BrokenPipeError, OSError):
            line = None
        if line is None:
            code = self._proc.wait(timeout=30)
            self._proc = None
            tail = "\n".join(self._stderr_tail)
            raise HopsworksWorkerError(f"the Hopsworks worker exited (code {code}) during {msg.get('op')}: {tail[-2000:]}")
        answer = json.loads(line)
        if answer.get("ok"):
            return answer.get("result")
        err = answer.get("error") or {}
        exc_type = _ERRORS.get(err.get("type", ""))
        message = err.get("message", "")
        if exc_type is None:
            raise HopsworksWorkerError(f"{err.get('type')}: {message}")
        raise exc_type(message)

    def call(self, op: str, **args: Any) -> Any:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            return self._send({"op": op, "args": args})

    def close(self, kill: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if not kill and proc.poll() is None:
            try:
                proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                proc.stdin.flush()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        try:
            if stream:
                stream.close()
        except OSError:
            pass


def worker_versions(python: Path | None = None) -> dict[str, Any]:
    """Versions in the isolated interpreter (hopsworks, GX, pandas, ...), asked of a short-lived worker."""
    client = WorkerClient({"op": "init", "kind": "probe", "model_name": None, "login": {}}, python=python)
    try:
        return client.call("version")
    finally:
        client.close()


class HopsworksRegistryProxy(ModelRegistry):
    """``ModelRegistry`` whose every call runs ``HopsworksRegistry`` in the isolated interpreter."""

    kind = "hopsworks"

    def __init__(self, model_name: str, conn_id: str = DEFAULT_CONN_ID, login: dict[str, Any] | None = None) -> None:
        self.name = model_name
        self._conn_id = conn_id
        self._login = login
        self._client: WorkerClient | None = None

    @property
    def client(self) -> WorkerClient:
        if self._client is None:
            login = self._login if self._login is not None else _login_kwargs(self._conn_id)
            self._client = WorkerClient({"op": "init", "kind": "registry", "model_name": self.name, "login": login})
        return self._client

    def _call(self, method: str, **args: Any) -> Any:
        return self.client.call(f"registry.{method}", **args)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def register(self, model_dir, metrics, gate=None, description="") -> ModelVersion:
        return ModelVersion(**self._call("register", model_dir=str(Path(model_dir).resolve()), metrics=metrics,
                                         gate=gate, description=description))

    def production(self) -> ModelVersion | None:
        got = self._call("production")
        return None if got is None else ModelVersion(**got)

    def promote(self, version: int, reason: str, *, by: str = "", action: str = "promote") -> ModelVersion:
        return ModelVersion(**self._call("promote", version=int(version), reason=reason, by=by, action=action))

    def promotions(self) -> list[dict[str, Any]]:
        return self._call("promotions")

    def history(self) -> list[ModelVersion]:
        return [ModelVersion(**d) for d in self._call("history")]

    def get(self, version: int) -> ModelVersion:
        return ModelVersion(**self._call("get", version=int(version)))

    def best(self, metric: str = "macro_f1") -> ModelVersion | None:
        got = self._call("best", metric=metric)
        return None if got is None else ModelVersion(**got)

    def download(self, version: int, dest: str | Path | None = None) -> Path:
        from news_signals.registry.local import cache_root

        target = Path(dest) if dest is not None else cache_root() / self.name / str(int(version))
        return Path(self._call("download", version=int(version), dest=str(target.resolve())))


class HopsworksFeatureStoreProxy(FeatureStore):
    """``FeatureStore`` whose writes and reads run ``HopsworksFeatureStore`` in the isolated interpreter.

    ``upsert`` validates the rows here first (FeatureStore.upsert, the same GX suite), so a bad batch
    never leaves this process; the worker then writes it with the suite attached (STRICT) on the server.
    """

    kind = "hopsworks"

    def __init__(self, conn_id: str = DEFAULT_CONN_ID, login: dict[str, Any] | None = None) -> None:
        # resolved now so a missing or incomplete connection fails where the store is chosen
        login = login if login is not None else _login_kwargs(conn_id)
        self._client = WorkerClient({"op": "init", "kind": "feature_store", "model_name": None, "login": login})
        self._tmp = tempfile.mkdtemp(prefix="news-signals-fs-")
        weakref.finalize(self, shutil.rmtree, self._tmp, True)
        self._describe: str | None = None

    @property
    def client(self) -> WorkerClient:
        return self._client

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        if self._describe is None:
            self._describe = self._client.call("feature_store.describe")
        return self._describe

    @staticmethod
    def _spec(spec: FeatureGroupSpec) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(spec)

    def _upsert(self, spec: FeatureGroupSpec, rows: pd.DataFrame) -> None:
        path = Path(tempfile.mkstemp(suffix=".parquet", dir=self._tmp)[1])
        try:
            rows.to_parquet(path, index=False)
            self._client.call("feature_store.upsert", spec=self._spec(spec), path=str(path))
        finally:
            path.unlink(missing_ok=True)

    def read(self, spec: FeatureGroupSpec) -> pd.DataFrame:
        import pandas as pd

        path = Path(tempfile.mkstemp(suffix=".parquet", dir=self._tmp)[1])
        try:
            self._client.call("feature_store.read", spec=self._spec(spec), path=str(path))
            return pd.read_parquet(path)
        finally:
            path.unlink(missing_ok=True)
