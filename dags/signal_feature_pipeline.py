"""
### signal_feature_pipeline

Classifies each new daily partition of GDELT headlines with the **promoted model** from the
model registry and writes two feature groups:

* `headline_classifications` (primary key `article_id`, event time `seendate`): per article a
  signed `score` in [-1, 1] and a `tag` for each of the nine categories, and `classifier`
  (`model:<name>@<version>` or `keywords`);
* `vibe_vectors` (primary key `sourcecountry`, `date`): per source country and day, a
  count-weighted intensity and the most common tag per category.

**Runs** when `gdelt_daily_ingest` publishes a partition (Asset `news_signals_daily_articles`;
the day comes from the event's `extra["date"]`), or by hand with Params:

* `date` (YYYY-MM-DD): the day to (re)classify; writes are upserts, so re-running is safe;
* `classifier`: `auto` (promoted model, keyword fallback), `keywords`, or a version number to pin;
* `require_model`: fail instead of falling back to keywords when the model is unavailable.

**Fallback**: no promoted model, a download failure, a hash or taxonomy mismatch → the keyword
labeller, with a warning naming the reason in the `resolve_model` log; rows then say `keywords`.

**Store**: Hopsworks when the `hopsworks_default` connection exists, else parquet under
`$NEWS_SIGNALS_HOME/features/`. Rows are checked by a GX suite first (also attached in Hopsworks
with the STRICT policy). A missing partition fails with the command that produces it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task
from news_signals.daily.assets import DAILY_ARTICLES_ASSET_NAME, DAILY_ARTICLES_ASSET_URI
from news_signals.ops.oncall import task_failure_callback

DAILY_ARTICLES = Asset(name=DAILY_ARTICLES_ASSET_NAME, uri=DAILY_ARTICLES_ASSET_URI)


def _fail_fast(exc: Exception) -> Exception:
    """Deterministic problems (bad Param, missing partition, required model absent) must not be retried."""
    from airflow.exceptions import AirflowFailException

    return AirflowFailException(str(exc))


@dag(
    dag_id="signal_feature_pipeline",
    schedule=[DAILY_ARTICLES],
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,  # the local store's upsert is read-modify-write
    doc_md=__doc__,
    tags=["news-signals", "features"],
    default_args={
        "retries": 1,
        "retry_delay": timedelta(minutes=2),
        "execution_timeout": timedelta(minutes=30),
        "on_failure_callback": task_failure_callback,
    },
    params={
        "date": Param(
            None,
            type=["null", "string"],
            description="Day to classify (YYYY-MM-DD); default: the day in the triggering asset event",
        ),
        "classifier": Param(
            "auto",
            type="string",
            pattern=r"^(auto|keywords|[0-9]+)$",
            description="auto (promoted model, keyword fallback), keywords, or a registered version to pin",
        ),
        "require_model": Param(False, type="boolean", description="fail instead of falling back to keywords"),
    },
)
def signal_feature_pipeline() -> None:
    @task(execution_timeout=timedelta(minutes=10))
    def resolve_model() -> dict[str, Any]:
        """Which day(s) and which classifier: downloads + verifies the model so a broken one shows here.

        Days: the `date` Param, else the triggering asset events' `extra["date"]`, else the logical date.
        """
        from news_signals.features.pipeline import resolve_model as resolve
        from news_signals.features.pipeline import run_dates
        from news_signals.labelling.classifiers import ModelUnavailable

        ctx = get_current_context()
        params = ctx["params"]
        extras: list[dict[str, Any]] = []
        for asset_events in (ctx.get("triggering_asset_events") or {}).values():
            extras.extend(dict(getattr(ev, "extra", None) or {}) for ev in asset_events)
        logical = ctx.get("logical_date") or ctx["dag_run"].run_after
        try:
            days = run_dates(params.get("date"), extras, logical.date() if logical else None)
            _, choice = resolve(params["classifier"], bool(params["require_model"]))
        except (ModelUnavailable, ValueError) as exc:
            raise _fail_fast(exc) from exc
        return {"days": days, "choice": choice.to_dict()}

    @task
    def classify_partition(resolved: dict[str, Any]) -> list[dict[str, Any]]:
        """Classify each day's partition in batches; rows are staged in storage, XCom gets counts."""
        import logging

        from news_signals.core.storage import Storage
        from news_signals.features.pipeline import (
            ModelChoice,
            PartitionMissing,
            classify_partition,
            resolve_model,
            write_staged,
        )
        from news_signals.labelling.classifiers import ModelUnavailable

        log = logging.getLogger("signal_feature_pipeline")
        params = get_current_context()["params"]
        storage = Storage()
        days, model_choice = resolved["days"], ModelChoice.from_dict(resolved["choice"])
        try:
            pinned = "keywords" if model_choice.version is None else str(model_choice.version)
            clf, used = resolve_model(pinned, bool(params["require_model"]), model_choice.model_name, storage)
            if used.fell_back:
                model_choice = used
            out = []
            for day in days:
                rows, _ = classify_partition(day, model_choice, storage=storage, classifier=clf)
                write_staged(storage, day, rows)
                out.append({"date": day, "rows": len(rows), "classifier": clf.name})
                log.info("%s: %d rows classified by %s", day, len(rows), clf.name)
        except (PartitionMissing, ModelUnavailable) as exc:
            raise _fail_fast(exc) from exc
        return out

    @task
    def write_headline_classifications(classified: list[dict[str, Any]]) -> int:
        """Upsert the staged rows into headline_classifications (by article_id)."""
        from news_signals.core.storage import Storage
        from news_signals.features.pipeline import read_staged
        from news_signals.features.store import HEADLINE_SPEC, FeatureValidationError, get_feature_store

        storage = Storage()
        store = get_feature_store(storage)
        try:
            return sum(store.upsert(HEADLINE_SPEC, read_staged(storage, c["date"])) for c in classified)
        except FeatureValidationError as exc:
            raise _fail_fast(exc) from exc

    @task
    def write_vibe_vectors(classified: list[dict[str, Any]], _headlines_written: int) -> int:
        """Aggregate each day into vibe_vectors (by sourcecountry, date); then drop the staged rows."""
        from news_signals.core.storage import Storage
        from news_signals.features.pipeline import clear_staged, read_staged, vibe_vectors
        from news_signals.features.store import VIBE_SPEC, FeatureValidationError, get_feature_store

        storage = Storage()
        store = get_feature_store(storage)
        written = 0
        try:
            for c in classified:
                written += store.upsert(VIBE_SPEC, vibe_vectors(read_staged(storage, c["date"]), c["date"]))
        except FeatureValidationError as exc:
            raise _fail_fast(exc) from exc
        for c in classified:
            clear_staged(storage, c["date"])
        return written

    classified = classify_partition(resolve_model())
    written = write_headline_classifications(classified)
    write_vibe_vectors(classified, written)


signal_feature_pipeline()
