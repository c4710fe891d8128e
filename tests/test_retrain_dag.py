"""monthly_retrain end to end with dag.test(): daily partitions → snapshot → GX → local trainer →
evaluate → gate → registry; plus the DockerOperator task's rendering and the re-run behaviour."""

from __future__ import annotations

import importlib.util
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from news_signals.core.config import PROJECT_ROOT

END = date(2026, 11, 10)
LOGICAL = datetime(2026, 11, 10, tzinfo=UTC)


def load_dag():
    spec = importlib.util.spec_from_file_location(
        "monthly_retrain_dag", PROJECT_ROOT / "dags" / "monthly_retrain.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.monthly_retrain()


@pytest.fixture(scope="module")
def env(tmp_path_factory, airflow_db):
    """Four daily partitions and a tiny base model built from their texts, in a home of this module's own."""
    from _retrain_helpers import retrain_home

    yield from retrain_home(tmp_path_factory.mktemp("retrain"), END, threads=2)


def conf(env, **kw):
    return {
        "base_model": env["base"],
        "epochs": 1,
        "sample_size": 200,
        "labeller": "keywords",
        "min_rows_per_category": 1,
        "lookback_days": 30,
        "min_macro_f1": 0.0,  # a 1-epoch tiny model; the gate rules themselves are tested in test_gate.py
        "keyword_margin": -1.0,
        "latency_p95_budget_ms": 60000,
        "latency_samples": 5,
        "bootstrap_samples": 200,
        **kw,
    }


def states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_docker_task_renders_image_command_mounts_gpu_and_pool(monkeypatch):
    from airflow.providers.docker.operators.docker import DockerOperator

    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_IMAGE", "registry.example/news-signals-trainer:1.2")
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_GPU", "1")
    dag = load_dag()
    task = dag.get_task("train_docker")
    assert isinstance(task, DockerOperator)
    assert task.image == "registry.example/news-signals-trainer:1.2"
    assert task.pool == "gpu" and task.pool_slots == 1
    assert task.auto_remove == "success" and task.mount_tmp_dir is False
    assert task.execution_timeout.total_seconds() >= 3600
    assert "choose_trainer" in task.command and "['docker']['command']" in task.command
    [req] = task.device_requests
    assert req["Count"] == -1 and req["Capabilities"] == [["gpu"]]
    mounts = {m["Target"]: m for m in task.mounts}
    assert mounts["/snapshot"]["ReadOnly"] is True and "snapshot_src" in mounts["/snapshot"]["Source"]
    assert mounts["/out"]["ReadOnly"] is False and "out_src" in mounts["/out"]["Source"]
    assert mounts["/base_model"]["ReadOnly"] is True
    assert task._private_environment == {}  # secrets are attached only when the task runs
    assert {t.task_id for t in task.upstream_list} == {"choose_trainer"}
    assert {t.task_id for t in task.downstream_list} == {"evaluate"}


def test_trainer_secrets_come_from_the_worker_environment_at_run_time(monkeypatch):
    from news_signals.retrain.trainer import trainer_secrets

    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_SECRET_ENV", "WANDB_API_KEY, MISSING_ONE")
    monkeypatch.setenv("WANDB_API_KEY", "s3cret")
    monkeypatch.delenv("MISSING_ONE", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_HUGGINGFACE_DEFAULT", "generic://:hf_tok@huggingface.co")
    assert trainer_secrets() == {"WANDB_API_KEY": "s3cret", "HF_TOKEN": "hf_tok"}


def test_docker_task_without_gpu_has_no_device_requests(monkeypatch):
    monkeypatch.setenv("NEWS_SIGNALS_TRAINER_GPU", "0")
    assert load_dag().get_task("train_docker").device_requests is None


def test_docker_command_renders_to_the_trainer_cli(tmp_path):
    """The plan the branch task pushes renders into the exact trainer arguments and host paths."""
    from airflow.providers.docker.operators.docker import DockerOperator
    from news_signals.retrain.trainer import TrainJob, trainer_args

    job = TrainJob(
        snapshot_dir="/h/snapshots/s1", out_dir="/h/runs/s1/k/candidate", base_model="minilm", epochs=2
    )
    command = trainer_args(job, snapshot="/snapshot", out="/out")
    rendered = DockerOperator.format_command(str(command))
    assert rendered[:6] == ["--snapshot", "/snapshot", "--base-model", "minilm", "--out", "/out"]
    assert rendered[rendered.index("--epochs") + 1] == "2"


def test_end_to_end_first_model_promoted_then_rerun_is_idempotent(env):
    from news_signals.registry import get_registry

    dag = load_dag()
    dr = dag.test(logical_date=LOGICAL, run_conf=conf(env))
    s = states(dr)
    assert str(dr.state) == "success", s
    assert s["train_local"] == "success" and s["train_docker"] == "skipped"
    assert s["register_and_promote"] == "success" and s["register_only"] == "skipped"
    registry = get_registry()
    [v1] = registry.history()
    assert v1.is_production and v1.gate["decision"] == "promote"
    assert v1.gate["rules"][2]["detail"].startswith("no production model yet")
    assert v1.metrics["snapshot_id"].startswith("2026-11-10-30d-")

    # same month again: same snapshot, the candidate is reused, no new version, kept (no gain over itself)
    dr2 = dag.test(logical_date=LOGICAL, run_conf=conf(env), run_after=datetime.now(UTC))
    s2 = states(dr2)
    assert str(dr2.state) == "success", s2
    assert s2["train_local"] == "skipped" and s2["train_docker"] == "skipped"
    assert s2["register_only"] == "success" and s2["register_and_promote"] == "skipped"
    history = registry.history()
    assert [h.version for h in history] == [1] and history[0].is_production
    snaps = [p for p in Path(env["storage"].path("snapshots")).iterdir() if not p.name.startswith(".")]
    assert len(snaps) == 1


def test_forced_promotion_needs_reason_and_is_recorded(env):
    from news_signals.registry import get_registry

    dag = load_dag()
    bad = dag.test(logical_date=LOGICAL, run_conf=conf(env, force_promote=True, reason=""))
    assert str(bad.state) == "failed"
    assert states(bad)["snapshot"] == "failed"  # refused before any work
    # a different seed trains a different candidate; an impossible gate keeps it unless forced
    dr = dag.test(
        logical_date=LOGICAL,
        run_conf=conf(
            env, seed=5, min_macro_f1=0.99, force_promote=True, reason="hotfix approved by on-call"
        ),
    )
    assert str(dr.state) == "success", states(dr)
    assert states(dr)["register_and_promote"] == "success"
    prod = get_registry().production()
    assert prod.version == max(h.version for h in get_registry().history()) and prod.version >= 2
    assert prod.gate["forced"] is True and prod.gate["reason"] == "hotfix approved by on-call"
    assert "macro_f1_floor" in prod.gate["failed_rules"]


def test_evaluate_only_registers_nothing(env):
    from news_signals.registry import get_registry

    before = [h.version for h in get_registry().history()]
    dr = load_dag().test(logical_date=LOGICAL, run_conf=conf(env, evaluate_only=True))
    s = states(dr)
    assert str(dr.state) == "success", s
    assert s["evaluate"] == "success" and s["train_local"] == "skipped"
    assert s["register_and_promote"] == "skipped" and s["register_only"] == "skipped"
    assert [h.version for h in get_registry().history()] == before
    gates = list(Path(env["storage"].path("runs")).rglob("gate.json"))
    assert any(json.loads(g.read_text())["evaluate_only"] for g in gates)


def test_no_partitions_fails_fast_with_the_fix(env):
    dr = load_dag().test(
        logical_date=LOGICAL, run_conf=conf(env, end_date="2020-01-31"), run_after=datetime.now(UTC)
    )
    s = states(dr)
    assert str(dr.state) == "failed"
    assert s["snapshot"] == "failed" and s["validate_snapshot"] == "upstream_failed"
    snaps = Path(env["storage"].path("snapshots"))
    assert not snaps.exists() or not any(p.name.startswith("2020-01-31") for p in snaps.iterdir())


def test_cli_and_dag_give_the_same_gate_decision_on_held_out_human_labels(env, capsys):
    """Human labels in the store: the DAG's gate and `python -m news_signals gate --run DIR` agree."""
    import pandas as pd
    from news_signals.cli import main
    from news_signals.core.taxonomy import CATEGORIES, tag_column
    from news_signals.labels.split import is_heldout
    from news_signals.labels.store import LabelRow, LabelStore
    from news_signals.registry import get_registry

    storage = env["storage"]
    parts = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in storage.partition_dates())
    held = parts[parts["article_id"].map(is_heldout)]
    rows = [
        LabelRow(r.article_id, r.title, {c: getattr(r, tag_column(c)) for c in CATEGORIES}, annotator="qa")
        for r in held.itertuples()
    ]
    LabelStore(storage).import_rows(rows, source="test-heldout")
    dag = load_dag()
    dr = dag.test(logical_date=LOGICAL, run_conf=conf(env, seed=21, heldout_min_rows=5), run_after=datetime.now(UTC))
    assert str(dr.state) == "success", states(dr)
    gates = sorted(Path(storage.path("runs")).rglob("gate.json"), key=lambda g: g.stat().st_mtime)
    dag_gate = json.loads(gates[-1].read_text())
    assert dag_gate["evidence"].startswith("held-out human labels"), dag_gate["evidence"]
    assert dag_gate["heldout"]["rows"] == len(rows)
    run_dir = gates[-1].parent
    capsys.readouterr()
    code = main(["gate", "--run", str(run_dir)])
    cli_gate = json.loads((run_dir / "gate.json").read_text())
    assert code == (0 if dag_gate["promote"] else 3)
    assert cli_gate["decision"] == dag_gate["decision"]
    assert [(r["name"], r["passed"], r["value"], r["threshold"]) for r in cli_gate["rules"]] == [
        (r["name"], r["passed"], r["value"], r["threshold"]) for r in dag_gate["rules"]
    ]
    assert "held-out human labels" in capsys.readouterr().out
    # the snapshot the DAG trained on holds none of the held-out articles
    snap = json.loads((Path(storage.snapshot_dir(dag_gate["snapshot_id"])) / "manifest.json").read_text())
    assert snap["human_labels"]["heldout_excluded"] == len(rows)
    for split in ("train", "val", "test"):
        ids = set(pd.read_parquet(Path(storage.snapshot_dir(dag_gate["snapshot_id"])) / f"{split}.parquet")["article_id"])
        assert not ids & set(held["article_id"])
    assert get_registry().history()
