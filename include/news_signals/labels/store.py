"""The human-labels store: append-only, immutable import batches under ``$NEWS_SIGNALS_HOME/labels/``.

Layout::

    labels/batches/<batch_id>.parquet   one row per article: article_id, text, annotator, ref, <category>...
    labels/batches/<batch_id>.json      its manifest (source, annotators, time, rows, sha256, counts)

Per article and category a batch holds a tag of the category's vocabulary, ``""`` (absent) or
``None`` (unknown: not labelled). Batches are never rewritten: a correction is a new batch, and
:meth:`LabelStore.current` lets the latest *known* value win per article and category, so a
partial batch (say, only ``crime``) corrects that category and leaves the others alone.

A batch is validated whole before anything is written (duplicates merged, in-batch conflicts and
every Great Expectations check of ``labels/validation.py`` refused with the row named); the
Parquet file is written first and the manifest last, so a batch without a manifest is invisible.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, taxonomy_fingerprint
from news_signals.core.text import article_id, normalise_title
from news_signals.labels.split import is_calibration, is_heldout

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

UNKNOWN = None  # a category not labelled (Parquet null); "" = absent; else a tag of the category's vocabulary
LABELS_DIR = "labels"
BATCHES_DIR = "batches"
STORED_COLUMNS: tuple[str, ...] = ("article_id", "text", "annotator", "ref", *CATEGORIES)
CURRENT_COLUMNS: tuple[str, ...] = (
    "article_id", "text", *CATEGORIES, "heldout", "n_labelled", "last_batch", "annotator",
)


def text_article_id(text: str) -> str:
    """The id of a row given without ``article_id``: ``core.text.article_id("", normalise_title(text))``.

    Normalising first makes the same headline with other spacing or punctuation one article.
    """
    return article_id("", normalise_title(text))


@dataclass(frozen=True)
class LabelRow:
    """One annotator's labels for one article; ``labels`` maps category -> tag, "" or None (unknown)."""

    article_id: str
    text: str
    labels: dict[str, str | None]
    annotator: str | None = None
    ref: str | None = field(default=None, compare=False)  # where it came from ("line 3", "task 17"), for errors


@dataclass(frozen=True)
class BatchManifest:
    batch_id: str
    source: str
    annotators: list[str]
    created_at: str
    rows: int
    sha256: str  # of the Parquet file's bytes
    format: str
    path: str
    content_sha256: str = ""  # of the canonical rows: re-importing the same labels is a no-op
    per_category: dict[str, dict[str, int]] = field(default_factory=dict)  # labelled / absent / unknown
    skipped: dict[str, int] = field(default_factory=dict)  # what the reader left out (cancelled annotations...)
    taxonomy: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchManifest:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


class LabelError(ValueError):
    """A batch was refused; the message names the row(s), the offending value and the fix."""

    def __init__(self, problems: Sequence[str], what: str = "labels batch") -> None:
        self.problems = list(problems)
        shown = self.problems[:10]
        more = f"; and {len(self.problems) - 10} more" if len(self.problems) > 10 else ""
        super().__init__(f"{what} refused, nothing stored: " + "; ".join(shown) + more)


class LabelStore:
    """Import batches of human labels and read the current label of every article."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage or Storage()
        self.root = self.storage.path(LABELS_DIR)
        self.batches_dir = posixpath.join(self.root, BATCHES_DIR)

    # ---- writing ------------------------------------------------------------------------------
    def import_rows(
        self,
        rows: Sequence[LabelRow],
        *,
        source: str,
        fmt: str = "jsonl",
        skipped: Mapping[str, int] | None = None,
    ) -> BatchManifest:
        """Validate ``rows`` whole, then store them as one immutable batch (or return the identical one)."""
        from news_signals.labels.validation import validate_rows

        if not source or not str(source).strip():
            raise LabelError(["source is empty; name where the labels come from (--source NAME)"])
        merged = merge_rows(rows)
        validate_rows(merged)  # raises LabelError naming the rows; nothing is written before this
        frame = _frame(merged)
        content = _content_sha256(frame)
        for existing in self.batches():
            if existing.content_sha256 == content:
                log.info("labels batch %s already holds these %d rows: nothing imported", existing.batch_id, existing.rows)
                return existing
        created = self._next_time()
        batch_id = f"{created.strftime('%Y%m%dT%H%M%S%fZ')}-{content[:8]}"
        data = _parquet_bytes(frame)
        parquet = posixpath.join(self.batches_dir, f"{batch_id}.parquet")
        manifest = BatchManifest(
            batch_id=batch_id,
            source=str(source),
            annotators=sorted({a for r in merged for a in _split_annotators(r.annotator)}),
            created_at=created.isoformat(),
            rows=len(frame),
            sha256=hashlib.sha256(data).hexdigest(),
            format=fmt,
            path=self.storage.url(parquet),
            content_sha256=content,
            per_category=category_counts(frame),
            skipped={k: int(v) for k, v in (skipped or {}).items()},
            taxonomy=taxonomy_fingerprint(),
        )
        self.storage.write_bytes(parquet, data)
        self.storage.write_json(posixpath.join(self.batches_dir, f"{batch_id}.json"), manifest.to_dict())
        log.info("labels batch %s: %d rows from %s (%s)", batch_id, len(frame), source, fmt)
        return manifest

    def _next_time(self) -> datetime:
        """Now, but strictly after the newest batch, so batch ids sort in import order."""
        now = datetime.now(UTC)
        batches = self.batches()
        if batches:
            last = datetime.fromisoformat(batches[-1].created_at)
            if now <= last:
                now = last + timedelta(microseconds=1)
        return now

    # ---- reading ------------------------------------------------------------------------------
    def batches(self) -> list[BatchManifest]:
        """Every committed batch (manifest and Parquet present), oldest first."""
        fs = self.storage.fs
        if not fs.exists(self.batches_dir):
            return []
        out = []
        for entry in fs.ls(self.batches_dir, detail=False):
            name = posixpath.basename(entry)
            if not name.endswith(".json") or name.startswith(".tmp-"):
                continue
            parquet = entry[: -len(".json")] + ".parquet"
            if fs.exists(parquet):
                out.append(BatchManifest.from_dict(self.storage.read_json(entry)))
        return sorted(out, key=lambda m: (m.created_at, m.batch_id))

    def read_batch(self, batch_id: str) -> pd.DataFrame:
        df = self.storage.read_parquet(posixpath.join(self.batches_dir, f"{batch_id}.parquet"))
        return _nulls_as_none(df)

    def current(self) -> pd.DataFrame:
        """One row per article after supersede: per article and category the latest known value wins."""
        import pandas as pd

        frames = []
        for order, manifest in enumerate(self.batches()):
            df = self.read_batch(manifest.batch_id)
            df["last_batch"] = manifest.batch_id
            df["_order"] = order
            frames.append(df)
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=_dtype(c)) for c in CURRENT_COLUMNS})
        alls = pd.concat(frames, ignore_index=True).sort_values(["_order"], kind="stable")
        latest = alls.drop_duplicates("article_id", keep="last").set_index("article_id")
        # groupby.last() skips nulls: the newest *known* value of each category ("" counts as known)
        labels = alls.groupby("article_id", sort=True)[list(CATEGORIES)].last()
        out = latest[["text", "last_batch", "annotator"]].join(labels).reset_index()
        out = _nulls_as_none(out)
        out["heldout"] = [is_heldout(a) for a in out["article_id"]]
        out["n_labelled"] = out[list(CATEGORIES)].notna().sum(axis=1).astype("int64")
        return out[list(CURRENT_COLUMNS)].sort_values("article_id").reset_index(drop=True)

    def labelled_ids(self) -> set[str]:
        return {str(a) for m in self.batches() for a in self.read_batch(m.batch_id)["article_id"]}

    def labelled_texts(self) -> set[str]:
        """``normalise_title(text)`` of every labelled article (a syndicated copy is labelled too)."""
        return {normalise_title(str(t)) for m in self.batches() for t in self.read_batch(m.batch_id)["text"]}


def split(current: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training part, held-out part) of :meth:`LabelStore.current`.

    Held out: ``is_heldout(article_id)``, and also any article whose normalised text equals a
    held-out article's (the same headline under another id must not reach training).
    """
    if current.empty:
        return current.copy(), current.copy()
    norm = current["text"].astype(str).map(normalise_title)
    held_ids = current["article_id"].astype(str).map(is_heldout)
    held = held_ids | norm.isin(set(norm[held_ids]))
    return current[~held].reset_index(drop=True), current[held].reset_index(drop=True)


def calibration_mask(training: pd.DataFrame) -> pd.Series:
    """Which rows of the training part (:func:`split`) are calibration rows (``labels.split``):
    by ``article_id``, and any article whose normalised text equals a calibration article's."""
    import pandas as pd

    if training.empty:
        return pd.Series(False, index=training.index, dtype=bool)
    norm = training["text"].astype(str).map(normalise_title)
    by_id = training["article_id"].astype(str).map(is_calibration).astype(bool)
    return by_id | norm.isin(set(norm[by_id]))


# ---- batch assembly -------------------------------------------------------------------------------
def merge_rows(rows: Sequence[LabelRow]) -> list[LabelRow]:
    """One row per article: agreeing duplicates merged, disagreeing ones refused with both rows named."""
    groups: dict[Any, list[LabelRow]] = {}
    for row in rows:
        key = row.article_id if isinstance(row.article_id, str) else repr(row.article_id)
        groups.setdefault(key, []).append(row)
    problems: list[str] = []
    merged: list[LabelRow] = []
    for key, group in groups.items():
        if len(group) == 1:
            merged.append(group[0])
            continue
        first = group[0]
        texts = {normalise_title(r.text) if isinstance(r.text, str) else repr(r.text) for r in group}
        if len(texts) > 1:
            problems.append(
                f"{_refs(group)}: article_id {key!r} is given with different texts; "
                "one article_id per article (or leave article_id out to derive it from the text)"
            )
            continue
        labels: dict[str, Any] = {}
        seen: dict[str, LabelRow] = {}
        for r in group:
            for c, v in r.labels.items():
                if v is UNKNOWN:
                    labels.setdefault(c, UNKNOWN)
                    continue
                if c in seen and labels[c] != v:
                    problems.append(
                        f"conflict in one batch for article {key}, category {c}: {seen[c].ref or '?'} says "
                        f"{_show(labels[c])}, {r.ref or '?'} says {_show(v)}; resolve it (keep one answer) "
                        "and import again"
                    )
                    continue
                if c not in seen:
                    labels[c], seen[c] = v, r
        annotators = sorted({a for r in group for a in _split_annotators(r.annotator)})
        merged.append(
            LabelRow(
                first.article_id,
                first.text,
                labels,
                ", ".join(annotators) or None,
                ref=" + ".join(r.ref or "?" for r in group),
            )
        )
    if problems:
        raise LabelError(problems)
    return merged


def _refs(group: Sequence[LabelRow]) -> str:
    return " and ".join(r.ref or "?" for r in group)


def _show(value: Any) -> str:
    return '"" (absent)' if value == ABSENT else repr(value)


def _split_annotators(value: str | None) -> list[str]:
    return [a.strip() for a in (value or "").split(",") if a.strip()]


def _frame(rows: Sequence[LabelRow]) -> pd.DataFrame:
    """The stored table of validated, merged rows (sorted by article_id, so content hashes are stable)."""
    import pandas as pd

    records = [
        {
            "article_id": r.article_id,
            "text": r.text.strip(),
            "annotator": r.annotator,
            "ref": r.ref,
            **{c: r.labels.get(c, UNKNOWN) for c in CATEGORIES},
        }
        for r in rows
    ]
    df = pd.DataFrame.from_records(records, columns=list(STORED_COLUMNS))
    return df.sort_values("article_id", kind="stable").reset_index(drop=True).astype(object)


def _content_sha256(frame: pd.DataFrame) -> str:
    cols = ["article_id", "text", "annotator", *CATEGORIES]
    blob = json.dumps(frame[cols].to_dict("records"), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(c, pa.string()) for c in STORED_COLUMNS])
    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    buf = io.BytesIO()
    pq.write_table(table, buf)
    return buf.getvalue()


def _nulls_as_none(df: pd.DataFrame) -> pd.DataFrame:
    """Parquet nulls (NaN / NA) as ``None``: the store's one spelling of unknown."""
    df = df.astype(object)
    return df.where(df.notna(), None)


def _dtype(column: str) -> str:
    return {"heldout": "bool", "n_labelled": "int64"}.get(column, "object")


def category_counts(frame: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per category: rows with a tag (labelled present), ``""`` (absent) and unknown."""
    out = {}
    for c in CATEGORIES:
        col = frame[c]
        unknown = int(col.isna().sum())
        absent = int((col == ABSENT).sum())
        out[c] = {"labelled": len(col) - unknown - absent, "absent": absent, "unknown": unknown}
    return out
