"""Feature groups (``headline_classifications``, ``vibe_vectors``) in a local store or Hopsworks.

``get_feature_store()`` picks Hopsworks when the ``hopsworks_default`` connection exists and
the local parquet store otherwise; ``NEWS_SIGNALS_FEATURE_STORE=local|hopsworks`` forces one.
"""

from __future__ import annotations

import logging
import os

from news_signals.core.storage import Storage
from news_signals.features.store.base import (
    HEADLINE_GROUP,
    HEADLINE_SPEC,
    SPECS,
    VIBE_GROUP,
    VIBE_SPEC,
    FeatureGroupSpec,
    FeatureStore,
    FeatureValidationError,
)

log = logging.getLogger(__name__)

__all__ = [
    "HEADLINE_GROUP",
    "HEADLINE_SPEC",
    "SPECS",
    "VIBE_GROUP",
    "VIBE_SPEC",
    "FeatureGroupSpec",
    "FeatureStore",
    "FeatureValidationError",
    "get_feature_store",
]


def get_feature_store(storage: Storage | None = None, kind: str | None = None) -> FeatureStore:
    """The configured feature store: ``kind`` or $NEWS_SIGNALS_FEATURE_STORE, else Hopsworks if connected."""
    from news_signals.core.connections import get_connection
    from news_signals.features.store.hopsworks import CONN_ID, HopsworksFeatureStore
    from news_signals.features.store.local import LocalFeatureStore

    kind = (kind or os.environ.get("NEWS_SIGNALS_FEATURE_STORE") or "auto").lower()
    if kind not in ("auto", "local", "hopsworks"):
        raise ValueError(f"unknown feature store {kind!r}; use local, hopsworks or auto")
    if kind == "local":
        return LocalFeatureStore(storage)
    conn = get_connection(CONN_ID)
    if conn is None:
        if kind == "hopsworks":
            raise ValueError(f"feature store 'hopsworks' needs the {CONN_ID!r} connection; define it first")
        return LocalFeatureStore(storage)
    return HopsworksFeatureStore.from_connection(conn)
