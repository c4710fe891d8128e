"""The daily ingest as four plain functions: fetch → label → validate → publish.

Each stage reads the previous stage's staged parquet and returns a small JSON-able dict
(day, paths, counts), so the DAG's XCom stays tiny and every stage can be re-run alone
(from Airflow, ``python -m news_signals ingest-day`` or a test). Staged files live under
``$NEWS_SIGNALS_HOME/staging/<run key>/`` and are removed once the day is published or
quarantined; only :func:`publish_stage` touches ``articles/``, with one atomic replace.

Empty day (documented choice): the fetch and label stages pass an empty, fully-typed
frame along; validation then decides. With the default ``min_rows=1`` an empty day fails
with a message saying so (and is quarantined, so on-call sees it); with ``min_rows=0`` an
empty partition is published, so downstream consumers see the day as done.
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any

from news_signals.core.config import Settings
from news_signals.core.dates import parse_day
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, signals_to_columns, tag_column
from news_signals.daily.validation import ARTICLE_COLUMNS, BatchLimits

if TYPE_CHECKING:
    import pandas as pd

    from news_signals.labelling.classifiers import Classifier

log = logging.getLogger(__name__)

STAGING_AREA = "staging"
RAW_FILE = "raw.parquet"
LABELLED_FILE = "labelled.parquet"
_STRING_ARTICLE_COLUMNS = tuple(c for c in ARTICLE_COLUMNS if c != "seendate")


def resolve_day(override: str | None, data_interval_start: Any = None, logical_date: Any = None) -> str:
    """The day a run ingests: the ``date`` Param if given, else the start of the run's data interval.

    With the DAG's data-interval timetable a scheduled or backfilled run's interval is exactly
    its logical day; a manual run's is the last complete day before it was triggered.
    """
    if override:
        return parse_day(str(override), "day")
    for value in (data_interval_start, logical_date):
        if value is not None:
            return parse_day(value, "day")
    raise ValueError("no day to ingest: pass the date Param (YYYY-MM-DD) or run with a logical date")


def staging_dir(storage: Storage, run_key: str) -> str:
    """The staging folder of one run (the run key is made path-safe)."""
    return storage.path(STAGING_AREA, re.sub(r"[^A-Za-z0-9_.=-]+", "_", run_key).strip("_") or "run")


def clean_staging(storage: Storage, run_key: str) -> None:
    folder = staging_dir(storage, run_key)
    if storage.fs.exists(folder):
        storage.fs.rm(folder, recursive=True)


def normalise_articles(df: pd.DataFrame) -> pd.DataFrame:
    """The fetched frame in the partition's article schema (also for GDELT's column-less empty answer)."""
    import pandas as pd

    out = pd.DataFrame(index=range(len(df)))
    source = df.reset_index(drop=True)
    for col in _STRING_ARTICLE_COLUMNS:
        values = source[col] if col in source.columns else pd.Series([None] * len(source), dtype=object)
        out[col] = values.astype(object).where(values.notna(), None)
    if "seendate" in source.columns:
        out["seendate"] = pd.to_datetime(source["seendate"], utc=True).astype("datetime64[ns, UTC]")
    else:  # GDELT's empty answer has no columns; rows without dates fail validation by name
        out["seendate"] = pd.Series(pd.NaT, index=out.index, dtype="datetime64[ns, UTC]")
    return out[list(ARTICLE_COLUMNS)]


def label_frame(articles: pd.DataFrame, labeller: Classifier) -> pd.DataFrame:
    """Articles + ``{category}_score`` / ``{category}_tag`` (+ confidence when given) + ``labeller``."""
    import pandas as pd

    from news_signals.core.text import article_text

    texts = [article_text(t or "") for t in articles["title"]]
    signals = labeller.classify_texts(texts) if texts else []
    with_conf = any("confidence" in s[c] for s in signals for c in CATEGORIES)
    rows = [signals_to_columns(s, with_confidence=with_conf) for s in signals]
    columns = list(signals_to_columns(_empty_signals(), with_confidence=with_conf))
    labels = pd.DataFrame(rows, columns=columns, index=articles.index)
    for col in columns:
        labels[col] = (
            labels[col].astype("float64") if not col.endswith("_tag") else labels[col].astype(object)
        )
    out = pd.concat([articles, labels], axis=1)
    out["labeller"] = labeller_name(labeller)
    out["labeller"] = out["labeller"].astype(object)
    return out


def labeller_name(labeller: Classifier) -> str:
    """``name@version`` as stored in the ``labeller`` column (just ``name`` when it carries a version)."""
    name = str(labeller.name)
    version = getattr(labeller, "version", None)
    return name if version is None or "@" in name else f"{name}@{version}"


def _empty_signals() -> dict[str, dict[str, Any]]:
    return {c: {"score": 0.0, "tag": ABSENT, "confidence": 1.0} for c in CATEGORIES}


def label_counts(df: pd.DataFrame) -> dict[str, int]:
    """Rows in which each category fired (plus ``none``): printed by the demo, logged by publish."""
    counts = {c: int((df[tag_column(c)] != ABSENT).sum()) for c in CATEGORIES if tag_column(c) in df.columns}
    tags = [tag_column(c) for c in CATEGORIES if tag_column(c) in df.columns]
    counts["none"] = int((df[tags] == ABSENT).all(axis=1).sum()) if tags else len(df)
    return counts


# ---- the four stages ------------------------------------------------------------------------


def fetch_stage(
    day: date | str,
    *,
    run_key: str | None = None,
    settings: Settings | None = None,
    query: str | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    max_articles: int | None = None,
    output: str | None = None,
) -> dict[str, Any]:
    """Fetch the day's articles from GDELT (or the configured endpoint) into staging.

    ``output`` (a Parquet path or fsspec URL) writes there instead: the ``fetch`` command.
    """
    from news_signals.daily.gdelt import fetch_day

    settings = settings or Settings.from_env()
    storage = Storage(settings.home)
    day = parse_day(day, "day")
    run_key = run_key or f"date={day}"
    raw = fetch_day(
        date.fromisoformat(day),
        settings,
        query=query or None,
        countries=list(countries) if countries else None,
        languages=list(languages) if languages else None,
        max_articles=max_articles or None,
    )
    articles = normalise_articles(raw)
    if output:
        out_storage = Storage(posixpath.dirname(output) or ".")
        staged = out_storage.url(out_storage.write_parquet(out_storage.path(posixpath.basename(output)), articles))
    else:
        staged = storage.write_parquet(posixpath.join(staging_dir(storage, run_key), RAW_FILE), articles)
    log.info("fetched %d articles for %s from %s into %s", len(articles), day, settings.gdelt_url, staged)
    stats = {k: v for k, v in raw.attrs.get("fetch_stats", {}).items() if k != "articles"}
    return {"day": day, "run_key": run_key, "staged": staged, "rows": len(articles), "fetch": stats}


def label_stage(
    fetched: dict[str, Any], *, settings: Settings | None = None, labeller: Classifier | None = None
) -> dict[str, Any]:
    """Label the staged articles with the keyword bootstrap labeller (or ``labeller``)."""
    settings = settings or Settings.from_env()
    storage = Storage(settings.home)
    if labeller is None:
        from news_signals.labelling.classifiers import keyword_classifier

        labeller = keyword_classifier()
    articles = storage.read_parquet(fetched["staged"])
    labelled = label_frame(articles, labeller)
    staged = storage.write_parquet(
        posixpath.join(staging_dir(storage, fetched["run_key"]), LABELLED_FILE), labelled
    )
    counts = label_counts(labelled)
    log.info(
        "labelled %d articles for %s with %s: %s",
        len(labelled),
        fetched["day"],
        labeller_name(labeller),
        counts,
    )
    return {
        **fetched,
        "staged": staged,
        "rows": len(labelled),
        "labeller": labeller_name(labeller),
        "labels": counts,
    }


def validate_stage(
    labelled: dict[str, Any],
    *,
    settings: Settings | None = None,
    limits: BatchLimits | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
) -> dict[str, Any]:
    """GX-validate the staged batch; a failure quarantines it, cleans staging and raises BatchValidationError."""
    from news_signals.daily.validation import BatchValidationError, check_batch

    settings = settings or Settings.from_env()
    storage = Storage(settings.home)
    df = storage.read_parquet(labelled["staged"])
    try:
        report = check_batch(
            df,
            labelled["day"],
            settings,
            limits=limits,
            countries=countries or None,
            languages=languages or None,
            storage=storage,
        )
    except BatchValidationError:
        clean_staging(storage, labelled["run_key"])
        raise
    return {**labelled, "validated": True, "expectations": len(report.outcomes)}


def publish_stage(validated: dict[str, Any], *, settings: Settings | None = None) -> dict[str, Any]:
    """Replace the day's partition atomically with the validated batch, then drop the staging folder."""
    if not validated.get("validated"):
        raise ValueError(f"batch {validated.get('day')} has not passed validation; run validate_stage first")
    settings = settings or Settings.from_env()
    storage = Storage(settings.home)
    df = storage.read_parquet(validated["staged"])
    target = storage.replace_partition(validated["day"], df)
    clean_staging(storage, validated["run_key"])
    counts = label_counts(df)
    log.info("published %d articles for %s to %s: %s", len(df), validated["day"], storage.url(target), counts)
    return {"day": validated["day"], "partition": storage.url(target), "rows": len(df), "labels": counts}


def ingest_day(
    day: date | str,
    *,
    settings: Settings | None = None,
    run_key: str | None = None,
    query: str | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    max_articles: int | None = None,
    limits: BatchLimits | None = None,
    labeller: Classifier | None = None,
) -> dict[str, Any]:
    """All four stages for one day, outside Airflow (the ``ingest-day`` command)."""
    settings = settings or Settings.from_env()
    fetched = fetch_stage(
        day,
        run_key=run_key,
        settings=settings,
        query=query,
        countries=countries,
        languages=languages,
        max_articles=max_articles,
    )
    try:
        labelled = label_stage(fetched, settings=settings, labeller=labeller)
    except Exception:
        clean_staging(Storage(settings.home), fetched["run_key"])
        raise
    validated = validate_stage(
        labelled, settings=settings, limits=limits, countries=countries, languages=languages
    )
    return publish_stage(validated, settings=settings)
