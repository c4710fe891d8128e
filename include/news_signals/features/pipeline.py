"""The feature pipeline: classify a daily partition into ``headline_classifications`` and ``vibe_vectors``.

Each DAG task is one function here (resolve → classify → write headlines → write vibes), and
:func:`run_feature_pipeline` chains them for the CLI and the demo. The model is picked up from
the registry on every run (nothing is cached across versions in memory; the registry's download
cache is keyed by name and version and verifies hashes), so a newly promoted model is used by
the next run without a restart.
"""

from __future__ import annotations

import logging
import math
import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from news_signals.core.dates import parse_day
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, score_column, signals_to_columns, tag_column
from news_signals.core.text import article_id, article_text
from news_signals.features.store.base import (
    HEADLINE_SPEC,
    VIBE_SPEC,
    FeatureStore,
    count_column,
    intensity_column,
)
from news_signals.labelling.classifiers import (
    Classifier,
    ModelUnavailable,
    classify_named,
    keyword_classifier,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

CHOICES_HELP = "auto (promoted model, keyword fallback), keywords, or a registered version number such as 3"
DEFAULT_BATCH_SIZE = 128
HEADLINE_PASSTHROUGH = ("article_id", "seendate", "title", "url", "domain", "language", "sourcecountry")

# Vibe formula constants (see :func:`intensity`).
NOISE_FLOOR = 0.1
MAX_WEIGHT = 2.0


class PartitionMissing(FileNotFoundError):
    """The daily partition the run needs has not been produced."""


# ---- model pickup -------------------------------------------------------------------------------
@dataclass
class ModelChoice:
    """Which classifier a run uses and why (small and JSON-safe: this is what goes into XCom)."""

    classifier: str  # "keywords" or "model:<name>@<version>"
    version: int | None  # registry version, None for keywords
    model_name: str | None
    reason: str
    fell_back: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelChoice:
        return cls(**data)


def _check_choice(choice: str | int) -> str:
    text = str(choice).strip().lower()
    if text in ("auto", "keywords") or text.isdigit():
        return text
    raise ValueError(f"classifier {choice!r} is not valid; use {CHOICES_HELP}")


def resolve_model(
    choice: str | int = "auto",
    require_model: bool = False,
    model_name: str | None = None,
    storage: Storage | None = None,
) -> tuple[Classifier, ModelChoice]:
    """Load the classifier for ``choice``: the promoted model, a pinned version, or keywords.

    Every model failure (nothing promoted, registry or download error, hash or taxonomy
    mismatch) falls back to the keyword labeller with a warning naming the reason, unless
    ``require_model`` is set, in which case ModelUnavailable is raised.
    """
    text = _check_choice(choice)
    if text == "keywords":
        return keyword_classifier(), ModelChoice("keywords", None, None, "keywords requested")
    from news_signals.core.config import Settings

    name = model_name or Settings().model_name
    try:
        clf, version = _load_registered(name, None if text == "auto" else int(text), storage)
    except Exception as exc:
        what = "the promoted model" if text == "auto" else f"{name}@{text}"
        if require_model:
            raise ModelUnavailable(f"require_model is set and {what} is unavailable: {exc}") from exc
        reason = f"{what} is unavailable ({exc}); falling back to keywords"
        log.warning(reason)
        return keyword_classifier(), ModelChoice("keywords", None, name, reason, fell_back=True)
    where = "promoted production version" if text == "auto" else "pinned version"
    reason = f"using {clf.name} ({where})"
    log.info(reason)
    return clf, ModelChoice(clf.name, version, name, reason)


def _load_registered(name: str, version: int | None, storage: Storage | None) -> tuple[Classifier, int]:
    from news_signals.labelling.classifiers import model_classifier, registered_model_dir

    path, ref = registered_model_dir(name, version, storage)
    return model_classifier(path), int(ref.rsplit("@", 1)[1])


# ---- partitions → feature rows ------------------------------------------------------------------
def load_partition(day: str | date, storage: Storage | None = None) -> pd.DataFrame:
    """The day's labelled partition; PartitionMissing says how to produce it when absent."""
    storage = storage or Storage()
    iso = parse_day(day)
    target = storage.partition_file(iso)
    if not storage.fs.exists(target):
        raise PartitionMissing(
            f"no daily partition for {iso} at {storage.url(target)}; produce it first by running the "
            f"gdelt_daily_ingest DAG for {iso} (e.g. `airflow dags test gdelt_daily_ingest {iso}`) "
            "or `python -m news_signals ingest-day` for that date"
        )
    return storage.read_parquet(target)


def classify_rows(
    articles: pd.DataFrame, classifier: Classifier, batch_size: int = DEFAULT_BATCH_SIZE
) -> pd.DataFrame:
    """Feature rows of ``headline_classifications`` for ``articles`` (a daily partition), in batches."""
    import pandas as pd

    if "title" not in articles.columns:
        raise ValueError(f"articles need a 'title' column; got {list(articles.columns)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    df = articles.reset_index(drop=True)
    titles = df["title"].fillna("").astype(str).tolist()
    urls = df["url"].fillna("").astype(str).tolist() if "url" in df.columns else [""] * len(df)
    ids = (
        df["article_id"].astype(str).tolist()
        if "article_id" in df.columns
        else [article_id(u, t) for u, t in zip(urls, titles, strict=True)]
    )
    descriptions = df["description"].tolist() if "description" in df.columns else [None] * len(df)
    texts = [
        article_text(t, d if isinstance(d, str) else None) for t, d in zip(titles, descriptions, strict=True)
    ]

    signal_rows: list[dict[str, object]] = []
    names: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        signals, batch_names = classify_named(classifier, batch)
        signal_rows.extend(signals_to_columns(s) for s in signals)
        names.extend(batch_names)
        log.info("classified %d/%d articles with %s", len(signal_rows), len(texts), classifier.name)
    routed = sum(n != classifier.name for n in names)
    if routed:
        log.info("%d articles in languages %s was not trained for went to keywords", routed, classifier.name)
    if len(signal_rows) != len(texts):
        raise RuntimeError(f"{classifier.name} returned {len(signal_rows)} results for {len(texts)} texts")

    out = pd.DataFrame(
        {
            "article_id": ids,
            "seendate": pd.to_datetime(df["seendate"], utc=True)
            if "seendate" in df.columns
            else pd.Series(pd.NaT, index=df.index, dtype="datetime64[ns, UTC]"),
            "title": titles,
            "url": urls,
            **{
                col: df[col].fillna("").astype(str) if col in df.columns else ""
                for col in ("domain", "language", "sourcecountry")
            },
        }
    )
    signals = pd.DataFrame(
        signal_rows, columns=[c for cat in CATEGORIES for c in (score_column(cat), tag_column(cat))]
    )
    out = pd.concat([out, signals], axis=1)
    out["classifier"] = names if len(names) == len(out) else classifier.name
    return HEADLINE_SPEC.conform(out)


# ---- vibe vectors -------------------------------------------------------------------------------
def intensity(scores: Iterable[float]) -> float:
    """Count-weighted intensity of one category for one country-day, in [-1, 1].

    Scores with ``|s| <= 0.1`` are noise and dropped. With the ``n`` kept scores and their mean ``m``::

        weight    = min(1 + log10(n) / 2, 2)          # 1 for one article, 1.5 at 10, capped at 2 from 100
        intensity = sign(m) * min(|m| * weight, 1)

    so many articles agreeing amplify the mean (up to x2) while a single strong article does not.
    No kept score gives 0. This is the formula of the replaced system, kept on purpose so the
    feature keeps its meaning for downstream consumers.
    """
    kept = [float(s) for s in scores if s is not None and not math.isnan(s) and abs(float(s)) > NOISE_FLOOR]
    n = len(kept)
    if n == 0:
        return 0.0
    mean = sum(kept) / n
    weight = min(1.0 + math.log10(n) / 2.0, MAX_WEIGHT)
    return math.copysign(min(abs(mean) * weight, 1.0), mean) if mean != 0 else 0.0


def most_common_tag(category: str, tags: Sequence[str]) -> str:
    """The most frequent non-absent tag; ties go to the tag listed first in the vocabulary."""
    counts = Counter(t for t in tags if t and t != ABSENT)
    if not counts:
        return ABSENT
    order = {t: i for i, t in enumerate(TAGS[category])}
    return min(counts, key=lambda t: (-counts[t], order.get(t, len(order)), t))


def vibe_vectors(rows: pd.DataFrame, day: str | date) -> pd.DataFrame:
    """One ``vibe_vectors`` row per source country for ``day`` from ``headline_classifications`` rows.

    Per category: ``{cat}_intensity`` (:func:`intensity`), ``{cat}_tag`` (most common tag among the
    articles that passed the noise floor) and ``{cat}_count`` (how many did).
    """
    import pandas as pd

    iso = parse_day(day)
    if rows.empty:
        return pd.DataFrame(columns=list(VIBE_SPEC.columns))
    countries = rows["sourcecountry"].fillna("").astype(str).replace("", "unknown")
    out = []
    for country, group in rows.groupby(countries, sort=True):
        record: dict[str, object] = {
            "sourcecountry": country,
            "date": date.fromisoformat(iso),
            "n_articles": len(group),
        }
        for c in CATEGORIES:
            scores = group[score_column(c)].astype(float)
            mask = scores.abs() > NOISE_FLOOR
            record[intensity_column(c)] = intensity(scores.tolist())
            record[tag_column(c)] = most_common_tag(c, group.loc[mask, tag_column(c)].astype(str).tolist())
            record[count_column(c)] = int(mask.sum())
        names = sorted(set(group["classifier"].astype(str)))
        record["classifier"] = names[0] if len(names) == 1 else "+".join(names)
        out.append(record)
    return VIBE_SPEC.conform(pd.DataFrame(out))


# ---- the pipeline -------------------------------------------------------------------------------
def staging_file(storage: Storage, day: str | date) -> str:
    """Where the classify task leaves a day's rows for the write tasks (kept out of XCom)."""
    return storage.path("features", "_staging", f"date={parse_day(day)}", f"{HEADLINE_SPEC.name}.parquet")


def classify_partition(
    day: str | date,
    choice: ModelChoice,
    require_model: bool = False,
    storage: Storage | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    classifier: Classifier | None = None,
) -> tuple[pd.DataFrame, ModelChoice]:
    """Classify one day's partition with the version ``choice`` names (reloaded, hashes re-verified)."""
    storage = storage or Storage()
    articles = load_partition(day, storage)
    if classifier is None:
        pinned = "keywords" if choice.version is None else str(choice.version)
        classifier, used = resolve_model(pinned, require_model, choice.model_name, storage)
        if used.fell_back:  # the model broke between resolve and classify: say so in the rows and log
            choice = used
    rows = classify_rows(articles, classifier, batch_size)
    log.info("%s: %d articles classified by %s", parse_day(day), len(rows), classifier.name)
    return rows, choice


# ---- the stages: the DAG's tasks and run_feature_pipeline (the CLI, the demo) call these ---------
def resolve_stage(
    days: Sequence[str | date],
    choice: str | int = "auto",
    require_model: bool = False,
    storage: Storage | None = None,
) -> dict[str, Any]:
    """Check the days' partitions exist and pick the classifier (downloaded and verified once here)."""
    storage = storage or Storage()
    day_list = sorted({parse_day(d) for d in days})
    if not day_list:
        raise ValueError("no dates given; pass at least one YYYY-MM-DD")
    missing = [d for d in day_list if not storage.fs.exists(storage.partition_file(d))]
    if missing:
        load_partition(missing[0], storage)  # raises PartitionMissing with the how-to
    _, model_choice = resolve_model(choice, require_model, storage=storage)
    return {"days": day_list, "choice": model_choice.to_dict()}


def classify_stage(
    resolved: dict[str, Any],
    require_model: bool = False,
    storage: Storage | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[dict[str, Any]]:
    """Classify each resolved day with the resolved version and stage the rows (XCom gets counts)."""
    storage = storage or Storage()
    model_choice = ModelChoice.from_dict(resolved["choice"])
    pinned = "keywords" if model_choice.version is None else str(model_choice.version)
    classifier, used = resolve_model(pinned, require_model, model_choice.model_name, storage)
    if used.fell_back:  # the model broke between resolve and classify: say so in the rows and the summary
        model_choice = used
    out = []
    for day in resolved["days"]:
        rows, _ = classify_partition(day, model_choice, storage=storage, batch_size=batch_size, classifier=classifier)
        write_staged(storage, day, rows)
        out.append({"date": day, "rows": len(rows), "classifier": classifier.name, "reason": model_choice.reason,
                    "fell_back": model_choice.fell_back})
    return out


def write_headlines_stage(
    classified: Sequence[dict[str, Any]], storage: Storage | None = None, store: FeatureStore | None = None
) -> dict[str, int]:
    """Upsert each day's staged rows into headline_classifications (by article_id): rows per day."""
    from news_signals.features.store import get_feature_store

    storage = storage or Storage()
    store = store or get_feature_store(storage)
    return {c["date"]: store.upsert(HEADLINE_SPEC, read_staged(storage, c["date"])) for c in classified}


def write_vibes_stage(
    classified: Sequence[dict[str, Any]], storage: Storage | None = None, store: FeatureStore | None = None
) -> dict[str, int]:
    """Aggregate each day into vibe_vectors (by sourcecountry, date), then drop the staged rows."""
    from news_signals.features.store import get_feature_store

    storage = storage or Storage()
    store = store or get_feature_store(storage)
    written = {c["date"]: store.upsert(VIBE_SPEC, vibe_vectors(read_staged(storage, c["date"]), c["date"]))
               for c in classified}
    for c in classified:
        clear_staged(storage, c["date"])
    return written


def run_feature_pipeline(
    days: Sequence[str | date] | str | date,
    choice: str | int = "auto",
    require_model: bool = False,
    storage: Storage | None = None,
    store: FeatureStore | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> dict[str, Any]:
    """The DAG's stages in order for the given days; the summary the CLI and the demo print."""
    from news_signals.features.store import get_feature_store

    storage = storage or Storage()
    store = store or get_feature_store(storage)
    resolved = resolve_stage([days] if isinstance(days, str | date) else days, choice, require_model, storage)
    classified = classify_stage(resolved, require_model, storage, batch_size)
    headlines = write_headlines_stage(classified, storage, store)
    vibes = write_vibes_stage(classified, storage, store)
    model_choice = ModelChoice.from_dict(resolved["choice"])
    last = classified[-1]
    return {
        "classifier": model_choice.classifier if not last["fell_back"] else last["classifier"],
        "reason": last["reason"],
        "fell_back": last["fell_back"],
        "store": store.describe(),
        "days": {d: {"headline_rows": headlines[d], "vibe_rows": vibes[d]} for d in resolved["days"]},
        "headline_rows": sum(headlines.values()),
        "vibe_rows": sum(vibes.values()),
    }


def write_staged(storage: Storage, day: str | date, rows: pd.DataFrame) -> str:
    return storage.write_parquet(staging_file(storage, day), rows)


def read_staged(storage: Storage, day: str | date) -> pd.DataFrame:
    target = staging_file(storage, day)
    if not storage.fs.exists(target):
        raise FileNotFoundError(
            f"no classified rows staged for {parse_day(day)} at {target}; re-run classify_partition"
        )
    return storage.read_parquet(target)


def clear_staged(storage: Storage, day: str | date) -> None:
    parent = posixpath.dirname(staging_file(storage, day))
    if storage.fs.exists(parent):
        storage.fs.rm(parent, recursive=True)


# ---- which days a DAG run processes -------------------------------------------------------------
def run_dates(
    param_date: str | None,
    asset_event_extras: Iterable[dict[str, Any] | None] = (),
    logical_date: date | str | None = None,
) -> list[str]:
    """The days one run classifies: the ``date`` Param, else every day named by the triggering
    asset events (``extra["date"]``, or ``extra["dates"]`` for a batch; several events can be
    folded into one run), else the run's logical date. Sorted, unique."""
    if param_date:
        return [parse_day(param_date)]
    days: set[str] = set()
    for extra in asset_event_extras:
        extra = extra or {}
        if extra.get("date"):
            days.add(parse_day(extra["date"]))
        for d in extra.get("dates") or ():
            days.add(parse_day(d))
    if days:
        return sorted(days)
    if logical_date:
        return [parse_day(logical_date if isinstance(logical_date, str) else logical_date.isoformat())]
    raise ValueError(
        "no date to process: set the `date` Param (YYYY-MM-DD) when triggering signal_feature_pipeline by hand"
    )
