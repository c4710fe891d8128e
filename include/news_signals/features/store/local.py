"""The embedded feature store: one parquet file per feature group under ``features/<group>/``.

An upsert reads the group, replaces rows with the same primary key and writes the whole
group back atomically (temp + rename via Storage), so a re-run never duplicates rows and a
failed write leaves the previous version intact. Good for the daily volumes of this project
(tens of thousands of rows); Hopsworks is the store for anything bigger.
"""

from __future__ import annotations

import logging
import posixpath
from typing import TYPE_CHECKING

from news_signals.core.storage import Storage
from news_signals.features.store.base import FeatureGroupSpec, FeatureStore

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

DATA_FILE = "data.parquet"


class LocalFeatureStore(FeatureStore):
    """Feature groups as parquet files in ``Storage.features_dir(group)`` (works on any fsspec filesystem)."""

    kind = "local"

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or Storage()

    def group_file(self, spec: FeatureGroupSpec) -> str:
        return posixpath.join(self.storage.features_dir(spec.name), DATA_FILE)

    def describe(self) -> str:
        return f"local ({self.storage.url(self.storage.features_dir(''))})"

    def read(self, spec: FeatureGroupSpec) -> pd.DataFrame:
        import pandas as pd

        target = self.group_file(spec)
        if not self.storage.fs.exists(target):
            return pd.DataFrame(columns=list(spec.columns))
        return self.storage.read_parquet(target)

    def _upsert(self, spec: FeatureGroupSpec, rows: pd.DataFrame) -> None:
        import pandas as pd

        existing = self.read(spec)
        if existing.empty:
            merged = rows
        else:
            keys = list(spec.primary_key)
            incoming = pd.MultiIndex.from_frame(rows[keys].astype(str))
            kept = existing[~pd.MultiIndex.from_frame(existing[keys].astype(str)).isin(incoming)]
            merged = pd.concat([kept.loc[:, list(spec.columns)], rows], ignore_index=True)
        sort_cols = [spec.event_time, *spec.primary_key]
        merged = merged.sort_values(sort_cols, kind="stable").reset_index(drop=True)
        self.storage.write_parquet(self.group_file(spec), merged)
