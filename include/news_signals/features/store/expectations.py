"""The Great Expectations suite of each feature group: one suite, checked locally and attached in Hopsworks.

Locally the suite runs before a write (a failing batch is refused whole, so the store never
holds a bad row); in Hopsworks the same suite is attached to the feature group with the
STRICT ingestion policy so the server refuses bad rows too.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from news_signals.core.taxonomy import CATEGORIES, score_column, tag_column
from news_signals.features.store.base import (
    HEADLINE_GROUP,
    VIBE_GROUP,
    FeatureGroupSpec,
    FeatureValidationError,
    allowed_tags,
    count_column,
    intensity_column,
)

if TYPE_CHECKING:
    import great_expectations as gx
    import pandas as pd

log = logging.getLogger(__name__)

ARTICLE_ID_REGEX = r"^[0-9a-f]{16}$"
_ONE_CLASSIFIER = r"(?:keywords|hybrid@[^+]+|model:[^+]+@[^+]+)"
CLASSIFIER_REGEX = rf"^{_ONE_CLASSIFIER}$"
# a vibe_vectors row aggregates articles, which may come from several classifiers (a model for
# English, keywords for Swedish): their names joined with "+"
CLASSIFIERS_REGEX = rf"^{_ONE_CLASSIFIER}(?:\+{_ONE_CLASSIFIER})*$"


def _expectations(spec: FeatureGroupSpec) -> list[tuple[str, dict[str, Any]]]:
    """(GX expectation class name, kwargs) pairs: plain data so tests and docs can read them."""
    out: list[tuple[str, dict[str, Any]]] = []
    for key in spec.primary_key:
        out.append(("ExpectColumnValuesToNotBeNull", {"column": key}))
    out.append(("ExpectColumnValuesToNotBeNull", {"column": spec.event_time}))
    regex = CLASSIFIER_REGEX if spec.name == HEADLINE_GROUP else CLASSIFIERS_REGEX
    out.append(("ExpectColumnValuesToMatchRegex", {"column": "classifier", "regex": regex}))
    if spec.name == HEADLINE_GROUP:
        out.append(("ExpectColumnValuesToMatchRegex", {"column": "article_id", "regex": ARTICLE_ID_REGEX}))
        out.append(("ExpectColumnValuesToBeUnique", {"column": "article_id"}))
        out.append(("ExpectColumnValuesToNotBeNull", {"column": "title"}))
        for c in CATEGORIES:
            out.append(("ExpectColumnValuesToNotBeNull", {"column": score_column(c)}))
            out.append(
                (
                    "ExpectColumnValuesToBeBetween",
                    {"column": score_column(c), "min_value": -1.0, "max_value": 1.0},
                )
            )
            out.append(
                ("ExpectColumnValuesToBeInSet", {"column": tag_column(c), "value_set": allowed_tags(c)})
            )
    elif spec.name == VIBE_GROUP:
        out.append(("ExpectCompoundColumnsToBeUnique", {"column_list": list(spec.primary_key)}))
        out.append(("ExpectColumnValuesToBeBetween", {"column": "n_articles", "min_value": 0}))
        for c in CATEGORIES:
            out.append(("ExpectColumnValuesToNotBeNull", {"column": intensity_column(c)}))
            out.append(
                (
                    "ExpectColumnValuesToBeBetween",
                    {"column": intensity_column(c), "min_value": -1.0, "max_value": 1.0},
                )
            )
            out.append(
                ("ExpectColumnValuesToBeInSet", {"column": tag_column(c), "value_set": allowed_tags(c)})
            )
            out.append(("ExpectColumnValuesToBeBetween", {"column": count_column(c), "min_value": 0}))
    else:
        raise ValueError(f"no expectation suite for feature group {spec.name!r}")
    return out


def _gx():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    return gx


def build_suite(spec: FeatureGroupSpec) -> gx.ExpectationSuite:
    """A GX 1.x ExpectationSuite for ``spec`` (an ephemeral context must exist first, so we make one)."""
    gx = _gx()
    import great_expectations.expectations as gxe

    gx.get_context(mode="ephemeral")
    suite = gx.ExpectationSuite(name=f"{spec.name}_v{spec.version}")
    for cls_name, kwargs in _expectations(spec):
        suite.add_expectation(getattr(gxe, cls_name)(**kwargs))
    return suite


def hopsworks_suite(spec: FeatureGroupSpec):
    """The suite as an hsfs ExpectationSuite with the STRICT policy (hsfs 5.2 converts GX 1.x suites)."""
    from hsfs.expectation_suite import ExpectationSuite

    return ExpectationSuite.from_ge_type(
        build_suite(spec), run_validation=True, validation_ingestion_policy="STRICT"
    )


def validate_rows(spec: FeatureGroupSpec, rows: pd.DataFrame) -> None:
    """Run the group's suite on ``rows``; raise FeatureValidationError naming each failed expectation."""
    gx = _gx()

    context = gx.get_context(mode="ephemeral")
    source = context.data_sources.add_or_update_pandas(name=f"fs_{spec.name}")
    asset = source.add_dataframe_asset(name=spec.name)
    batch_def = asset.add_batch_definition_whole_dataframe(name="rows")
    batch = batch_def.get_batch(batch_parameters={"dataframe": rows})
    suite = build_suite(spec)
    if batch.validate(suite, result_format="BOOLEAN_ONLY").success:  # the cheap pass (about half the time)
        return
    result = batch.validate(suite, result_format="SUMMARY")  # only to name what failed
    failures = []
    for r in result.results:
        if r.success:
            continue
        cfg = r.expectation_config
        where = cfg.kwargs.get("column") or cfg.kwargs.get("column_list")
        partial = (r.result or {}).get("partial_unexpected_list") or []
        failures.append(
            f"{cfg.type}({where}): {(r.result or {}).get('unexpected_count', '?')} bad, e.g. {partial[:3]}"
        )
    raise FeatureValidationError(
        f"{len(failures)} expectation(s) failed for feature group {spec.name!r}; nothing was written: "
        + "; ".join(failures)
    )
