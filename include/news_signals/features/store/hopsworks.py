"""Feature groups in Hopsworks through hsfs: get-or-create with keys, event time, online storage and a GX suite.

The hsfs FeatureStore handle comes from ``hopsworks.login`` with the ``hopsworks_default``
connection (host, schema = project, password = API key). Key and project are always passed:
without them the SDK prompts on stdin and the task hangs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from news_signals.core.hopsworks import DEFAULT_CONN_ID, login
from news_signals.features.store.base import FeatureGroupSpec, FeatureStore, FeatureValidationError

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)


class HopsworksFeatureStore(FeatureStore):
    """Upserts into hsfs feature groups; the expectation suite is attached with the STRICT policy."""

    kind = "hopsworks"

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._groups: dict[tuple[str, int], Any] = {}

    @classmethod
    def from_connection(cls, conn_id: str = DEFAULT_CONN_ID) -> HopsworksFeatureStore:
        """Log in with the connection (core/hopsworks.py, the one login) and open its feature store."""
        return cls(login(conn_id).get_feature_store())

    def describe(self) -> str:
        return f"hopsworks ({getattr(self.fs, 'name', 'feature store')})"

    def feature_group(self, spec: FeatureGroupSpec) -> Any:
        """Get or create the group and make sure our suite is attached (get_or_create ignores it for old groups)."""
        key = (spec.name, spec.version)
        if key in self._groups:
            return self._groups[key]
        from news_signals.features.store.expectations import hopsworks_suite

        suite = hopsworks_suite(spec)
        fg = self.fs.get_or_create_feature_group(
            name=spec.name,
            version=spec.version,
            description=spec.description,
            primary_key=list(spec.primary_key),
            event_time=spec.event_time,
            online_enabled=True,
            expectation_suite=suite,
        )
        if fg.get_expectation_suite() is None:
            fg.save_expectation_suite(suite, run_validation=True, validation_ingestion_policy="strict")
        self._groups[key] = fg
        return fg

    def _upsert(self, spec: FeatureGroupSpec, rows: pd.DataFrame) -> None:
        from hopsworks_common.client.exceptions import DataValidationException

        fg = self.feature_group(spec)
        try:
            fg.insert(rows, operation="upsert", write_options={"wait_for_job": False})
        except DataValidationException as exc:
            raise FeatureValidationError(
                f"Hopsworks rejected the batch for {spec.name!r} (expectation suite, STRICT policy): {exc}"
            ) from exc

    def read(self, spec: FeatureGroupSpec) -> pd.DataFrame:
        return self.feature_group(spec).read(dataframe_type="pandas")
