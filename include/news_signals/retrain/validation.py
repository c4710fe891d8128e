"""Great Expectations checks for a training snapshot, before any GPU time is spent on it.

Checks (one GX suite, one batch = all splits with a ``split`` column):

- every split is present and the schema is complete (scores in [-1, 1], tags in vocabulary);
- each category with labelled rows anywhere has at least ``min_train_rows`` labelled rows in
  train (``ExpectColumnSumToBeBetween`` on a 0/1 helper column);
- no ``article_id`` and no normalised title appears twice across the splits (leakage);
- the primary-category distribution has KL divergence <= ``max_label_shift_kl`` from the
  previous snapshot's (``ExpectColumnKLDivergenceToBeLessThan`` with the previous
  distribution, smoothed so a new category does not make it infinite). Per-category share
  changes are reported alongside.
"""

from __future__ import annotations

import logging
import os
import posixpath
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, score_column, tag_column
from news_signals.retrain.snapshot import MANIFEST, NONE, SPLITS, previous_snapshot

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SUITE_NAME = "training_snapshot"
_SMOOTHING = 1e-3


class SnapshotValidationError(ValueError):
    """The snapshot failed validation; ``report`` says which checks and by how much."""

    def __init__(self, report: SnapshotReport) -> None:
        super().__init__(report.failure_message())
        self.report = report


@dataclass(frozen=True)
class SnapshotChecks:
    min_train_rows: int = 5
    max_label_shift_kl: float = 0.5
    allow_empty_categories: bool = True  # categories with no labelled rows anywhere only warn


@dataclass
class Check:
    name: str
    success: bool
    observed: Any = None
    detail: str = ""


@dataclass
class SnapshotReport:
    snapshot_id: str
    success: bool
    checks: list[Check]
    previous_id: str | None = None
    shift: dict[str, float] = field(default_factory=dict)  # category -> share change vs previous
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.success]

    def failure_message(self) -> str:
        items = "; ".join(f"{c.name}: observed {c.observed} ({c.detail})" for c in self.failed)
        return f"snapshot {self.snapshot_id} failed {len(self.failed)} of {len(self.checks)} checks: {items}"

    def table(self) -> str:
        width = max([len(c.name) for c in self.checks] + [10])
        lines = [f"GX validation of snapshot {self.snapshot_id}: {'PASSED' if self.success else 'FAILED'}"]
        for c in self.checks:
            lines.append(
                f"{c.name.ljust(width)}  {'ok' if c.success else 'FAIL':4}  {c.observed!s:>12}  {c.detail}"
            )
        if self.shift:
            moved = ", ".join(
                f"{k} {v:+.3f}" for k, v in sorted(self.shift.items(), key=lambda kv: -abs(kv[1]))[:5]
            )
            lines.append(f"label share change vs {self.previous_id}: {moved}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["failed"] = [c.name for c in self.failed]
        return out


def load_splits(snapshot_dir: str, storage: Storage) -> pd.DataFrame:
    import pandas as pd

    frames = []
    for split in SPLITS:
        path = posixpath.join(snapshot_dir, f"{split}.parquet")
        if not storage.fs.exists(path):
            raise SnapshotValidationError(
                SnapshotReport(
                    posixpath.basename(snapshot_dir),
                    False,
                    [Check(f"{split}_present", False, 0, f"{path} missing")],
                )
            )
        frames.append(storage.read_parquet(path).assign(split=split))
    return pd.concat(frames, ignore_index=True)


def distribution(primary: pd.Series | dict[str, int]) -> dict[str, float]:
    """Share of each primary category (every category and ``none``), smoothed, summing to 1."""
    counts = primary if isinstance(primary, dict) else primary.value_counts().to_dict()
    keys = [*CATEGORIES, NONE]
    raw = {k: float(counts.get(k, 0)) + _SMOOTHING for k in keys}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def _suite(
    gx: Any, df: pd.DataFrame, checks: SnapshotChecks, previous: dict[str, Any] | None
) -> tuple[Any, list[str]]:
    E = gx.expectations
    suite = gx.ExpectationSuite(name=SUITE_NAME)
    warnings: list[str] = []
    suite.add_expectation(E.ExpectColumnDistinctValuesToEqualSet(column="split", value_set=list(SPLITS)))
    suite.add_expectation(E.ExpectColumnValuesToBeUnique(column="article_id"))
    suite.add_expectation(E.ExpectColumnValuesToBeUnique(column="title_norm"))
    suite.add_expectation(E.ExpectColumnValuesToNotBeNull(column="text"))
    for c in CATEGORIES:
        suite.add_expectation(
            E.ExpectColumnValuesToBeBetween(column=score_column(c), min_value=-1.0, max_value=1.0)
        )
        suite.add_expectation(
            E.ExpectColumnValuesToBeInSet(column=tag_column(c), value_set=[ABSENT, *TAGS[c]])
        )
        anywhere = int((df[tag_column(c)] != ABSENT).sum())
        if anywhere == 0 and checks.allow_empty_categories:
            warnings.append(f"category {c} has no labelled rows in the snapshot; min-rows check skipped")
            continue
        suite.add_expectation(
            E.ExpectColumnSumToBeBetween(column=f"_train_pos_{c}", min_value=checks.min_train_rows)
        )
    if previous is not None:
        prev = distribution(previous.get("primary_counts_total") or _total_primary(previous))
        suite.add_expectation(
            E.ExpectColumnKLDivergenceToBeLessThan(
                column="primary_category",
                partition_object={"values": list(prev), "weights": list(prev.values())},
                threshold=checks.max_label_shift_kl,
            )
        )
    return suite, warnings


def _total_primary(manifest: dict[str, Any]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in (manifest.get("primary_counts") or {}).values():
        for k, v in counts.items():
            total[k] = total.get(k, 0) + int(v)
    return total


def validate_snapshot(
    snapshot_id: str, storage: Storage | None = None, checks: SnapshotChecks | None = None
) -> SnapshotReport:
    """Run the suite on a written snapshot with an ephemeral GX context (never raises on bad data)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    storage = storage or Storage()
    checks = checks or SnapshotChecks()
    snap_dir = storage.snapshot_dir(snapshot_id)
    if not storage.fs.exists(posixpath.join(snap_dir, MANIFEST)):
        raise FileNotFoundError(
            f"snapshot {snapshot_id} not found under {storage.url(snap_dir)}; build it first"
        )
    df = load_splits(snap_dir, storage)
    if "title_norm" not in df.columns:
        from news_signals.core.text import normalise_title

        df["title_norm"] = df["text"].map(normalise_title)
    for c in CATEGORIES:
        df[f"_train_pos_{c}"] = ((df["split"] == "train") & (df[tag_column(c)] != ABSENT)).astype(int)
    previous = previous_snapshot(storage, snapshot_id)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite, warnings = _suite(gx, df, checks, previous)
    suite = context.suites.add(suite)
    batch = (
        context.data_sources.add_pandas("news_signals_snapshot")
        .add_dataframe_asset(f"snapshot_{snapshot_id}")
        .add_batch_definition_whole_dataframe("all_splits")
        .get_batch(batch_parameters={"dataframe": df})
    )
    result = batch.validate(suite, result_format="SUMMARY")
    out = [_check(r) for r in result.results]
    shift: dict[str, float] = {}
    if previous is not None:
        now, before = distribution(df["primary_category"]), distribution(_total_primary(previous))
        shift = {k: round(now[k] - before[k], 4) for k in now}
    report = SnapshotReport(
        snapshot_id=snapshot_id,
        success=all(c.success for c in out),
        checks=out,
        previous_id=previous["id"] if previous else None,
        shift=shift,
        warnings=warnings,
    )
    for w in warnings:
        log.warning(w)
    (log.info if report.success else log.error)("%s", report.table())
    return report


def check_snapshot(
    snapshot_id: str, storage: Storage | None = None, checks: SnapshotChecks | None = None
) -> SnapshotReport:
    """Validate, write ``validation.json`` beside the snapshot, and raise SnapshotValidationError on failure."""
    storage = storage or Storage()
    report = validate_snapshot(snapshot_id, storage, checks)
    storage.write_json(posixpath.join(storage.snapshot_dir(snapshot_id), "validation.json"), report.to_dict())
    if not report.success:
        raise SnapshotValidationError(report)
    return report


def _check(r: Any) -> Check:
    cfg = r.expectation_config
    kwargs = cfg.kwargs
    etype = cfg.type
    column = kwargs.get("column", "")
    res = r.result or {}
    name = {
        "expect_column_values_to_be_unique": f"no_shared_{'title' if column == 'title_norm' else 'article_id'}",
        "expect_column_sum_to_be_between": f"min_train_rows:{column.removeprefix('_train_pos_')}",
        "expect_column_kl_divergence_to_be_less_than": "label_shift_kl",
        "expect_column_distinct_values_to_equal_set": "all_splits_present",
    }.get(etype, f"{etype.removeprefix('expect_')}:{column}")
    if etype == "expect_column_values_to_be_unique":
        observed, detail = res.get("unexpected_count", 0), "rows sharing a value across splits"
    elif etype == "expect_column_sum_to_be_between":
        observed, detail = (
            res.get("observed_value"),
            f"labelled train rows, need >= {kwargs.get('min_value')}",
        )
    elif etype == "expect_column_kl_divergence_to_be_less_than":
        ov = res.get("observed_value")
        observed = round(float(ov), 4) if isinstance(ov, int | float) else ov
        detail = f"KL vs previous snapshot, bound {kwargs.get('threshold')}"
    else:
        observed = res.get("unexpected_count", res.get("observed_value"))
        detail = ""
    if r.exception_info and r.exception_info.get("raised_exception"):
        detail = f"error: {r.exception_info.get('exception_message')}"
    return Check(name, bool(r.success), observed, detail)
