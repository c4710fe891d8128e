"""Great Expectations checks for one batch of human labels, run before anything is stored.

The same tool validates the daily batches and the snapshots (see ``daily/validation.py``), so
a refused labels batch reads like any other refusal. Each failed expectation is turned into
sentences naming the row (JSONL line, Label Studio task), the offending value and the fix; the
batch is refused whole. Helper columns (prefixed ``_``) carry what GX cannot compute itself
(stripped text length, normalised text, how many categories are labelled).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS
from news_signals.core.text import normalise_title
from news_signals.labels.store import LabelError, LabelRow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SUITE_NAME = "human_labels_batch"
ID_REGEX = r"^[A-Za-z0-9_.:\-]{1,128}$"
BASE_COLUMNS: tuple[str, ...] = ("ref", "article_id", "text", "annotator")
HELPER_COLUMNS: tuple[str, ...] = ("_text_len", "_norm", "_n_labelled")


def valid_tags_hint(category: str) -> str:
    return f'valid tags for {category}: {", ".join(TAGS[category])}, or "" for absent (none in Label Studio)'


def batch_frame(rows: Sequence[LabelRow]) -> pd.DataFrame:
    """The rows as GX sees them: raw values (wrong types included), every label key as a column."""
    import pandas as pd

    extra = sorted({k for r in rows for k in r.labels if k not in CATEGORIES}, key=str)
    records = []
    for i, r in enumerate(rows):
        text = r.text
        known = [v for v in r.labels.values() if v is not None]
        records.append(
            {
                "ref": r.ref or f"row {i + 1}",
                "article_id": r.article_id,
                "text": text,
                "annotator": r.annotator,
                **{c: r.labels.get(c) for c in (*CATEGORIES, *extra)},
                "_text_len": len(text.strip()) if isinstance(text, str) else 0,
                "_norm": normalise_title(text) if isinstance(text, str) else None,
                "_n_labelled": len(known),
            }
        )
    columns = [*BASE_COLUMNS, *CATEGORIES, *extra, *HELPER_COLUMNS]
    return pd.DataFrame.from_records(records, columns=columns).astype(object)


def build_suite() -> Any:
    """Expectations for a merged labels batch (needs an active GX context)."""
    import great_expectations as gx

    E = gx.expectations
    suite = gx.ExpectationSuite(name=SUITE_NAME)

    def add(name: str, expectation: Any) -> None:
        expectation.meta = {"name": name}
        suite.add_expectation(expectation)

    add("categories_known", E.ExpectTableColumnsToMatchSet(
        column_set=[*BASE_COLUMNS, *CATEGORIES, *HELPER_COLUMNS], exact_match=True))
    add("not_empty", E.ExpectTableRowCountToBeBetween(min_value=1))
    add("article_id_not_null", E.ExpectColumnValuesToNotBeNull(column="article_id"))
    add("article_id_is_string", E.ExpectColumnValuesToBeOfType(column="article_id", type_="str"))
    add("article_id_format", E.ExpectColumnValuesToMatchRegex(column="article_id", regex=ID_REGEX))
    add("article_id_unique", E.ExpectColumnValuesToBeUnique(column="article_id"))
    add("text_not_null", E.ExpectColumnValuesToNotBeNull(column="text"))
    add("text_is_string", E.ExpectColumnValuesToBeOfType(column="text", type_="str"))
    add("text_not_empty", E.ExpectColumnValuesToBeBetween(column="_text_len", min_value=1))
    add("text_unique", E.ExpectColumnValuesToBeUnique(column="_norm"))
    add("annotator_is_string", E.ExpectColumnValuesToBeOfType(column="annotator", type_="str"))
    add("some_category_labelled", E.ExpectColumnValuesToBeBetween(column="_n_labelled", min_value=1))
    for c in CATEGORIES:
        add(f"{c}_in_vocabulary", E.ExpectColumnValuesToBeInSet(column=c, value_set=[ABSENT, *TAGS[c]]))
    return suite


def run_suite(frame: pd.DataFrame) -> list[tuple[str, bool, dict[str, Any]]]:
    """(name, success, GX result dict) per expectation, with the failing rows' ``ref`` listed."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines would bury the verdict
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add(build_suite())
    batch = (
        context.data_sources.add_pandas("human_labels")
        .add_dataframe_asset("labels_batch")
        .add_batch_definition_whole_dataframe("whole_batch")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(
        suite, result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["ref"]}
    )
    out = []
    for r in result.results:
        name = str((r.expectation_config.meta or {}).get("name", r.expectation_config.type))
        info = r.exception_info or {}
        res = dict(r.result or {})
        if info.get("raised_exception"):
            res["error"] = str(info.get("exception_message", "")).splitlines()[0]
        out.append((name, bool(r.success), res))
    return out


def validate_rows(rows: Sequence[LabelRow]) -> None:
    """Raise :class:`LabelError` naming every problem of the batch; return quietly when it is clean."""
    frame = batch_frame(rows)
    by_ref = {str(ref): i for i, ref in enumerate(frame["ref"])}
    problems: list[str] = []
    for name, success, res in run_suite(frame):
        if not success:
            problems.extend(_describe(name, res, frame, by_ref))
    if problems:
        log.error("labels batch refused: %d problem(s)", len(problems))
        raise LabelError(problems)
    log.info("labels batch: %d rows passed %s", len(frame), SUITE_NAME)


def _failing_refs(res: dict[str, Any]) -> list[str]:
    return [str(item.get("ref")) for item in res.get("unexpected_index_list") or []]


def _describe(name: str, res: dict[str, Any], frame: pd.DataFrame, by_ref: dict[str, int]) -> list[str]:
    """Sentences for one failed expectation: which row, which value, what to do."""
    refs = _failing_refs(res)

    def aid(ref: str) -> str:
        value = frame.at[by_ref[ref], "article_id"] if ref in by_ref else None
        return f" (article_id {value})" if isinstance(value, str) else ""

    if res.get("error") and not refs:
        return [f"check {name} could not run: {res['error']}"]
    if name == "categories_known":
        unexpected = (res.get("details") or {}).get("mismatched", {}).get("unexpected", [])
        out = []
        for col in unexpected:
            rows = [str(frame.at[i, "ref"]) for i in range(len(frame)) if frame.at[i, col] is not None]
            out.append(
                f"{', '.join(rows) or 'a row'}: unknown category {col!r}; categories are {', '.join(CATEGORIES)}"
            )
        return out
    if name == "not_empty":
        return ["the file holds no labelled rows; label at least one article"]
    if name == "article_id_not_null":
        return [f"{r}: article_id is null; give a string or leave the key out to derive it from the text" for r in refs]
    if name in ("article_id_is_string", "article_id_format"):
        return [
            f"{r}: article_id {frame.at[by_ref[r], 'article_id']!r} is not an id (1-128 letters, digits, _ . : -); "
            "give the article's id as a string, or leave it out to derive it from the text"
            for r in refs
        ]
    if name == "article_id_unique":
        return [f"{' and '.join(refs)}: the same article_id twice after merging; give each article one row"]
    if name == "text_not_null":
        return [f"{r}{aid(r)}: no text; give the article's headline as text (or title)" for r in refs]
    if name == "text_is_string":
        return [
            f"{r}{aid(r)}: text {frame.at[by_ref[r], 'text']!r} is not a string; give the headline as a string"
            for r in refs
        ]
    if name == "text_not_empty":
        return [f"{r}{aid(r)}: text is empty; give the article's headline as text (or title)" for r in refs]
    if name == "text_unique":
        groups: dict[str, list[str]] = {}
        for r in refs:
            groups.setdefault(str(frame.at[by_ref[r], "_norm"]), []).append(r)
        return [
            f"{' and '.join(g)}: duplicate article in the batch (the same text under article_ids "
            f"{', '.join(str(frame.at[by_ref[r], 'article_id']) for r in g)}); give them one article_id or drop one"
            for g in groups.values()
        ]
    if name == "annotator_is_string":
        return [f"{r}: annotator {frame.at[by_ref[r], 'annotator']!r} is not a string" for r in refs]
    if name == "some_category_labelled":
        return [f"{r}{aid(r)}: no category is labelled; label at least one category or drop the row" for r in refs]
    if name.endswith("_in_vocabulary"):
        c = name.removesuffix("_in_vocabulary")
        return [
            f"{r}{aid(r)}: {c}={frame.at[by_ref[r], c]!r} is not a tag of {c}; {valid_tags_hint(c)}" for r in refs
        ]
    return [f"{name} failed: {res}"]
