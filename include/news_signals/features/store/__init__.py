"""Feature groups (``headline_classifications``, ``vibe_vectors``) in a local store or Hopsworks.

``get_feature_store()`` picks Hopsworks when the ``hopsworks_default`` connection exists and
the local parquet store otherwise; ``NEWS_SIGNALS_FEATURE_STORE=local|hopsworks`` forces one.
"""

from __future__ import annotations

import logging

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
    from news_signals.core.config import Settings
    from news_signals.core.hopsworks import choose_backend
    from news_signals.features.store.local import LocalFeatureStore

    if choose_backend(kind or Settings.from_env().feature_store_backend) == "local":
        return LocalFeatureStore(storage)
    # HopsworksFeatureStore runs in the isolated Hopsworks interpreter, behind this proxy
    from news_signals.isolated.proxy import HopsworksFeatureStoreProxy

    return HopsworksFeatureStoreProxy()
