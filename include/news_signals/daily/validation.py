"""Great Expectations checks for one labelled daily batch, and the quarantine of a failing one.

Why GX and not hand-written asserts: every check yields a per-expectation result with
unexpected counts and a JSON document on-call can open, and the same suite style is used
for training snapshots. GX is imported inside the functions (its import takes seconds), so
DAG files and ``--help`` stay fast.

A batch that fails is never published: it is written to ``quarantine/date=YYYY-MM-DD/``
(``part-0.parquet`` with the rejected rows, ``validation.json``, ``summary.txt``) and
:class:`BatchValidationError` names each failed expectation with its unexpected count.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from news_signals.core.config import Settings
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, score_column, tag_column

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SUITE_NAME = "daily_labelled_batch"
ARTICLE_COLUMNS: tuple[str, ...] = (
    "article_id",
    "url",
    "title",
    "seendate",
    "domain",
    "language",
    "sourcecountry",
)
STRING_COLUMNS: tuple[str, ...] = (
    "article_id",
    "url",
    "title",
    "domain",
    "language",
    "sourcecountry",
    "labeller",
)
REQUIRED_COLUMNS: tuple[str, ...] = (
    *ARTICLE_COLUMNS,
    *(col for c in CATEGORIES for col in (score_column(c), tag_column(c))),
    "labeller",
)
N_CATEGORIES_COLUMN = "n_categories"  # helper column added for validation only, never stored
_STRING_TYPES = ["object", "str", "string", "StringDtype"]
_FLOAT_TYPES = ["float64", "float", "float32", "Float64"]

QUARANTINE_BATCH = "part-0.parquet"
QUARANTINE_RESULT = "validation.json"
QUARANTINE_SUMMARY = "summary.txt"


@dataclass(frozen=True)
class BatchLimits:
    """Batch-level thresholds; defaults from ``NEWS_SIGNALS_MIN_ROWS`` / ``_MAX_ROWS`` / ``_MAX_UNLABELLED_SHARE``.

    ``min_rows=0`` accepts an empty day (an empty partition is then published);
    ``max_unlabelled_share`` is the largest allowed share of rows in which no category fired.
    """

    min_rows: int = field(default_factory=lambda: Settings.from_env().min_rows)
    max_rows: int = field(default_factory=lambda: Settings.from_env().max_rows)
    max_unlabelled_share: float = field(default_factory=lambda: Settings.from_env().max_unlabelled_share)

    def __post_init__(self) -> None:
        if self.min_rows < 0 or self.max_rows < self.min_rows:
            raise ValueError(
                f"row-count range [{self.min_rows}, {self.max_rows}] is invalid: need 0 <= min_rows <= max_rows"
            )
        if not 0.0 <= self.max_unlabelled_share <= 1.0:
            raise ValueError(f"max_unlabelled_share={self.max_unlabelled_share} must be in [0, 1]")


@dataclass
class ExpectationOutcome:
    """One expectation's verdict in a form a log line or XCom can carry."""

    name: str  # a stable, readable id such as "seendate_in_day" or "economics_score_in_range"
    expectation: str  # the GX expectation type
    column: str | None
    success: bool
    unexpected_count: int | None = None
    observed: Any = None
    error: str | None = None  # GX raised (e.g. a missing column)
    sample: list[Any] = field(default_factory=list)  # a few unexpected values

    def describe(self) -> str:
        if self.error:
            return f"{self.name}: error: {self.error}"
        parts = [self.name]
        if self.unexpected_count is not None:
            parts.append(f"{self.unexpected_count} unexpected")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.sample:
            parts.append(f"e.g. {self.sample[:3]}")
        return ": ".join(parts[:1]) + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")


@dataclass
class ValidationReport:
    """The verdict on one batch: ``success``, each expectation's outcome and the full GX result JSON."""

    day: str
    row_count: int
    success: bool
    outcomes: list[ExpectationOutcome]
    gx_result: dict[str, Any]
    limits: BatchLimits

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def failure_message(self) -> str:
        """One message naming each failed expectation and its unexpected count."""
        if self.success:
            return f"batch {self.day}: all {len(self.outcomes)} expectations passed"
        items = "; ".join(o.describe() for o in self.failed)
        hint = ""
        if self.row_count == 0 and any(o.name == "row_count_in_range" for o in self.failed):
            hint = (
                " (an empty day: check the GDELT query, countries and languages; "
                "set min_rows=0 to accept and publish empty days)"
            )
        return (
            f"batch {self.day} failed {len(self.failed)} of {len(self.outcomes)} expectations: {items}{hint}"
        )

    def table(self) -> str:
        """A fixed-width table for the task log: one line per expectation."""
        width = max([len(o.name) for o in self.outcomes] + [11])
        lines = [
            f"GX validation of batch {self.day}: {self.row_count} rows, "
            f"{'PASSED' if self.success else 'FAILED'} ({len(self.failed)} failed of {len(self.outcomes)})",
            f"{'expectation'.ljust(width)}  result  unexpected  detail",
        ]
        for o in self.outcomes:
            count = "" if o.unexpected_count is None else str(o.unexpected_count)
            detail = o.error or ("" if o.observed is None else f"observed {o.observed}")
            if o.sample and not o.success:
                detail = (detail + f" e.g. {o.sample[:3]}").strip()
            lines.append(f"{o.name.ljust(width)}  {'ok' if o.success else 'FAIL':6}  {count:>10}  {detail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Small and JSON-able (no GX result): for XCom and the quarantine summary."""
        return {
            "day": self.day,
            "row_count": self.row_count,
            "success": self.success,
            "limits": asdict(self.limits),
            "failed": [o.name for o in self.failed],
            "outcomes": [asdict(o) for o in self.outcomes],
        }


class BatchValidationError(ValueError):
    """A batch failed validation; ``report`` holds the details and ``quarantine`` where it went."""

    def __init__(self, report: ValidationReport, quarantine: str | None = None) -> None:
        where = f"; rejected batch and GX result in {quarantine}" if quarantine else ""
        super().__init__(report.failure_message() + where)
        self.report = report
        self.quarantine = quarantine


def day_window(day: date | str) -> tuple[datetime, datetime]:
    """[start, end) of a logical day in UTC: the only seendates a day's batch may hold."""
    d = date.fromisoformat(day) if isinstance(day, str) else day
    start = datetime.combine(d, time.min, tzinfo=UTC)
    return start, start + timedelta(days=1)


def allowed_values(values: Iterable[str]) -> list[str]:
    """A configured set plus its case variants: GDELT writes ``English`` where the query says ``english``."""
    out: list[str] = []
    for v in values:
        for variant in (v, v.lower(), v.upper(), v.title()):
            if variant not in out:
                out.append(variant)
    return out


def country_values(countries: Sequence[str]) -> list[str]:
    """Configured source countries as given and as the country names GDELT writes in results."""
    from news_signals.daily.gdelt import COUNTRIES

    names = {k.upper(): v for k, v in COUNTRIES.items()}
    return allowed_values([*countries, *(names[c.upper()] for c in countries if c.upper() in names)])


def language_values(languages: Sequence[str]) -> list[str]:
    """Configured languages as given and as the language names GDELT writes (``swe`` -> ``Swedish``)."""
    from news_signals.daily.gdelt import LANGUAGES

    names = {k.lower(): v for k, v in LANGUAGES.items()}
    return allowed_values([*languages, *(names[x.lower()] for x in languages if x.lower() in names)])


def build_suite(
    day: date | str, countries: Sequence[str], languages: Sequence[str], limits: BatchLimits
) -> Any:
    """The expectation suite for one day's labelled batch (needs an active GX context)."""
    import great_expectations as gx

    E = gx.expectations
    start, end = day_window(day)
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(name: str, expectation: Any) -> None:
        expectation.meta = {"name": name}
        suite.add_expectation(expectation)

    add("columns_present", E.ExpectTableColumnsToMatchSet(column_set=[*REQUIRED_COLUMNS], exact_match=False))
    for col in STRING_COLUMNS:
        add(f"{col}_is_string", E.ExpectColumnValuesToBeInTypeList(column=col, type_list=_STRING_TYPES))
    # a tz-aware column is checked value by value (pandas.Timestamp); a naive datetime64 column fails
    add("seendate_is_utc_timestamp", E.ExpectColumnValuesToBeOfType(column="seendate", type_="Timestamp"))
    for col in ("title", "url", "seendate"):
        add(f"{col}_not_null", E.ExpectColumnValuesToNotBeNull(column=col))
    add(
        "seendate_in_day",
        E.ExpectColumnValuesToBeBetween(column="seendate", min_value=start, max_value=end, strict_max=True),
    )
    add("article_id_unique", E.ExpectColumnValuesToBeUnique(column="article_id"))
    add("article_id_format", E.ExpectColumnValuesToMatchRegex(column="article_id", regex=r"^[0-9a-f]{16}$"))
    add(
        "language_in_set",
        E.ExpectColumnValuesToBeInSet(column="language", value_set=language_values(languages)),
    )
    add(
        "sourcecountry_in_set",
        E.ExpectColumnValuesToBeInSet(column="sourcecountry", value_set=country_values(countries)),
    )
    for c in CATEGORIES:
        add(
            f"{score_column(c)}_is_float",
            E.ExpectColumnValuesToBeInTypeList(column=score_column(c), type_list=_FLOAT_TYPES),
        )
        add(
            f"{score_column(c)}_in_range",
            E.ExpectColumnValuesToBeBetween(column=score_column(c), min_value=-1.0, max_value=1.0),
        )
        add(
            f"{tag_column(c)}_in_vocabulary",
            E.ExpectColumnValuesToBeInSet(column=tag_column(c), value_set=[ABSENT, *TAGS[c]]),
        )
    add(
        "row_count_in_range",
        E.ExpectTableRowCountToBeBetween(min_value=limits.min_rows, max_value=limits.max_rows),
    )
    add(
        "unlabelled_share_below_max",
        E.ExpectColumnValuesToBeBetween(
            column=N_CATEGORIES_COLUMN, min_value=1, mostly=1.0 - limits.max_unlabelled_share
        ),
    )
    return suite


def with_helper_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy with ``n_categories`` (how many categories have a tag) for the unlabelled-share check."""
    out = df.copy()
    tags = [tag_column(c) for c in CATEGORIES if tag_column(c) in out.columns]
    out[N_CATEGORIES_COLUMN] = (out[tags].fillna(ABSENT) != ABSENT).sum(axis=1).astype("int64") if tags else 0
    return out


def _outcome(result: Any) -> ExpectationOutcome:
    cfg = result.expectation_config
    meta = cfg.meta or {}
    res = result.result or {}
    error = None
    info = result.exception_info or {}
    if info.get("raised_exception"):
        error = info.get("exception_message")
    else:  # a metric that could not be computed is reported per metric id
        for value in info.values():
            if isinstance(value, dict) and value.get("raised_exception"):
                error = value.get("exception_message")
                break
    observed = res.get("observed_value")
    if cfg.type == "expect_table_columns_to_match_set" and res.get("details"):
        observed = {"missing": res["details"].get("mismatched", {}).get("missing", [])}
    if cfg.type == "expect_column_values_to_be_between" and cfg.kwargs.get("column") == N_CATEGORIES_COLUMN:
        pct = res.get("unexpected_percent")
        observed = None if pct is None else f"{pct:.1f}% of rows have no category"
    return ExpectationOutcome(
        name=str(meta.get("name", cfg.type)),
        expectation=cfg.type,
        column=cfg.kwargs.get("column"),
        success=bool(result.success),
        unexpected_count=res.get("unexpected_count"),
        observed=_jsonable(observed),
        error=error.splitlines()[0] if error else None,
        sample=[_jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:5]],
    )


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def validate_batch(
    df: pd.DataFrame,
    day: date | str,
    settings: Settings | None = None,
    *,
    limits: BatchLimits | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
) -> ValidationReport:
    """Run the daily suite on ``df`` with an ephemeral GX context; never raises on bad data."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    settings = settings or Settings.from_env()
    limits = limits or BatchLimits()
    day_iso = day if isinstance(day, str) else day.isoformat()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add(
        build_suite(day_iso, countries or settings.countries, languages or settings.languages, limits)
    )
    batch_definition = (
        context.data_sources.add_pandas("news_signals")
        .add_dataframe_asset(f"labelled_{day_iso}")
        .add_batch_definition_whole_dataframe("whole_day")
    )
    batch = batch_definition.get_batch(batch_parameters={"dataframe": with_helper_columns(df)})
    result = batch.validate(suite, result_format="SUMMARY")
    outcomes = [_outcome(r) for r in result.results]
    for o in outcomes:  # GX's own error for a missing column can be obscure ("list index out of range")
        if o.column and o.column not in df.columns and o.column != N_CATEGORIES_COLUMN:
            o.success, o.error = False, f"column {o.column!r} is missing from the batch"
    report = ValidationReport(
        day=day_iso,
        row_count=len(df),
        success=bool(result.success) and all(o.success for o in outcomes),
        outcomes=outcomes,
        gx_result=_jsonable(result.to_json_dict()),
        limits=limits,
    )
    (log.info if report.success else log.error)("%s", report.table())
    return report


def quarantine_batch(df: pd.DataFrame, report: ValidationReport, storage: Storage | None = None) -> str:
    """Write the rejected batch, its GX result JSON and a readable summary; return the folder."""
    storage = storage or Storage()
    folder = storage.quarantine_dir(report.day)
    # replace_partition writes the batch atomically and clears files a previous attempt left
    storage.replace_partition(report.day, df, area="quarantine")
    storage.write_json(
        f"{folder}/{QUARANTINE_RESULT}", {"report": report.to_dict(), "gx_result": report.gx_result}
    )
    storage.write_bytes(
        f"{folder}/{QUARANTINE_SUMMARY}", (report.table() + "\n\n" + report.failure_message() + "\n").encode()
    )
    log.error("batch %s quarantined in %s", report.day, storage.url(folder))
    return storage.url(folder)


def check_batch(
    df: pd.DataFrame,
    day: date | str,
    settings: Settings | None = None,
    *,
    limits: BatchLimits | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    storage: Storage | None = None,
) -> ValidationReport:
    """Validate; on failure quarantine the batch and raise :class:`BatchValidationError`."""
    report = validate_batch(df, day, settings, limits=limits, countries=countries, languages=languages)
    if not report.success:
        where = quarantine_batch(df, report, storage or Storage((settings or Settings.from_env()).home))
        raise BatchValidationError(report, where)
    return report
