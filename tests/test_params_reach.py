"""Every Param of the three DAGs reaches its stage: no silently ignored Param.

The DAGs come from ``dags/`` through a real ``DagBag``. For each Param, ``CHECKS`` names what it
should change and how to observe it: the DAG's own task callable runs (under a task context with
the Params resolved and validated by the DAG's ``ParamsDict``) once with the defaults and once with
the Param changed, and the observed value must differ. Observations are real wherever that is cheap:
GDELT requests the fetch task sends to the replay server, validation outcomes, the plan pushed by
``choose_trainer``, ``gate.json`` written by the real gate stage, the branch the gate and start tasks
pick, the classifier the feature pipeline resolves. The two expensive workers (snapshot building,
GX snapshot checks) are replaced by autospecs that record the parameters they were given; the
evaluate stage's settings are observed in the typed ``RetrainParams`` it reads.

A Param added to a DAG without an entry here fails the test.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any
from unittest.mock import create_autospec

import pytest
from news_signals.core.config import PROJECT_ROOT
from news_signals.core.storage import Storage

LOGICAL = datetime(2026, 11, 4, tzinfo=UTC)
DAY_BEFORE = datetime(2026, 11, 3, tzinfo=UTC)


class XComRecorder:
    """The two TaskInstance calls the tasks make (xcom_push / xcom_pull), kept in a dict."""

    def __init__(self, preset: dict[tuple[str, str], Any] | None = None) -> None:
        self.store = dict(preset or {})

    def xcom_push(self, key: str, value: Any) -> None:
        self.store[("self", key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> Any:
        return self.store.get((task_ids, key))


def run_task(dag, task_id: str, params: dict[str, Any], *args: Any, ti: XComRecorder | None = None) -> Any:
    """The DAG's own callable for ``task_id`` under a task context; exceptions come back as values."""
    from airflow.sdk.execution_time.context import set_current_context

    context = {
        "params": params,
        "logical_date": LOGICAL,
        "data_interval_start": DAY_BEFORE,
        "dag_run": SimpleNamespace(run_after=LOGICAL, triggering_user_name="tester"),
        "ti": ti or XComRecorder(),
        "run_id": f"params-reach-{id(params)}",
        "triggering_asset_events": {},
        "outlet_events": {},
    }
    context["task_instance"] = context["ti"]
    with set_current_context(context):
        try:
            return dag.get_task(task_id).python_callable(*args)
        except Exception as exc:  # an outcome to compare, like any other
            return f"{type(exc).__name__}: {exc}"


def _recorder(fx, module, name: str):
    """``module.name`` replaced (for this test) by an autospec of the real function that records its call."""
    real = fx["originals"].setdefault((module.__name__, name), getattr(module, name))
    spy = create_autospec(real)
    fx["monkeypatch"].setattr(module, name, spy)
    return spy


# ---- observers: (dag, resolved params, fixtures) -> a comparable value -----------------------------
def daily_chain(dag, params, fx) -> tuple:
    """fetch → label → validate as the DAG wires them: what was asked of GDELT and how it ended."""
    server = fx["replay"]
    before = len(server.requests)
    fetched = run_task(dag, "fetch", params)
    asked = tuple(sorted(str(sorted(r.query.items())) for r in server.requests[before:]))
    if isinstance(fetched, str):
        return asked, fetched
    labelled = run_task(dag, "label", params, fetched)
    validated = run_task(dag, "validate", params, labelled)
    outcome = validated if isinstance(validated, str) else ("ok", validated.get("rows"))
    return asked, fetched["rows"], outcome


def feature_resolve(dag, params, fx) -> Any:
    """The classifier resolve_model picks (it needs the day's partition to exist)."""
    from datetime import date

    from test_snapshot import write_daily_partitions

    storage: Storage = fx["storage"]
    if not {"2026-11-04", "2026-11-05"} <= set(storage.partition_dates()):
        write_daily_partitions(storage, date(2026, 11, 5), days=2, per_day=20)
    return run_task(dag, "resolve_model", params)


def retrain_snapshot(dag, params, fx) -> Any:
    """The SnapshotParams the snapshot task hands to build_snapshot."""
    from news_signals.retrain import snapshot as snapshot_module

    spy = _recorder(fx, snapshot_module, "build_snapshot")
    out = run_task(dag, "snapshot", params)
    return asdict(spy.call_args.args[0]) if spy.called else out


def retrain_validate(dag, params, fx) -> Any:
    """The SnapshotChecks the validate task hands to check_snapshot."""
    from news_signals.retrain import validation as validation_module

    spy = _recorder(fx, validation_module, "check_snapshot")
    out = run_task(dag, "validate_snapshot", params, {"snapshot_id": "s1"})
    return asdict(spy.call_args.args[2]) if spy.called else out


def retrain_plan(dag, params, fx) -> Any:
    """The branch and the plan (job, action, container command) choose_trainer pushes."""
    ti = XComRecorder()
    branch = run_task(dag, "choose_trainer", params, {"snapshot_id": "s1"}, ti=ti)
    plan = ti.store.get(("self", "plan")) or {}
    return branch, plan.get("action"), plan.get("job"), plan.get("docker", {}).get("command")


def retrain_evaluate_only(dag, params, fx) -> Any:
    """The evaluate task with evaluate_only: which registered version it goes for."""
    ti = XComRecorder({("choose_trainer", "plan"): {"action": "evaluate_only", "snapshot_id": "s1", "work_dir": fx["work"]}})
    return run_task(dag, "evaluate", params, ti=ti)


def retrain_gate(dag, params, fx) -> Any:
    """The real gate task on a fixed evaluation: the branch it picks and what gate.json records."""
    storage: Storage = fx["storage"]
    plan = {"action": "local", "snapshot_id": "s1", "work_dir": fx["work"], "candidate_dir": fx["work"]}
    ti = XComRecorder({("choose_trainer", "plan"): plan})
    branch = run_task(dag, "gate", params, {}, ti=ti)
    gate = storage.read_json(posixpath.join(fx["work"], "gate.json"))
    storage.fs.rm(posixpath.join(fx["work"], "gate.json"))
    return branch, gate["thresholds"], gate["forced"], gate["reason"], gate["decision"]


def retrain_start(dag, params, fx) -> Any:
    return run_task(dag, "start", params)


def retrain_queue(dag, params, fx) -> Any:
    """How many articles the labelling-queue task asks annotators about."""
    out = run_task(dag, "export_labelling_queue", params)
    return out.get("requested", out.get("rows"))


def retrain_queue_scope(key: str) -> Callable:
    """The labelling project's scope the queue task applied (categories or languages)."""

    def observe(dag, params, fx) -> Any:
        scope = run_task(dag, "export_labelling_queue", params)["scope"][key]
        return ",".join(scope) if isinstance(scope, list) else scope

    return observe


def retrain_params(field: str) -> Callable:
    """For the evaluate stage's settings: the value the stage reads from the typed params."""

    def observe(dag, params, fx) -> Any:
        from news_signals.retrain.pipeline import RetrainParams

        return getattr(RetrainParams.from_params(params), field)

    return observe


# param -> (changed value, observer, params both runs share)
FORCED = {"force_promote": True, "reason": "an on-call decision"}
CHECKS: dict[str, dict[str, tuple[Any, Callable, dict[str, Any]]]] = {
    "gdelt_daily_ingest": {
        "date": ("2026-11-05", daily_chain, {}),
        "query": ("(storm OR flood)", daily_chain, {}),
        "countries": (["UK"], daily_chain, {}),
        "languages": (["english"], daily_chain, {}),
        "max_articles": (5, daily_chain, {}),
        "min_rows": (100_000, daily_chain, {}),
        "max_rows": (1, daily_chain, {}),
        "max_unlabelled_share": (0.0, daily_chain, {}),
    },
    "signal_feature_pipeline": {
        "date": ("2026-11-05", feature_resolve, {}),
        "classifier": ("keywords", feature_resolve, {}),
        "require_model": (True, feature_resolve, {}),
    },
    "monthly_retrain": {
        "end_date": ("2026-10-31", retrain_snapshot, {}),
        "lookback_days": (7, retrain_snapshot, {}),
        "labeller": ("keywords", retrain_snapshot, {}),
        "llm_fallback": (True, retrain_snapshot, {}),
        "dedupe_threshold": (0.5, retrain_snapshot, {}),
        "human_labels": (False, retrain_snapshot, {}),
        "human_weight": (5.0, retrain_snapshot, {}),
        "seed": (99, retrain_snapshot, {}),
        "min_rows_per_category": (50, retrain_validate, {}),
        "max_label_shift_kl": (0.05, retrain_validate, {}),
        "evaluate_only": (True, retrain_plan, {}),
        "sample_size": (100, retrain_plan, {}),
        "epochs": (7, retrain_plan, {}),
        "train_path": ("full", retrain_plan, {}),
        "base_model": ("/models/other-encoder", retrain_plan, {}),
        "languages": ("en,sv", retrain_plan, {}),
        "trainer_backend": ("docker", retrain_plan, {}),
        "model_version": (3, retrain_evaluate_only, {"evaluate_only": True}),
        "gold_file": ("/data/gold.jsonl", retrain_params("gold_file"), {}),
        "heldout_min_rows": (10, retrain_params("heldout_min_rows"), {}),
        "bootstrap_samples": (200, retrain_params("bootstrap_samples"), {}),
        "latency_samples": (5, retrain_params("latency_samples"), {}),
        "min_interval_low": (0.02, retrain_gate, {}),
        "min_macro_f1": (0.9, retrain_gate, {}),
        "keyword_margin": (0.2, retrain_gate, {}),
        "min_gain": (0.05, retrain_gate, {}),
        "tolerance": (0.02, retrain_gate, {}),
        "min_latency_gain": (0.5, retrain_gate, {}),
        "latency_p95_budget_ms": (1.0, retrain_gate, {}),
        "per_category_floors": ({"sports": 0.9}, retrain_gate, {}),
        "force_promote": (True, retrain_gate, {"reason": "an on-call decision", "min_macro_f1": 0.99}),
        "reason": ("a different reason", retrain_gate, FORCED),
        "require_approval": (True, retrain_gate, {}),
        "rollback_to": (2, retrain_start, {}),
        "label_queue_size": (7, retrain_queue, {}),
        "label_queue_categories": ("crime,sports", retrain_queue_scope("categories"), {}),
        "label_queue_languages": ("English", retrain_queue_scope("languages"), {}),
    },
}


@pytest.fixture()
def fx(ns_home, replay_server, monkeypatch):
    monkeypatch.setenv("NEWS_SIGNALS_GDELT_URL", replay_server.url)
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_BACKEND", "local")
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "local")
    monkeypatch.delenv("NEWS_SIGNALS_REQUIRE_APPROVAL", raising=False)
    storage = Storage()
    work = storage.path("runs", "s1", "params-reach")
    storage.fs.makedirs(work, exist_ok=True)
    report = {"macro_f1": 0.6, "speed": {"latency_ms_p95_batch1": 5.0}, "per_category": {"sports": {"f1": 0.5}}}
    storage.write_json(
        posixpath.join(work, "evaluation.json"),
        {"reports": {"candidate": report, "keywords": {"macro_f1": 0.3}}, "candidate_ref": "candidate",
         "production_ref": None, "same_as_production": False},
    )
    return {"replay": replay_server, "storage": storage, "work": work, "monkeypatch": monkeypatch, "originals": {}}


def _resolved(dag, changes: dict[str, Any]) -> dict[str, Any]:
    """The run's params as Airflow resolves them: defaults, ``changes`` checked by each Param's schema."""
    import copy

    params = copy.deepcopy(dag.params)
    for key, value in changes.items():
        params[key] = value
    return params.validate()


def test_every_param_of_every_dag_changes_what_its_stage_does(fx):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(PROJECT_ROOT / "dags"))
    assert not bag.import_errors, bag.import_errors
    assert set(CHECKS) == set(bag.dags), "a DAG without a Param table"
    ignored = []
    for dag_id, table in CHECKS.items():
        dag = bag.dags[dag_id]
        assert set(table) == set(dag.params), (
            f"{dag_id}: Params without a check: {sorted(set(dag.params) - set(table))}; "
            f"checks for Params that are gone: {sorted(set(table) - set(dag.params))}"
        )
        baselines: dict[tuple, Any] = {}
        for name, (value, observe, shared) in table.items():
            key = (observe, tuple(sorted((k, repr(v)) for k, v in shared.items())))
            if key not in baselines:
                baselines[key] = observe(dag, _resolved(dag, shared), fx)
            changed = observe(dag, _resolved(dag, {**shared, name: value}), fx)
            if changed == baselines[key]:
                ignored.append(f"{dag_id}.{name}={value!r} changed nothing ({baselines[key]!r})")
    assert not ignored, "\n".join(ignored)
