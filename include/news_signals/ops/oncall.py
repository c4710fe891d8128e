"""On-call: a task failure callback that says what failed, where to look and how to re-run it.

``task_failure_callback`` goes into every DAG's ``default_args["on_failure_callback"]``. It logs a
short diagnosis (stage, logical date, inputs, artifacts, runbook section, re-run commands) and,
when the Airflow connection ``news_signals_webhook`` exists, POSTs the same diagnosis as JSON.
The webhook's token (connection password) and URL (often itself a secret) never reach a log, and
nothing here raises: a broken callback must not hide the original failure.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from news_signals.core.config import Settings

log = logging.getLogger(__name__)

WEBHOOK_CONN_ID = "news_signals_webhook"
WEBHOOK_TIMEOUT_S = 5.0
RUNBOOK = "docs/RUNBOOK.md"
_MAX_VALUE_CHARS = 200
_SECRET_KEY = re.compile(r"pass|secret|token|api_?key|credential|auth", re.IGNORECASE)


@dataclass(frozen=True)
class Stage:
    """A failure mode of the pipeline: its runbook section and the artifacts worth opening."""

    key: str
    title: str  # the RUNBOOK.md section heading
    task_patterns: tuple[str, ...]  # substrings of task ids that belong to this stage
    error_patterns: tuple[str, ...] = ()  # substrings of exception type names / messages

    @property
    def anchor(self) -> str:
        """GitHub-style anchor of the runbook heading."""
        slug = re.sub(r"[^a-z0-9 -]", "", self.title.lower()).strip()
        return f"{RUNBOOK}#{slug.replace(' ', '-')}"


# Order matters: the first stage whose error pattern matches wins (the exception and its causes:
# the DAGs re-raise as AirflowFailException "from" the real error), then the first task-id match.
STAGES: tuple[Stage, ...] = (
    Stage("gdelt", "GDELT rate-limited or down", ("fetch",),
          ("GdeltFetchError", "RateLimitError", "rate limit", "ConnectTimeout", "ReadTimeout")),
    Stage("feature_store", "Feature-store write failure", ("feature", "classify", "write_", "vibe"),
          ("FeatureValidationError", "for feature group", "feature store")),
    Stage("validation", "Validation failure", ("validat",),
          ("BatchValidationError", "SnapshotValidationError", "quarantine")),
    Stage("not_enough_data", "Not enough data", ("snapshot", "target_dates"),
          ("SnapshotError", "PartitionMissing", "too little data", "no daily partition")),
    Stage("trainer", "Trainer crash or OOM", ("train", "evaluat"),
          ("TrainerError", "OutOfMemoryError", "out of memory", "DockerContainerFailedException",
           "exited with 137", "MemoryError")),
    Stage("registry", "Registry down", ("register", "registry", "resolve_model"),
          ("RegistryError", "ModelUnavailable", "HopsworksConfigError", "RestAPIError")),
    Stage("gate", "Gate refused", ("gate", "promot"), ("gate.json says keep",)),
)
UNKNOWN_STAGE = Stage("unknown", "Triage", ())


@dataclass
class Diagnosis:
    """Everything the on-call engineer needs in the first minute; JSON-serialisable."""

    dag_id: str
    task_id: str
    run_id: str
    logical_date: str | None
    try_number: int | None
    stage: str
    stage_title: str
    runbook: str
    error: str
    inputs: dict[str, str] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    rerun: list[str] = field(default_factory=list)
    log_url: str | None = None

    def summary(self) -> str:
        """One line for chat: what failed, when and why."""
        when = self.logical_date or self.run_id
        return f"[news-signals] {self.dag_id}.{self.task_id} failed ({self.stage_title}) for {when}: {self.error}"

    def to_text(self) -> str:
        lines = [
            self.summary(),
            f"  stage:     {self.stage} -> {self.runbook}",
            f"  run:       {self.run_id} (try {self.try_number})",
        ]
        if self.inputs:
            lines.append("  inputs:    " + ", ".join(f"{k}={v}" for k, v in self.inputs.items()))
        lines += [f"  look at:   {a}" for a in self.artifacts]
        lines += [f"  re-run:    {c}" for c in self.rerun]
        if self.log_url:
            lines.append(f"  log:       {self.log_url}")
        return "\n".join(lines)


def classify_stage(task_id: str, error: BaseException | str | None) -> Stage:
    """The failure mode, from the exception first (more specific) and the task id second."""
    text = "" if error is None else f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    chain = [type(e).__name__ for e in _exception_chain(error)] if isinstance(error, BaseException) else []
    haystack = (text + " " + " ".join(chain)).lower()
    for stage in STAGES:
        if any(p.lower() in haystack for p in stage.error_patterns):
            return stage
    tid = task_id.lower()
    for stage in STAGES:
        if any(p in tid for p in stage.task_patterns):
            return stage
    return UNKNOWN_STAGE


def diagnose(context: Mapping[str, Any], settings: Settings | None = None) -> Diagnosis:
    """Build the diagnosis from an Airflow task context (Airflow 3 keys: dag, ti, task, params, ...)."""
    settings = settings or Settings.from_env()
    ti = context.get("ti") or context.get("task_instance")
    task = context.get("task") or getattr(ti, "task", None)
    dag = context.get("dag")
    dag_id = str(getattr(ti, "dag_id", None) or getattr(dag, "dag_id", "?"))
    task_id = str(getattr(ti, "task_id", None) or getattr(task, "task_id", "?"))
    run_id = str(context.get("run_id") or getattr(ti, "run_id", "?"))
    logical = context.get("logical_date")
    logical_date = _iso(logical)
    error = context.get("exception")
    stage = classify_stage(task_id, error)
    params = dict(context.get("params") or {})
    inputs = _inputs(params, task)
    day = _day(params, logical)

    return Diagnosis(
        dag_id=dag_id,
        task_id=task_id,
        run_id=run_id,
        logical_date=logical_date,
        try_number=getattr(ti, "try_number", None),
        stage=stage.key,
        stage_title=stage.title,
        runbook=stage.anchor,
        error=_error_line(error),
        inputs=inputs,
        artifacts=_artifacts(stage, settings, day, task_id),
        rerun=rerun_commands(dag_id, task_id, logical_date, run_id),
        log_url=getattr(ti, "log_url", None) if isinstance(getattr(ti, "log_url", None), str) else None,
    )


def rerun_commands(dag_id: str, task_id: str, logical_date: str | None, run_id: str) -> list[str]:
    """Exact commands: clear the task in its run (scheduler re-runs it), or run it in the foreground."""
    cmds = []
    if logical_date:
        day = logical_date[:10]
        cmds.append(f"airflow tasks clear {dag_id} -t '^{task_id}$' -s {day} -e {day} -y")
    cmds.append(f"airflow tasks test {dag_id} {task_id} {logical_date if logical_date else run_id}")
    if logical_date:
        cmds.append(f"airflow dags test {dag_id} {logical_date[:10]}")
    return cmds


def task_failure_callback(context: Mapping[str, Any]) -> Diagnosis | None:
    """Airflow ``on_failure_callback``: log the diagnosis and notify the webhook; never raises."""
    try:
        diagnosis = diagnose(context)
    except Exception:  # a broken context must not mask the task's own error
        log.exception("news-signals: could not build a failure diagnosis")
        return None
    log.error("%s", diagnosis.to_text())
    notify_webhook(diagnosis)
    return diagnosis


def notify_webhook(diagnosis: Diagnosis, conn_id: str = WEBHOOK_CONN_ID, timeout: float = WEBHOOK_TIMEOUT_S) -> bool:
    """POST the diagnosis to the webhook connection, if one is configured. True when it was accepted.

    URL: ``extra["url"]``, else ``host`` when it has a scheme, else ``https://host[:port]/schema``.
    Token: the connection password, sent as ``Authorization: Bearer <token>`` (header name and
    scheme overridable with ``extra["auth_header"]`` / ``extra["auth_scheme"]``).
    """
    from news_signals.core.connections import get_connection

    try:
        conn = get_connection(conn_id)
    except Exception as exc:
        log.warning("webhook %s: could not read the connection (%s); not notified", conn_id, type(exc).__name__)
        return False
    if conn is None:
        log.info("webhook %s not configured; add the connection to be notified of failures", conn_id)
        return False
    url = webhook_url(conn)
    if not url:
        log.warning("webhook %s has no URL: set extra {\"url\": ...} or host", conn_id)
        return False
    host = _host_of(url)
    headers = {"Content-Type": "application/json"}
    if conn.password:
        headers[conn.extra.get("auth_header", "Authorization")] = (
            f"{conn.extra.get('auth_scheme', 'Bearer')} {conn.password}".strip()
        )
    payload = {"text": diagnosis.summary(), "diagnosis": asdict(diagnosis)}
    try:
        import requests

        resp = requests.post(url, data=json.dumps(payload, default=str), headers=headers, timeout=timeout)
    except Exception as exc:  # network down, DNS, timeout: report without the URL or token
        log.warning("webhook %s (host %s) not notified: %s", conn_id, host, type(exc).__name__)
        return False
    if resp.status_code >= 400:
        log.warning("webhook %s (host %s) answered HTTP %s; not notified", conn_id, host, resp.status_code)
        return False
    log.info("webhook %s (host %s) notified: HTTP %s", conn_id, host, resp.status_code)
    return True


def webhook_url(conn: Any) -> str | None:
    extra = conn.extra or {}
    if extra.get("url"):
        return str(extra["url"])
    host = conn.host or ""
    if "://" in host:
        return host
    if not host:
        return None
    port = f":{conn.port}" if conn.port else ""
    path = f"/{conn.schema.lstrip('/')}" if conn.schema else ""
    return f"{extra.get('scheme', 'https')}://{host}{port}{path}"


# ---- helpers ---------------------------------------------------------------------------------
def _host_of(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "?"


def _exception_chain(error: BaseException) -> list[BaseException]:
    out, seen = [], set()
    cur: BaseException | None = error
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _error_line(error: Any) -> str:
    if error is None:
        return "no exception in the context (see the task log)"
    if isinstance(error, BaseException):
        first = (str(error).strip().splitlines() or [""])[0]
        return _short(f"{type(error).__name__}: {first}" if first else type(error).__name__, 300)
    return _short(str(error).strip().splitlines()[0] if str(error).strip() else "unknown error", 300)


def _short(value: str, limit: int = _MAX_VALUE_CHARS) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _inputs(params: Mapping[str, Any], task: Any) -> dict[str, str]:
    """Params and the task's own (rendered) keyword arguments, short and with secret-like keys masked."""
    out: dict[str, str] = {}
    sources: list[Mapping[str, Any]] = [params]
    op_kwargs = getattr(task, "op_kwargs", None)
    if isinstance(op_kwargs, Mapping):
        sources.append(op_kwargs)
    for source in sources:
        for key, value in source.items():
            key = str(key)
            out[key] = "***" if _SECRET_KEY.search(key) else _short(_repr(value))
    return out


def _repr(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _day(params: Mapping[str, Any], logical: Any) -> str | None:
    for key in ("day", "date", "partition_date"):
        if params.get(key):
            return str(params[key])[:10]
    return _iso(logical)[:10] if logical is not None else None


def _artifacts(stage: Stage, settings: Settings, day: str | None, task_id: str = "") -> list[str]:
    """Where to look for this failure mode (paths under the storage root)."""
    from news_signals.core.storage import Storage

    try:
        st = Storage(settings.home)
    except Exception:  # a broken storage URL must not break the diagnosis
        return [f"storage root {settings.home} (could not be opened)"]
    model_dir = st.registry_dir(settings.model_name)
    if stage.key == "gdelt":
        return [f"GDELT endpoint {settings.gdelt_url} (python -m news_signals doctor checks it)"]
    if stage.key == "validation" and "snapshot" in task_id:
        return [st.url(st.path("snapshots")) + "/<snapshot_id>/validation.json  (each check; manifest.json)"]
    if stage.key == "validation":
        if day:
            return [st.url(st.quarantine_dir(day)) + "/  (rejected batch + GX validation result)"]
        return [st.url(st.path("quarantine")) + "/"]
    if stage.key == "not_enough_data":
        return [st.url(st.path("articles")) + "/  (daily partitions available)", st.url(st.path("snapshots")) + "/"]
    if stage.key == "trainer":
        return [st.url(st.path("runs")) + "/<snapshot_id>/<train_key>/  (plan, candidate, evaluation.json)",
                "the task log: the trainer's last 30 lines ([trainer] ...), exit code 137 = killed (OOM)"]
    if stage.key == "gate":
        return [st.url(st.path("runs")) + "/<snapshot_id>/<train_key>/gate.json  (each rule, value, threshold)",
                st.url(model_dir) + "/production"]
    if stage.key == "registry":
        return [st.url(model_dir) + "/  (<version>/metrics.json, gate.json; production; promotions.json)"]
    if stage.key == "feature_store":
        return [st.url(st.features_dir("headline_classifications")) + "/",
                st.url(st.path("features", "_staging")) + (f"/date={day}/" if day else "/") + "  (rows staged by classify)"]
    return [st.url(st.root)]
