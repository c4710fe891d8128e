"""Feature-group schemas and the store interface shared by the local and Hopsworks stores.

The schemas live here once so the local parquet store, the Hopsworks feature group and the
GX suite attached to it can never disagree about a column.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from news_signals.core.taxonomy import CATEGORIES, SIGNAL_COLUMNS, TAGS, tag_column

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

HEADLINE_GROUP = "headline_classifications"
VIBE_GROUP = "vibe_vectors"


def intensity_column(category: str) -> str:
    return f"{category}_intensity"


def count_column(category: str) -> str:
    return f"{category}_count"


@dataclass(frozen=True)
class FeatureGroupSpec:
    """Name, version, keys and ordered columns of one feature group."""

    name: str
    version: int
    primary_key: tuple[str, ...]
    event_time: str
    columns: tuple[str, ...]
    description: str

    def conform(self, df: pd.DataFrame) -> pd.DataFrame:
        """The frame with exactly this group's columns in order; one row per primary key (last wins).

        Raises ValueError naming the missing columns, so a caller with a stale schema learns
        what to add instead of writing a half-filled group.
        """
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise ValueError(
                f"feature group {self.name!r} needs columns {missing}; "
                f"got {list(df.columns)} (build rows with news_signals.features.pipeline)"
            )
        out = df.loc[:, list(self.columns)]
        dupes = int(out.duplicated(list(self.primary_key), keep="last").sum())
        if dupes:
            log.info("%s: %d rows share a primary key with a later row; keeping the last", self.name, dupes)
            out = out.drop_duplicates(list(self.primary_key), keep="last")
        return out.reset_index(drop=True)


HEADLINE_SPEC = FeatureGroupSpec(
    name=HEADLINE_GROUP,
    version=1,
    primary_key=("article_id",),
    event_time="seendate",
    columns=(
        "article_id",
        "seendate",
        "title",
        "url",
        "domain",
        "language",
        "sourcecountry",
        *SIGNAL_COLUMNS,
        "classifier",
    ),
    description=(
        "One row per GDELT headline: signed score in [-1, 1] and tag per news category, "
        "and the classifier that produced them (model:<name>@<version> or keywords)."
    ),
)

VIBE_SPEC = FeatureGroupSpec(
    name=VIBE_GROUP,
    version=1,
    primary_key=("sourcecountry", "date"),
    event_time="date",
    columns=(
        "sourcecountry",
        "date",
        "n_articles",
        *(col for c in CATEGORIES for col in (intensity_column(c), tag_column(c), count_column(c))),
        "classifier",
    ),
    description=(
        "Daily vibe vector per source country: per category a count-weighted intensity in [-1, 1] "
        "(see news_signals.features.pipeline.intensity), the most common tag and the number of articles behind it."
    ),
)

SPECS: dict[str, FeatureGroupSpec] = {s.name: s for s in (HEADLINE_SPEC, VIBE_SPEC)}


def allowed_tags(category: str) -> list[str]:
    return ["", *TAGS[category]]


class FeatureValidationError(ValueError):
    """Rows broke the feature group's expectation suite; nothing was written."""


class FeatureStore(ABC):
    """Upsert and read feature groups by spec; rows are validated before anything is written."""

    kind: str = "abstract"

    def upsert(self, spec: FeatureGroupSpec, df: pd.DataFrame) -> int:
        """Insert or replace rows by primary key; return the number of rows written."""
        from news_signals.features.store.expectations import validate_rows

        rows = spec.conform(df)
        if rows.empty:
            log.info("%s: nothing to write", spec.name)
            return 0
        validate_rows(spec, rows)
        self._upsert(spec, rows)
        log.info("%s store: upserted %d rows into %s v%d", self.kind, len(rows), spec.name, spec.version)
        return len(rows)

    @abstractmethod
    def _upsert(self, spec: FeatureGroupSpec, rows: pd.DataFrame) -> None: ...

    @abstractmethod
    def read(self, spec: FeatureGroupSpec) -> pd.DataFrame:
        """All rows of the group (empty frame with the group's columns when it does not exist)."""

    def describe(self) -> str:
        return self.kind
