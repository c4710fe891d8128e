"""
### monthly_retrain

Keeps the classifier fresh without ever making production worse:

1. **snapshot**: the last `lookback_days` of daily partitions ending at the logical date (or
   `end_date`), relabelled (`labeller`), held-out human-labelled articles removed, training-part
   human labels applied over the bootstrap labels (`human_labels`, `human_weight`), near-duplicates
   removed (TF-IDF), balanced, split train/val/test stratified by primary category →
   `snapshots/<id>/` with `manifest.json`.
   The id hashes data + parameters: a re-run of the same month reuses the same snapshot.
2. **validate_snapshot**: Great Expectations: labelled rows per category in train, no
   `article_id` / normalised title shared between splits, label-distribution shift (KL) against
   the previous snapshot within `max_label_shift_kl`.
3. **choose_trainer** → **train_docker** (the trainer image in a `DockerOperator`, GPU pool) or
   **train_local** (the same CLI as a subprocess). Backend: Param `trainer_backend`, else
   `NEWS_SIGNALS_TRAINER_BACKEND`, else docker when a Docker daemon is configured. A complete
   candidate from an earlier attempt of the same run is reused; `evaluate_only` skips training.
4. **evaluate**: candidate, keyword labeller and current production model on the **held-out human
   labels** (the labels store's hash-split held-out part; per category, with row counts and paired
   bootstrap intervals), on the snapshot's test split (agreement with bootstrap labels, latency) and
   on the optional human-labelled `gold_file`.
5. **gate**: every rule must hold, judged on the held-out human labels (macro-F1 floor, beat
   keywords by `keyword_margin`, beat production with the interval's lower bound above
   `min_interval_low`, or tie within `tolerance` while faster, p95 latency budget, optional
   per-category floors); categories with fewer than `heldout_min_rows` held-out rows are reported,
   not gated. The table is in this task's log and `gate.json`. `force_promote` + `reason` overrides.
6. **approve_promotion** (only with `require_approval`, else `NEWS_SIGNALS_REQUIRE_APPROVAL`): a
   PROMOTE waits for a person (Airflow's Required Actions page, or the task's page): the body is
   the gate table; Approve → promote, Reject or no answer within `NEWS_SIGNALS_APPROVAL_TIMEOUT_HOURS`
   (default 72) → register only. Who answered is recorded with the version and the promotion.
7. **register_and_promote** or **register_only**: every candidate becomes a new immutable registry
   version with its metrics and gate report; production moves only on the promote branch.
   Identical files are never registered twice (a re-run returns the existing version).

**Rollback** (the manual path): trigger with `rollback_to` = a version that was in production
before and a `reason`; the run only moves production back (recorded with the triggering user,
when and why) and trains nothing. The CLI equivalent: `python -m news_signals models rollback`.

Registry: Hopsworks when the `hopsworks_default` connection exists, else local files.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Param, dag, get_current_context, task
from news_signals.core.config import Settings
from news_signals.ops.oncall import task_failure_callback
from news_signals.retrain.approval import PromotionApproval
from news_signals.retrain.trainer import docker_operator_kwargs, train_timeout, trainer_operator_class

PLAN = "{{ ti.xcom_pull(task_ids='choose_trainer', key='plan')"


def _fail_fast(exc: Exception) -> Exception:
    """Bad data or bad Params will not get better on retry."""
    from airflow.sdk.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


def _run_context() -> tuple[dict[str, Any], str]:
    ctx = get_current_context()
    params = dict(ctx["params"])
    logical = params.get("end_date") or ctx.get("logical_date") or ctx["dag_run"].run_after
    return params, str(logical)[:10]


@dag(
    dag_id="monthly_retrain",
    schedule="@monthly",
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # one retrain at a time: the registry's version numbers and the GPU
    doc_md=__doc__,
    tags=["news-signals", "training"],
    default_args={
        "retries": 0,
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": task_failure_callback,
    },
    params={
        "evaluate_only": Param(
            False,
            type="boolean",
            description="evaluate an existing version (model_version, default production); no training, no registration",
        ),
        "model_version": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="with evaluate_only: the registered version to evaluate",
        ),
        "end_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="last day of the snapshot window (default: the logical date)",
        ),
        "lookback_days": Param(
            30, type="integer", minimum=1, maximum=366, description="days of daily partitions in the snapshot"
        ),
        "labeller": Param(
            "auto",
            enum=["auto", "hybrid", "keywords", "partition", "llm"],
            description="relabel the snapshot with: auto (= hybrid), hybrid, keywords (fast), "
            "llm (the news_signals_llm connection or NEWS_SIGNALS_LLM_URL; docs/LLM.md), or keep the partition labels",
        ),
        "llm_fallback": Param(
            False,
            type="boolean",
            description="with labeller llm: when the endpoint is down at the start, relabel with hybrid "
            "(recorded in the manifest) instead of failing",
        ),
        "sample_size": Param(
            None,
            type=["null", "integer"],
            minimum=10,
            description="train on at most this many rows (quick runs); empty = all",
        ),
        "epochs": Param(3, type="integer", minimum=1, maximum=50, description="training epochs"),
        "train_path": Param(
            "fast",
            enum=["fast", "full"],
            description="fast: the lower encoder layers run once and are cached, the top layers and heads train "
            "(about 5x the examples/s on a CPU at the same held-out quality, docs/MODEL.md); full: the whole encoder every step",
        ),
        "base_model": Param(
            "minilm",
            type="string",
            description="encoder to fine-tune: 'minilm' (PyPI-shipped all-MiniLM-L6-v2), a local model directory, or a cached hub id",
        ),
        "languages": Param(
            "auto",
            type="string",
            description="languages the model is trained for and serves (comma list of en, sv, or 'all'); "
            "other languages are classified by keywords. auto: the base model's (minilm: en)",
        ),
        "seed": Param(13, type="integer", description="seed for the split and the trainer"),
        "trainer_backend": Param(
            "auto",
            enum=["auto", "docker", "local"],
            description="auto: NEWS_SIGNALS_TRAINER_BACKEND, else docker when a daemon is configured, else local",
        ),
        "dedupe_threshold": Param(
            0.9,
            type="number",
            exclusiveMinimum=0,
            maximum=1,
            description="TF-IDF cosine similarity at which two texts count as near-duplicates",
        ),
        "min_rows_per_category": Param(
            5,
            type="integer",
            minimum=0,
            description="labelled rows each category needs (categories with none at all only warn)",
        ),
        "max_label_shift_kl": Param(
            0.5,
            type="number",
            minimum=0,
            description="largest KL divergence of the label distribution from the previous snapshot",
        ),
        "gold_file": Param(
            None,
            type=["null", "string"],
            description="optional human-labelled JSON Lines (text or title, signals) to evaluate on as well",
        ),
        "human_labels": Param(
            True,
            type="boolean",
            description="train with the training part of the human labels (they override bootstrap labels); "
            "held-out human labels never reach the snapshot either way",
        ),
        "human_weight": Param(
            4.0, type="number", exclusiveMinimum=0, description="loss weight of a human label (bootstrap: its confidence)"
        ),
        "heldout_min_rows": Param(
            50,
            type="integer",
            minimum=1,
            description="held-out human-labelled rows a category needs to be gated (fewer: reported only)",
        ),
        "bootstrap_samples": Param(
            1000, type="integer", minimum=100, description="resamples for the gate's paired confidence intervals"
        ),
        "min_interval_low": Param(
            None,
            type=["null", "number"],
            description="gate: lower bound of the candidate-minus-production interval on held-out human "
            "labels must exceed this (default 0.0)",
        ),
        "min_macro_f1": Param(
            None, type=["null", "number"], description="gate: candidate macro-F1 floor (default 0.30)"
        ),
        "keyword_margin": Param(
            None,
            type=["null", "number"],
            description="gate: candidate must beat keywords by this much (default 0.0)",
        ),
        "min_gain": Param(
            None, type=["null", "number"], description="gate: required gain over production (default 0.005)"
        ),
        "tolerance": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="gate: a candidate this close to production is promoted only when faster (default 0.005)",
        ),
        "min_latency_gain": Param(
            None,
            type=["null", "number"],
            minimum=0,
            maximum=1,
            description="gate: how much faster (fraction of p95) a tied candidate must be (default 0.10)",
        ),
        "latency_samples": Param(
            50, type="integer", minimum=2, description="texts timed one at a time for the p50/p95 latency"
        ),
        "latency_p95_budget_ms": Param(
            None,
            type=["null", "number"],
            exclusiveMinimum=0,
            description="gate: p95 latency budget for one text, ms (default 1000)",
        ),
        "per_category_floors": Param(
            {}, type="object", description='gate: optional per-category F1 floors, e.g. {"sports": 0.3}'
        ),
        "force_promote": Param(
            False,
            type="boolean",
            description="promote even if the gate says keep (needs reason; recorded in gate.json)",
        ),
        "reason": Param("", type="string", description="why force_promote or rollback_to is used (required with them)"),
        "require_approval": Param(
            None,
            type=["null", "boolean"],
            description="a person approves a PROMOTE before production moves (default: NEWS_SIGNALS_REQUIRE_APPROVAL, false)",
        ),
        "label_queue_size": Param(
            100,
            type="integer",
            minimum=0,
            description="after registering: the N most informative unlabelled recent articles for annotators "
            "(labels/queue/<date>.jsonl and .label-studio.json); 0 = none",
        ),
        "label_queue_categories": Param(
            "",
            type="string",
            description="the labelling project's scope: only ask about these categories (comma list; empty = all)",
        ),
        "label_queue_languages": Param(
            "",
            type="string",
            description="the labelling project's scope: only queue articles in these languages, as GDELT names "
            "or codes (comma list, e.g. English; empty = all)",
        ),
        "rollback_to": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            description="only roll production back to this earlier production version (needs reason); trains nothing",
        ),
    },
)
def monthly_retrain() -> None:
    @task.branch(execution_timeout=timedelta(minutes=5))
    def start() -> str:
        """Retrain (snapshot), or with `rollback_to` only roll production back."""
        params, _ = _run_context()
        return "rollback" if params.get("rollback_to") else "snapshot"

    @task(execution_timeout=timedelta(minutes=10))
    def rollback() -> dict[str, Any]:
        """Move production back to `rollback_to`, recorded with the triggering user and `reason`."""
        from news_signals.registry import RegistryError
        from news_signals.retrain.pipeline import rollback_stage

        params, _ = _run_context()
        by = get_current_context()["dag_run"].triggering_user_name or "monthly_retrain"
        try:
            return rollback_stage(params, by=by)
        except (ValueError, RegistryError) as exc:
            raise _fail_fast(exc) from exc

    @task(execution_timeout=timedelta(hours=1))
    def snapshot() -> dict[str, Any]:
        """Build (or reuse) the training snapshot; too little data fails with the counts."""
        from news_signals.retrain.pipeline import snapshot_stage

        params, day = _run_context()
        try:
            return snapshot_stage(day, params)
        except ValueError as exc:
            raise _fail_fast(exc) from exc

    @task(execution_timeout=timedelta(minutes=20))
    def validate_snapshot(snap: dict[str, Any]) -> dict[str, Any]:
        """GX checks of the snapshot; failures name each check and its observed value."""
        from news_signals.retrain.pipeline import validate_stage

        params, _ = _run_context()
        try:
            return validate_stage(snap["snapshot_id"], params)
        except ValueError as exc:
            raise _fail_fast(exc) from exc

    @task.branch(execution_timeout=timedelta(minutes=5))
    def choose_trainer(checked: dict[str, Any]) -> str:
        """Plan the run (XCom key `plan`) and pick train_docker, train_local, or straight to evaluate."""
        from news_signals.retrain.pipeline import plan_stage

        params, _ = _run_context()
        plan = plan_stage(checked["snapshot_id"], params)
        get_current_context()["ti"].xcom_push(key="plan", value=plan)
        return {"docker": "train_docker", "local": "train_local"}.get(plan["action"], "evaluate")

    train_docker = trainer_operator_class()(
        task_id="train_docker",
        doc_md="Runs the trainer image (`python -m news_signals train`) with the snapshot mounted "
        "read-only and the candidate directory read-write, on every GPU, in the `gpu` pool.",
        **docker_operator_kwargs(
            command=f"{PLAN}['docker']['command'] }}}}",
            snapshot_src=f"{PLAN}['docker']['snapshot_src'] }}}}",
            out_src=f"{PLAN}['docker']['out_src'] }}}}",
            base_model_src=f"{PLAN}['docker']['base_model_src'] }}}}",
        ),
    )

    @task(execution_timeout=train_timeout())
    def train_local() -> dict[str, Any]:
        """The same trainer CLI as a local subprocess, output streamed to this log."""
        from news_signals.retrain.pipeline import train_local_stage

        plan = get_current_context()["ti"].xcom_pull(task_ids="choose_trainer", key="plan")
        return train_local_stage(plan)

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(hours=1))
    def evaluate() -> dict[str, Any]:
        """Candidate vs keywords vs production on the test split (and the gold file)."""
        from news_signals.retrain.pipeline import evaluate_stage

        params, _ = _run_context()
        plan = get_current_context()["ti"].xcom_pull(task_ids="choose_trainer", key="plan")
        try:
            return evaluate_stage(plan, params)
        except (ValueError, FileNotFoundError) as exc:
            raise _fail_fast(exc) from exc

    @task.branch(execution_timeout=timedelta(minutes=5))
    def gate(evaluation: dict[str, Any]) -> list[str]:
        """Apply the promotion rules; log the table; branch to promote, keep, or ask for approval."""
        from news_signals.retrain.pipeline import after_gate, gate_stage

        params, _ = _run_context()
        ti = get_current_context()["ti"]
        plan = ti.xcom_pull(task_ids="choose_trainer", key="plan")
        decision = gate_stage(plan, params)
        print(decision["table"])  # noqa: T201 - the table belongs in the task log verbatim
        ti.xcom_push(key="table", value=decision["table"])  # the approval request shows it
        return after_gate(plan, decision, params)

    approve_promotion = PromotionApproval(
        task_id="approve_promotion",
        subject="monthly_retrain: promote the candidate to production?",
        body="The promotion gate says PROMOTE. Approve to move production; Reject (or no answer "
        "before the timeout) keeps production and registers the candidate only.\n\n"
        "```\n{{ ti.xcom_pull(task_ids='gate', key='table') }}\n```",
        promote_task="register_and_promote",
        keep_task="register_only",
        timeout=timedelta(hours=Settings().approval_timeout_hours),
    )

    def _approval() -> dict[str, Any] | None:
        return get_current_context()["ti"].xcom_pull(task_ids="approve_promotion", key="approval")

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(minutes=30))
    def register_and_promote() -> dict[str, Any]:
        """Register the candidate as a new version, then move production to it."""
        from news_signals.retrain.pipeline import register_stage

        params, _ = _run_context()
        plan = get_current_context()["ti"].xcom_pull(task_ids="choose_trainer", key="plan")
        return register_stage(plan, params, promote=True, approval=_approval())

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(minutes=30))
    def register_only() -> dict[str, Any]:
        """Register the candidate (kept for the record); production stays where it is."""
        from news_signals.retrain.pipeline import register_stage

        params, _ = _run_context()
        plan = get_current_context()["ti"].xcom_pull(task_ids="choose_trainer", key="plan")
        return register_stage(plan, params, promote=False, approval=_approval())

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=timedelta(minutes=30))
    def export_labelling_queue() -> dict[str, Any]:
        """Active learning: queue the articles the (new) production model is least sure of, for annotators."""
        from news_signals.labels.sampler import export_queue_stage

        params, day = _run_context()
        if not params.get("label_queue_size"):
            return {"rows": 0, "skipped": "label_queue_size is 0"}
        return export_queue_stage(params, day)

    snap = snapshot()
    start() >> [rollback(), snap]
    branch = choose_trainer(validate_snapshot(snap))
    evaluated = evaluate()
    local = train_local()
    branch >> [train_docker, local] >> evaluated
    branch >> evaluated
    registered = [register_and_promote(), register_only()]
    registered >> export_labelling_queue()
    gate(evaluated) >> [approve_promotion, *registered]
    approve_promotion >> registered  # Approve → register_and_promote; Reject / timeout → register_only


monthly_retrain()
