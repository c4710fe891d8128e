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
    from airflow.sdk.exceptions import AirflowFailException

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
        from news_signals.features.pipeline import PartitionMissing, resolve_stage, run_dates
        from news_signals.labelling.classifiers import ModelUnavailable

        ctx = get_current_context()
        params = ctx["params"]
        extras: list[dict[str, Any]] = []
        for asset_events in (ctx.get("triggering_asset_events") or {}).values():
            extras.extend(dict(getattr(ev, "extra", None) or {}) for ev in asset_events)
        logical = ctx.get("logical_date") or ctx["dag_run"].run_after
        try:
            days = run_dates(params.get("date"), extras, logical.date() if logical else None)
            return resolve_stage(days, params["classifier"], bool(params["require_model"]))
        except (ModelUnavailable, PartitionMissing, ValueError) as exc:
            raise _fail_fast(exc) from exc

    @task
    def classify_partition(resolved: dict[str, Any]) -> list[dict[str, Any]]:
        """Classify each day's partition in batches; rows are staged in storage, XCom gets counts."""
        from news_signals.features.pipeline import PartitionMissing, classify_stage
        from news_signals.labelling.classifiers import ModelUnavailable

        params = get_current_context()["params"]
        try:
            return classify_stage(resolved, bool(params["require_model"]))
        except (PartitionMissing, ModelUnavailable) as exc:
            raise _fail_fast(exc) from exc

    @task
    def write_headline_classifications(classified: list[dict[str, Any]]) -> int:
        """Upsert the staged rows into headline_classifications (by article_id)."""
        from news_signals.features.pipeline import write_headlines_stage
        from news_signals.features.store import FeatureValidationError

        try:
            return sum(write_headlines_stage(classified).values())
        except FeatureValidationError as exc:
            raise _fail_fast(exc) from exc

    @task
    def write_vibe_vectors(classified: list[dict[str, Any]], _headlines_written: int) -> int:
        """Aggregate each day into vibe_vectors (by sourcecountry, date); then drop the staged rows."""
        from news_signals.features.pipeline import write_vibes_stage
        from news_signals.features.store import FeatureValidationError

        try:
            return sum(write_vibes_stage(classified).values())
        except FeatureValidationError as exc:
            raise _fail_fast(exc) from exc

    classified = classify_partition(resolve_model())
    written = write_headline_classifications(classified)
    write_vibe_vectors(classified, written)


signal_feature_pipeline()
