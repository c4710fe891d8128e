"""
### gdelt_daily_ingest

Fetches one day of GDELT headlines, labels them with the keyword bootstrap labeller, validates
the batch with Great Expectations and publishes it as the daily partition
`articles/date=YYYY-MM-DD/part-0.parquet` under `$NEWS_SIGNALS_HOME`. On success it emits the
Asset `news_signals_daily_articles` with `extra={"date", "partition", "rows"}`, which starts
`signal_feature_pipeline`.

**Which day**: the run's data interval (`@daily`, UTC): a scheduled or backfilled run ingests
its logical date; a manual run ingests the last complete day, unless the `date` Param is set.
Backfill: `airflow backfill create --dag-id gdelt_daily_ingest --from-date 2026-11-01 --to-date 2026-11-07`.
Re-running a day replaces its partition exactly (atomic temp file + rename).

**On-call**

* `fetch` failed: GDELT (or `NEWS_SIGNALS_GDELT_URL`) unreachable, rate-limited or answering HTML;
  it retries with exponential backoff. `python -m news_signals doctor` checks the endpoint.
* `validate` failed: the batch broke an expectation; the log names each one with its unexpected
  count, and `quarantine/date=YYYY-MM-DD/` holds the rejected rows, `validation.json` and
  `summary.txt`. Nothing reached `articles/`. An empty day fails `row_count_in_range`
  (set `min_rows=0` to accept empty days).
* Re-run one day by hand: `python -m news_signals ingest-day --date YYYY-MM-DD`
  (or clear the run in the UI). Details: `docs/DAILY.md`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, Param, dag, get_current_context, task
from airflow.timetables.interval import CronDataIntervalTimetable
from news_signals.daily.assets import DAILY_ARTICLES_ASSET_NAME, DAILY_ARTICLES_ASSET_URI
from news_signals.ops.oncall import task_failure_callback  # light import: no heavy libraries

DAILY_ARTICLES = Asset(name=DAILY_ARTICLES_ASSET_NAME, uri=DAILY_ARTICLES_ASSET_URI)

# One dict for every task's defaults, so ops can add hooks in one place.
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "news-signals",
    "retries": 0,  # only fetch talks to a flaky service; the other stages fail on bad data, not luck
    "execution_timeout": timedelta(minutes=20),
    "on_failure_callback": task_failure_callback,
}

PARAMS = {
    "date": Param(
        None,
        type=["null", "string"],
        format="date",
        description="Day to ingest (YYYY-MM-DD). Empty: the run's data interval (the logical day).",
    ),
    "query": Param(
        "",
        type="string",
        description="Extra GDELT query terms ANDed with the country/language filters, e.g. "
        "'(storm OR flood)'. Empty: all articles of the configured sources.",
    ),
    "countries": Param(
        [],
        type="array",
        items={"type": "string"},
        description="GDELT source countries as FIPS codes (SW = Sweden), one per line. Empty: NEWS_SIGNALS_COUNTRIES.",
    ),
    "languages": Param(
        [],
        type="array",
        items={"type": "string"},
        description="Source languages (swedish, english), one per line. Empty: NEWS_SIGNALS_LANGUAGES.",
    ),
    "max_articles": Param(
        None,
        type=["null", "integer"],
        minimum=1,
        description="Stop after this many articles (for tests and trials). Empty: the whole day.",
    ),
    "min_rows": Param(
        None,
        type=["null", "integer"],
        minimum=0,
        description="Validation: fewest rows a day may have (0 publishes empty days). Empty: NEWS_SIGNALS_MIN_ROWS or 1.",
    ),
    "max_rows": Param(
        None,
        type=["null", "integer"],
        minimum=0,
        description="Validation: most rows a day may have. Empty: NEWS_SIGNALS_MAX_ROWS or 100000.",
    ),
    "max_unlabelled_share": Param(
        None,
        type=["null", "number"],
        minimum=0,
        maximum=1,
        description="Validation: largest share of rows in which no category fired. "
        "Empty: NEWS_SIGNALS_MAX_UNLABELLED_SHARE or 0.95.",
    ),
}


@dag(
    dag_id="gdelt_daily_ingest",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=datetime(2026, 11, 1, tzinfo=UTC),
    # Only the latest day is scheduled on unpause; fill gaps on purpose with
    # `airflow backfill create --dag-id gdelt_daily_ingest --from-date ... --to-date ...`.
    catchup=False,
    max_active_runs=3,  # GDELT asks for one request per 5 s: a few days at a time, not a stampede
    dagrun_timeout=timedelta(hours=4),
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    doc_md=__doc__,
    tags=["news-signals", "ingest"],
)
def gdelt_daily_ingest() -> None:
    @task(
        retries=4,
        retry_delay=timedelta(seconds=30),
        retry_exponential_backoff=True,
        max_retry_delay=timedelta(minutes=15),
        execution_timeout=timedelta(hours=2),
        doc_md="""Fetch the day's articles from GDELT into `staging/<run id>/raw.parquet`.
        Failing? Check the endpoint (`NEWS_SIGNALS_GDELT_URL` / connection), rate limiting (429) and
        the request log lines; it retries with exponential backoff. XCom: day, staged path, rows.""",
    )
    def fetch() -> dict[str, Any]:
        from news_signals.daily.pipeline import fetch_stage, resolve_day

        ctx = get_current_context()
        params = ctx["params"]
        day = resolve_day(params.get("date"), ctx.get("data_interval_start"), ctx.get("logical_date"))
        return fetch_stage(
            day,
            run_key=ctx["run_id"],
            query=params.get("query") or None,
            countries=params.get("countries") or None,
            languages=params.get("languages") or None,
            max_articles=params.get("max_articles"),
        )

    @task(
        doc_md="""Label the staged articles with the keyword bootstrap labeller (`labeller` column =
        `keywords@<lexicon version>`). Failing? A broken lexicon file or an unreadable staged file:
        the log names it. XCom: staged path, rows, per-category counts.""",
    )
    def label(fetched: dict[str, Any]) -> dict[str, Any]:
        from news_signals.daily.pipeline import label_stage

        return label_stage(fetched)

    @task(
        doc_md="""Validate the labelled batch with Great Expectations (types, nulls, seendate inside the
        day, unique ids, languages/countries, scores in [-1, 1], tags in the vocabulary, row count,
        unlabelled share). Failing? The log has a table of every expectation; the batch, its
        `validation.json` and `summary.txt` are in `quarantine/date=YYYY-MM-DD/`. Not retried.""",
    )
    def validate(labelled: dict[str, Any]) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException
        from news_signals.daily.pipeline import validate_stage
        from news_signals.daily.validation import BatchLimits, BatchValidationError

        params = get_current_context()["params"]
        overrides = {
            k: params[k]
            for k in ("min_rows", "max_rows", "max_unlabelled_share")
            if params.get(k) is not None
        }
        try:
            return validate_stage(
                labelled,
                limits=BatchLimits(**overrides),
                countries=params.get("countries") or None,
                languages=params.get("languages") or None,
            )
        except (BatchValidationError, ValueError) as exc:  # bad data or bad limits: retrying cannot help
            raise AirflowFailException(str(exc)) from exc

    @task(
        outlets=[DAILY_ARTICLES],
        doc_md="""Replace `articles/date=YYYY-MM-DD/part-0.parquet` atomically with the validated batch,
        remove the staging folder and emit the `news_signals_daily_articles` Asset event with
        `extra={"date", "partition", "rows"}`. Failing? Storage permissions or space at `$NEWS_SIGNALS_HOME`.""",
    )
    def publish(validated: dict[str, Any]) -> dict[str, Any]:
        from news_signals.daily.pipeline import publish_stage

        result = publish_stage(validated)
        ctx = get_current_context()
        ctx["outlet_events"][DAILY_ARTICLES].extra = {
            "date": result["day"],
            "partition": result["partition"],
            "rows": result["rows"],
        }
        return result

    publish(validate(label(fetch())))


gdelt_daily_ingest()
