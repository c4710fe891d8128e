"""Check the installation, storage and services; one line per check: OK, WARN or FAIL with a fix.

Versions of the pinned stack, the isolated Hopsworks interpreter and its hopsworks version, the storage root (writable), the model registry and feature store
(local directories, or Hopsworks when its connection exists: a short HTTP probe, never a login),
the Docker daemon and the GPU (for the trainer container), the GDELT endpoint (live or replay) and
the on-call webhook. Exits 1 when any check FAILs, so scripts and CI can gate on it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass

log = logging.getLogger(__name__)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
PACKAGES = (
    ("python", None),
    ("airflow", "apache-airflow"),
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("great_expectations", "great-expectations"),
)


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        out = f"{self.status:<4}  {self.name:<18} {self.detail}"
        return out + (f"\n      fix: {self.fix}" if self.fix and self.status != OK else "")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds per network probe (default 5)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--skip", action="append", default=[], metavar="CHECK",
                        help="skip a check by name (versions, hopsworks, storage, registry, features, docker, gpu, gdelt, webhook)")


def run(args: argparse.Namespace) -> int:
    # stdout carries only the report (--json is read by scripts): whatever Airflow logs while a check imports it
    # (Airflow 3.3's structlog writes to stdout) goes to stderr
    with contextlib.redirect_stdout(sys.stderr):
        checks = run_checks(timeout=args.timeout, skip=set(args.skip))
    if args.json:
        print(json.dumps([asdict(c) for c in checks], indent=2))
    else:
        for c in checks:
            print(c.line())
        fails = sum(c.status == FAIL for c in checks)
        warns = sum(c.status == WARN for c in checks)
        print(f"\n{len(checks)} checks: {fails} FAIL, {warns} WARN", file=sys.stderr)
    return 1 if any(c.status == FAIL for c in checks) else 0


def run_checks(timeout: float = 5.0, skip: set[str] | None = None) -> list[Check]:
    """Every check, in order; a check that crashes becomes a FAIL line instead of a traceback."""
    from news_signals.core.config import Settings

    settings = Settings.from_env()
    skip = skip or set()
    steps: list[tuple[str, Callable[[], list[Check]]]] = [
        ("versions", check_versions),
        ("hopsworks", lambda: [check_hopsworks_env(settings, timeout)]),
        ("storage", lambda: [check_storage(settings)]),
        ("registry", lambda: [check_registry(settings, timeout)]),
        ("features", lambda: [check_feature_store(settings, timeout)]),
        ("docker", lambda: [check_docker(timeout)]),
        ("gpu", lambda: [check_gpu()]),
        ("gdelt", lambda: [check_gdelt(settings, timeout)]),
        ("webhook", lambda: [check_webhook()]),
    ]
    out: list[Check] = []
    for name, step in steps:
        if name in skip:
            continue
        try:
            out.extend(step())
        except Exception as exc:  # the doctor must finish and say what broke
            out.append(Check(name, FAIL, f"check crashed: {type(exc).__name__}: {exc}", "run with -v and report it"))
    return out


# ---- checks --------------------------------------------------------------------------------------
def check_versions() -> list[Check]:
    from importlib.metadata import PackageNotFoundError, version

    out = [Check("python", OK, sys.version.split()[0])]
    for name, dist in PACKAGES[1:]:
        try:
            out.append(Check(name, OK, version(dist)))
        except PackageNotFoundError:
            out.append(Check(name, FAIL, "not installed", "make install  (pip install -r requirements.txt -c constraints.txt)"))
    return out


def check_hopsworks_env(settings, timeout: float) -> Check:
    """The isolated Hopsworks interpreter and its hopsworks version (asked of a short-lived worker; no login)."""
    from news_signals.core.hopsworks import HopsworksConfigError, choose_backend
    from news_signals.isolated.proxy import worker_versions

    needed = "hopsworks" in (choose_backend(settings.registry_backend), choose_backend(settings.feature_store_backend))
    try:
        versions = worker_versions()
    except HopsworksConfigError as exc:
        return Check("hopsworks", FAIL if needed else WARN, str(exc).split(":")[0],
                     "make hopsworks-venv (or set NEWS_SIGNALS_HOPSWORKS_PYTHON to the venv's bin/python)")
    except Exception as exc:
        return Check("hopsworks", FAIL if needed else WARN, f"the isolated interpreter failed: {type(exc).__name__}: {exc}",
                     "rebuild it: rm -rf .venv-hopsworks && make hopsworks-venv")
    if not versions.get("hopsworks"):
        return Check("hopsworks", FAIL if needed else WARN, f"{versions['executable']} has no hopsworks package",
                     "make hopsworks-venv  (pip install -r requirements-hopsworks.txt -c constraints-hopsworks.txt)")
    return Check("hopsworks", OK, f"{versions['hopsworks']} in {versions['executable']} (isolated; SQLAlchemy "
                 f"{versions.get('SQLAlchemy')})")


def check_storage(settings) -> Check:
    """Write, read back and delete a probe file under the storage root (the same atomic path as real writes)."""
    from news_signals.core.storage import Storage

    try:
        st = Storage(settings.home)
        probe = st.path(f".doctor-{uuid.uuid4().hex}")
        st.write_bytes(probe, b"ok")
        with st.fs.open(probe, "rb") as fh:
            ok = fh.read() == b"ok"
        st.fs.rm(probe)
    except Exception as exc:
        return Check("storage", FAIL, f"{settings.home} is not writable: {type(exc).__name__}: {exc}",
                     "set NEWS_SIGNALS_HOME to a writable directory (or s3://bucket/prefix with credentials)")
    if not ok:
        return Check("storage", FAIL, f"{settings.home}: a probe file read back different bytes", "check the filesystem")
    days = st.partition_dates()
    return Check("storage", OK, f"{st.url(st.root)} writable; {len(days)} daily partition(s)"
                 + (f", {days[0]} .. {days[-1]}" if days else ""))


def check_registry(settings, timeout: float) -> Check:
    from news_signals.registry import registry_backend

    backend = registry_backend()
    if backend == "hopsworks":
        return _hopsworks_probe("registry", timeout)
    from news_signals.registry import LocalRegistry

    reg = LocalRegistry(settings.model_name)
    versions = reg.history()
    prod = reg.production()
    if not versions:
        return Check("registry", WARN, f"local {reg.storage.url(reg.root)}: no model registered yet",
                     "trigger monthly_retrain (airflow dags trigger monthly_retrain); until then classify falls back to keywords")
    return Check("registry", OK, f"local {reg.storage.url(reg.root)}: {len(versions)} version(s), production "
                 + (f"v{prod.version}" if prod else "none"))


def check_feature_store(settings, timeout: float) -> Check:
    from news_signals.core.hopsworks import choose_backend
    from news_signals.core.storage import Storage

    if choose_backend(settings.feature_store_backend) == "hopsworks":
        return _hopsworks_probe("feature store", timeout)
    st = Storage(settings.home)
    base = st.path("features")
    groups = [p.rsplit("/", 1)[-1] for p in st.fs.ls(base, detail=False)] if st.fs.exists(base) else []
    if not groups:
        return Check("feature store", WARN, f"local {st.url(base)}: no feature group written yet",
                     "runs after the first signal_feature_pipeline run (airflow dags trigger signal_feature_pipeline)")
    return Check("feature store", OK, f"local {st.url(base)}: {', '.join(sorted(groups))}")


def _hopsworks_probe(what: str, timeout: float) -> Check:
    """An HTTPS request to the Hopsworks host with a timeout; a login could prompt or hang, so none here."""
    import requests

    from news_signals.core.connections import get_connection
    from news_signals.core.hopsworks import DEFAULT_CONN_ID

    conn = get_connection(DEFAULT_CONN_ID)
    if conn is None:
        return Check(what, FAIL, f"Hopsworks forced but connection {DEFAULT_CONN_ID!r} is missing",
                     f"define AIRFLOW_CONN_{DEFAULT_CONN_ID.upper()}='hopsworks://:API_KEY@host:443/project' or unset the override")
    host = conn.host or ""
    url = host if "://" in host else f"{conn.extra.get('scheme', 'https')}://{host}:{conn.port or 443}"
    fix = "check the host/port of connection hopsworks_default and the network; see docs/RUNBOOK.md 'Registry down'"
    if not conn.password:
        return Check(what, FAIL, f"connection {DEFAULT_CONN_ID!r} has no API key (password)", "set the API key as the password")
    try:
        resp = requests.get(url, timeout=timeout, verify=str(conn.extra.get("hostname_verification", "true")).lower() != "false")
    except requests.RequestException as exc:
        return Check(what, FAIL, f"Hopsworks at {host} unreachable ({type(exc).__name__})", fix)
    if resp.status_code >= 500:
        return Check(what, FAIL, f"Hopsworks at {host} answered HTTP {resp.status_code}", fix)
    return Check(what, OK, f"Hopsworks at {host} reachable (HTTP {resp.status_code}; login not attempted)")


def check_docker(timeout: float) -> Check:
    try:
        import docker
    except ImportError:  # the doctor's job: an incomplete install is a line with its fix, not a traceback
        return Check("docker", WARN, "the docker SDK is not installed", "make install (apache-airflow-providers-docker)")
    try:
        client = docker.from_env(timeout=max(1, int(timeout)))
        client.ping()
        info = client.version()
        client.close()
    except Exception as exc:
        return Check("docker", WARN, f"no Docker daemon answered ({type(exc).__name__}); the trainer container cannot run",
                     "start dockerd (scripts/ensure_dockerd.sh) or set DOCKER_HOST; training can still run locally")
    return Check("docker", OK, f"daemon {info.get('Version', '?')} (API {info.get('ApiVersion', '?')})")


def check_gpu() -> Check:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return Check("gpu", OK, f"{len(names)} CUDA device(s): {', '.join(names)}")
    return Check("gpu", WARN, f"no CUDA device visible to torch {torch.__version__}; training runs on CPU",
                 "on a GPU host install the NVIDIA driver + container toolkit; see docker-compose.yaml (GPU)")


def check_gdelt(settings, timeout: float) -> Check:
    """One small DOC API query (1 record) against the configured endpoint: live GDELT or the replay server."""
    import requests

    from news_signals.daily.gdelt import resolve_endpoint

    url = resolve_endpoint(settings)
    fix = ("check the network, or point NEWS_SIGNALS_GDELT_URL at a replay server "
           "(python -m tools.gdelt_replay); see docs/RUNBOOK.md 'GDELT rate-limited or down'")
    params = {"query": "news", "mode": "artlist", "format": "json", "maxrecords": "1", "timespan": "1d"}
    try:
        resp = requests.get(url, params=params, timeout=timeout)
    except requests.RequestException as exc:
        return Check("gdelt", FAIL, f"{url} unreachable ({type(exc).__name__})", fix)
    if resp.status_code == 429:
        return Check("gdelt", WARN, f"{url} rate-limited us (HTTP 429)",
                     "wait a few minutes; keep NEWS_SIGNALS_GDELT_MIN_INTERVAL >= 5 s between requests")
    if resp.status_code >= 400:
        return Check("gdelt", FAIL, f"{url} answered HTTP {resp.status_code}", fix)
    kind = "JSON" if "json" in resp.headers.get("Content-Type", "") or resp.text.lstrip().startswith("{") else "non-JSON"
    if kind != "JSON":
        return Check("gdelt", WARN, f"{url} answered HTTP {resp.status_code} but not with JSON (maintenance page?)", fix)
    return Check("gdelt", OK, f"{url} answered HTTP {resp.status_code} with JSON")


def check_webhook() -> Check:
    from news_signals.core.connections import get_connection
    from news_signals.ops.oncall import WEBHOOK_CONN_ID, webhook_url

    conn = get_connection(WEBHOOK_CONN_ID)
    if conn is None:
        return Check("webhook", WARN, f"connection {WEBHOOK_CONN_ID!r} not set: task failures are only logged",
                     f"add an HTTP connection {WEBHOOK_CONN_ID} (URL in host or extra.url, token in password)")
    url = webhook_url(conn)
    if not url:
        return Check("webhook", FAIL, f"connection {WEBHOOK_CONN_ID!r} has no URL", "set host to the full URL or extra {\"url\": ...}")
    from urllib.parse import urlsplit

    # the URL itself may carry a secret (chat webhooks do): show only its host
    return Check("webhook", OK, f"{WEBHOOK_CONN_ID} -> host {urlsplit(url).hostname}" + (" (token set)" if conn.password else ""))
