"""Build a training snapshot from the last N days of daily partitions.

Steps, each recorded in ``manifest.json``: read the window ending at the logical date →
exact duplicates out (same ``article_id`` or normalised title) → relabel (hybrid labeller by
default, keywords for speed, or keep the partition's labels) → TF-IDF near-duplicate removal
(cosine >= ``dedupe_threshold``) → optional label filter → per-category minimum-rows check →
stratified train/val/test split by ``primary_category`` (scikit-learn, seeded) → balancing of the
**train split only** (each primary category, including ``none``, capped at ``max_per_class`` rows,
and ``none`` at ``max_none_ratio`` × the labelled rows) → written to a temp dir and renamed to
``snapshots/<id>/``.

Val and test keep the class mix of the data as it arrives: the trainer tunes its presence
thresholds on val and the gate judges on test, and both must see what production will see
(measured: docs/RETRAIN.md, "Snapshot").

The id is a hash of the parameters, the labeller version and the source partitions' bytes,
so re-running the same month on the same data finds the finished snapshot and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from news_signals.core.dates import parse_day
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import (
    ABSENT,
    CATEGORIES,
    confidence_column,
    score_column,
    signals_to_columns,
    tag_column,
    taxonomy_fingerprint,
)
from news_signals.core.text import article_text, normalise_title
from news_signals.retrain import human_labels
from news_signals.retrain.human_labels import DEFAULT_HUMAN_WEIGHT

if TYPE_CHECKING:
    import pandas as pd

    from news_signals.labelling.classifiers import Classifier

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"
DISAGREEMENTS = "disagreements.parquet"
NONE = "none"
SNAPSHOT_VERSION = 4  # bump when the build logic changes, so old snapshots are not reused for new runs
LABELLERS = ("auto", "hybrid", "keywords", "partition", "llm")


class SnapshotError(ValueError):
    """The partitions cannot make a usable snapshot (too little data, no partitions, ...)."""


@dataclass(frozen=True)
class SnapshotParams:
    end_date: str  # ISO date; the window is (end_date - lookback_days, end_date]
    lookback_days: int = 30
    labeller: str = "auto"  # auto = hybrid
    dedupe_threshold: float = 0.9  # TF-IDF cosine at or above which two texts are near-duplicates
    max_per_class: int | None = 5000  # cap per primary category (the majority label), None = no cap
    max_none_ratio: float | None = 1.0  # rows without any label <= ratio x labelled rows
    label_filter: tuple[str, ...] = ()  # keep only these primary categories (may include "none")
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 13
    min_rows_per_category: int = 5  # labelled rows a category needs in the whole snapshot
    allow_empty_categories: bool = True  # a category with zero labelled rows only warns
    disagreement_threshold: float = 0.6  # |hybrid - keyword score| that counts as a strong disagreement
    sample_size: int | None = None  # keep at most this many rows (stratified), for quick runs
    human_labels: bool = True  # training-part human labels override bootstrap labels (held-out rows always leave)
    human_weight: float = DEFAULT_HUMAN_WEIGHT  # loss weight of a human label (bootstrap: its confidence, <= 1)
    llm_fallback: bool = False  # labeller llm: relabel with hybrid (recorded) when the endpoint is down at the start

    def __post_init__(self) -> None:
        try:
            day = parse_day(self.end_date, "end_date")
        except ValueError as exc:
            raise SnapshotError(str(exc)) from exc
        if day != self.end_date:
            raise SnapshotError(f"end_date {self.end_date!r}: pass the day alone, {day}")
        if self.lookback_days < 1:
            raise SnapshotError(f"lookback_days must be >= 1, got {self.lookback_days}")
        if self.labeller not in LABELLERS:
            raise SnapshotError(f"labeller {self.labeller!r} is unknown; choose one of {LABELLERS}")
        if not 0.0 < self.dedupe_threshold <= 1.0:
            raise SnapshotError(f"dedupe_threshold must be in (0, 1], got {self.dedupe_threshold}")
        if not (0.0 < self.val_fraction < 0.5 and 0.0 < self.test_fraction < 0.5):
            raise SnapshotError("val_fraction and test_fraction must each be in (0, 0.5)")
        bad = [c for c in self.label_filter if c not in (*CATEGORIES, NONE)]
        if bad:
            raise SnapshotError(f"label_filter names unknown categories {bad}; use {[*CATEGORIES, NONE]}")

    @property
    def window(self) -> tuple[str, str]:
        end = date.fromisoformat(self.end_date)
        return (end - timedelta(days=self.lookback_days - 1)).isoformat(), end.isoformat()


@dataclass
class SnapshotResult:
    id: str
    path: str
    manifest: dict[str, Any] = field(default_factory=dict)
    reused: bool = False


# ---- pieces (public for tests and the CLI) -------------------------------------------------
def window_dates(storage: Storage, params: SnapshotParams) -> list[str]:
    start, end = params.window
    return [d for d in storage.partition_dates() if start <= d <= end]


def primary_category(df: pd.DataFrame) -> pd.Series:
    """The category with the largest |score| per row, ``none`` when every score is 0."""
    import numpy as np
    import pandas as pd

    scores = np.abs(df[[score_column(c) for c in CATEGORIES]].to_numpy(dtype=float))
    idx = scores.argmax(axis=1)
    names = np.array(CATEGORIES, dtype=object)[idx]
    names[scores.max(axis=1) <= 0.0] = NONE
    return pd.Series(names, index=df.index, name="primary_category")


def near_duplicates(texts: list[str], threshold: float) -> list[int]:
    """Indices to drop: each text similar (TF-IDF cosine >= threshold) to an earlier kept text."""
    if len(texts) < 2:
        return []
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1).fit_transform(texts)
    similar: dict[int, list[int]] = {}
    chunk = 512
    for start in range(0, matrix.shape[0], chunk):
        block = (matrix[start : start + chunk] @ matrix[: start + chunk].T).tocoo()
        for i, j, v in zip(block.row, block.col, block.data, strict=True):
            gi = start + int(i)
            if int(j) < gi and v >= threshold - 1e-9:
                similar.setdefault(gi, []).append(int(j))
    dropped: set[int] = set()
    for i in sorted(similar):
        if any(j not in dropped for j in similar[i]):
            dropped.add(i)
    return sorted(dropped)


def make_labeller(kind: str, llm_fallback: bool = False) -> tuple[Classifier | None, str]:
    """The labeller for ``kind`` and the name@version recorded in the manifest."""
    from news_signals.labelling.keywords import KeywordLabeller

    if kind == "llm":  # name = llm:<model>@prompt-<version>, so another model or prompt makes a new snapshot
        from news_signals.labelling.llm import LLMNotConfigured, LLMUnavailable, snapshot_labeller

        try:
            llm = snapshot_labeller(fallback=(lambda: make_labeller("hybrid")[0]) if llm_fallback else None)
        except (LLMUnavailable, LLMNotConfigured) as exc:
            raise SnapshotError(f"labeller 'llm': {exc} (or set the Param llm_fallback to relabel with hybrid)") from exc
        return llm, _label_of(llm)
    if kind in ("auto", "hybrid"):
        from news_signals.labelling.hybrid import HybridLabeller

        hybrid = HybridLabeller()
        return hybrid, _label_of(hybrid)
    if kind == "partition":
        return None, "partition"
    kw = KeywordLabeller()
    return kw, _label_of(kw)


def _label_of(labeller: Any) -> str:
    label = getattr(labeller, "label", None)
    if label:
        return str(label)
    name, version = getattr(labeller, "name", type(labeller).__name__), getattr(labeller, "version", None)
    return name if version is None or "@" in name else f"{name}@{version}"


def stratified_split(df: pd.DataFrame, params: SnapshotParams) -> dict[str, pd.DataFrame]:
    """train/val/test stratified by primary_category (classes too small to split go to train)."""
    from sklearn.model_selection import train_test_split

    counts = df["primary_category"].value_counts()
    rare = set(counts[counts < 3].index)
    pool, rare_rows = df[~df["primary_category"].isin(rare)], df[df["primary_category"].isin(rare)]
    holdout = params.val_fraction + params.test_fraction
    parts: dict[str, pd.DataFrame]
    try:
        train, rest = train_test_split(
            pool, test_size=holdout, stratify=pool["primary_category"], random_state=params.seed
        )
        val, test = train_test_split(
            rest,
            test_size=params.test_fraction / holdout,
            stratify=rest["primary_category"],
            random_state=params.seed,
        )
    except ValueError as exc:  # too few rows per class for a stratified holdout of this size
        log.warning("stratified split impossible (%s); splitting per class", exc)
        return _per_class_split(df, params)
    import pandas as pd

    parts = {"train": pd.concat([train, rare_rows]), "val": val, "test": test}
    return {k: v.sort_values("article_id").reset_index(drop=True) for k, v in parts.items()}


def route_human_rows(splits: dict[str, pd.DataFrame], human: human_labels.HumanLabels) -> dict[str, pd.DataFrame]:
    """Calibration rows to val, every other human-labelled row to train, none in test.

    Calibration rows (``labels.split``: a random bucket of human labels) are where the trainer tunes
    its presence thresholds (model.thresholds: val's human rows), so they must not train the weights
    and val must hold no other human rows: the active-learning rows are the articles the model was
    least sure of, and thresholds tuned on them did not fit held-out news (docs/DEMO.md). Those rows
    train instead, none wasted in val. The test split measures agreement with the bootstrap labeller
    (quality is measured on the held-out human labels, which never enter a snapshot).
    """
    import pandas as pd

    if human_labels.HUMAN_COLUMN not in splits["train"].columns:
        return splits
    to_train, to_val, stay = [], [], {}
    for name, frame in splits.items():
        is_human = frame[human_labels.HUMAN_COLUMN] > 0
        key = frame["_norm"] if "_norm" in frame.columns else frame["text"]  # the key `apply` matched on
        calibration = is_human & human_labels.is_calibration_row(frame["article_id"], key, human)
        to_train.append(frame[is_human & ~calibration])
        to_val.append(frame[calibration])
        stay[name] = frame[~is_human]
    out = {
        "train": pd.concat([stay["train"], *to_train]),
        "val": pd.concat([stay["val"], *to_val]),
        "test": stay["test"],
    }
    return {k: v.sort_values("article_id", kind="stable").reset_index(drop=True) for k, v in out.items()}


def _per_class_split(df: pd.DataFrame, params: SnapshotParams) -> dict[str, pd.DataFrame]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(params.seed)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for _, group in df.groupby("primary_category", sort=True):
        idx = rng.permutation(len(group))
        n_test = int(round(len(group) * params.test_fraction)) if len(group) >= 3 else 0
        n_val = int(round(len(group) * params.val_fraction)) if len(group) >= 3 else 0
        if len(group) >= 3:
            n_test, n_val = max(n_test, 1), max(n_val, 1)
        out["test"].append(group.iloc[idx[:n_test]])
        out["val"].append(group.iloc[idx[n_test : n_test + n_val]])
        out["train"].append(group.iloc[idx[n_test + n_val :]])
    return {s: pd.concat(v).sort_values("article_id").reset_index(drop=True) for s, v in out.items()}


def label_counts(df: pd.DataFrame) -> dict[str, dict[str, int]]:
    """{category: {tag: rows}} for labelled rows (absent not counted)."""
    out: dict[str, dict[str, int]] = {}
    for c in CATEGORIES:
        tags = df[tag_column(c)][df[tag_column(c)] != ABSENT]
        out[c] = {str(k): int(v) for k, v in sorted(tags.value_counts().items())}
    return out


def positives(df: pd.DataFrame) -> dict[str, int]:
    return {c: int((df[tag_column(c)] != ABSENT).sum()) for c in CATEGORIES}


# ---- the whole build ---------------------------------------------------------------------
def build_snapshot(params: SnapshotParams, storage: Storage | None = None) -> SnapshotResult:
    """Build (or reuse) the snapshot for ``params``; raise SnapshotError on unusable data."""
    import pandas as pd

    storage = storage or Storage()
    dates = window_dates(storage, params)
    start, end = params.window
    if not dates:
        raise SnapshotError(
            f"no daily partitions between {start} and {end} under {storage.url(storage.path('articles'))}; "
            "run gdelt_daily_ingest for those days (backfill) or widen lookback_days"
        )
    source = {d: _sha256(storage, storage.partition_file(d)) for d in dates}
    labeller, labeller_name = make_labeller(params.labeller, params.llm_fallback)
    human = human_labels.load(storage)
    snap_id = snapshot_id(params, source, labeller_name, human.fingerprint)
    target = storage.snapshot_dir(snap_id)
    if storage.fs.exists(posixpath.join(target, MANIFEST)):
        manifest = storage.read_json(posixpath.join(target, MANIFEST))
        log.info("snapshot %s already exists for these partitions and parameters; reusing it", snap_id)
        return SnapshotResult(snap_id, storage.url(target), manifest, reused=True)

    frames = []
    for d in dates:
        part = storage.read_parquet(storage.partition_file(d))
        part["date"] = d
        frames.append(part)
    raw = pd.concat(frames, ignore_index=True)
    stats: dict[str, int] = {"rows_read": len(raw)}
    if raw.empty:
        raise SnapshotError(f"the partitions {dates[0]}..{dates[-1]} hold no articles")
    description = raw["description"] if "description" in raw.columns else pd.Series([None] * len(raw))
    raw["text"] = [article_text(t, d) for t, d in zip(raw["title"].fillna(""), description, strict=True)]
    raw["_norm"] = raw["title"].fillna("").map(normalise_title)
    raw = raw[raw["text"].str.strip() != ""]
    raw = raw.sort_values(["date", "article_id"], kind="stable")
    before = len(raw)
    raw = raw.drop_duplicates("article_id").drop_duplicates("_norm").reset_index(drop=True)
    stats["exact_duplicates"] = before - len(raw)
    heldout = human_labels.is_heldout_row(raw["article_id"], raw["text"], human)
    raw = raw[~heldout].reset_index(drop=True)
    stats["heldout_excluded"] = int(heldout.sum())
    if params.human_labels and labeller is not None:  # partition labels cannot label new rows
        extra = human_labels.extra_rows(raw, human)
        raw = pd.concat([raw, extra], ignore_index=True) if len(extra) else raw
        stats["human_extra_rows"] = len(extra)

    df, disagreements = _relabel(raw, labeller, params)
    human_stats: dict[str, Any] = {}
    if params.human_labels:
        df, human_stats = human_labels.apply(df, human, human_weight=params.human_weight)
    else:
        df = human_labels.mark_bootstrap(df)
    drop = near_duplicates(df["text"].tolist(), params.dedupe_threshold)
    df = df.drop(index=drop).reset_index(drop=True)
    stats["near_duplicates"] = len(drop)
    if not disagreements.empty:
        disagreements = disagreements[disagreements["article_id"].isin(df["article_id"])]

    df["primary_category"] = primary_category(df)
    if params.label_filter:
        before = len(df)
        df = df[df["primary_category"].isin(params.label_filter)].reset_index(drop=True)
        stats["label_filtered"] = before - len(df)
    if params.sample_size and len(df) > params.sample_size:
        from sklearn.model_selection import train_test_split

        before = len(df)
        is_human = df[human_labels.HUMAN_COLUMN] > 0  # human-labelled rows are never sampled away
        rest, keep = df[~is_human], max(1, params.sample_size - int(is_human.sum()))
        if len(rest) > keep:
            try:
                rest, _ = train_test_split(
                    rest, train_size=keep, stratify=rest["primary_category"], random_state=params.seed
                )
            except ValueError:
                rest = rest.sample(n=keep, random_state=params.seed)
        df = pd.concat([rest, df[is_human]]).reset_index(drop=True)
        stats["sampled_out"] = before - len(df)
    warnings = _check_min_rows(df, params, dates)
    splits = route_human_rows(stratified_split(df, params), human)
    splits["train"], stats["balanced_out"] = _balance(splits["train"], params)
    stats["rows"] = sum(len(s) for s in splits.values())

    manifest = {
        "id": snap_id,
        "snapshot_version": SNAPSHOT_VERSION,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": {"start": start, "end": end, "dates": dates, "partition_sha256": source},
        "params": _params_dict(params),
        "labeller": labeller_name,
        "labeller_stats": labeller.summary() if hasattr(labeller, "summary") else None,  # LLM: requests, tokens, cost
        "taxonomy": taxonomy_fingerprint(),
        "stats": stats,
        "counts": {s: len(v) for s, v in splits.items()},
        "primary_counts": {s: _value_counts(v["primary_category"]) for s, v in splits.items()},
        "label_counts": {s: label_counts(v) for s, v in splits.items()},
        "positives": {s: positives(v) for s, v in splits.items()},
        "disagreements": _disagreement_summary(disagreements),
        "human_labels": {
            "used": params.human_labels,
            "fingerprint": human.fingerprint,
            "batches": human.batches,
            "heldout_articles": len(human.heldout_ids),
            "heldout_excluded": stats["heldout_excluded"],
            **human_stats,
            "rows_per_split": {s: int((v[human_labels.HUMAN_COLUMN] > 0).sum()) for s, v in splits.items()},
        },
        "warnings": warnings,
    }
    _write_atomically(storage, target, splits, disagreements, manifest)
    log.info("snapshot %s: %s rows (%s)", snap_id, stats["rows"], manifest["counts"])
    return SnapshotResult(snap_id, storage.url(target), manifest)


def snapshot_id(params: SnapshotParams, source: dict[str, str], labeller: str, human: str = "none") -> str:
    blob = json.dumps(
        {
            "p": {k: v for k, v in _params_dict(params).items() if k != "llm_fallback"},  # the labeller name says it
            "s": source,
            "l": labeller,
            "h": human,
            "t": taxonomy_fingerprint(),
            "v": SNAPSHOT_VERSION,
        },
        sort_keys=True,
    )
    return f"{params.end_date}-{params.lookback_days}d-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def _params_dict(params: SnapshotParams) -> dict[str, Any]:
    out = asdict(params)
    out["label_filter"] = list(params.label_filter)
    return out


def _value_counts(series: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(series.value_counts().items())}


def _sha256(storage: Storage, path: str) -> str:
    h = hashlib.sha256()
    with storage.fs.open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _relabel(
    raw: pd.DataFrame, labeller: Classifier | None, params: SnapshotParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Signal + confidence columns from the labeller (or the partition), and the strong disagreements."""
    import pandas as pd

    keep = ["article_id", "text", "date", "_norm"]
    if labeller is None:
        df = raw[keep + [c for c in raw.columns if c.endswith(("_score", "_tag", "_confidence"))]].copy()
        for c in CATEGORIES:
            if confidence_column(c) not in df.columns:
                df[confidence_column(c)] = 1.0
            df[tag_column(c)] = df[tag_column(c)].fillna(ABSENT).astype(str)
        return df.reset_index(drop=True), pd.DataFrame()
    texts = raw["text"].tolist()
    import inspect

    if (
        "keys" in inspect.signature(labeller.classify_texts).parameters
    ):  # lets the hybrid cache embeddings by id
        signals = labeller.classify_texts(texts, keys=raw["article_id"].tolist())
    else:
        signals = labeller.classify_texts(texts)
    cols = pd.DataFrame([signals_to_columns(s, with_confidence=True) for s in signals], index=raw.index)
    df = pd.concat([raw[keep], cols], axis=1).reset_index(drop=True)
    if getattr(labeller, "name", "") == "keywords":
        return df, pd.DataFrame()
    from news_signals.labelling.keywords import KeywordLabeller

    kw = KeywordLabeller().classify_texts(texts)
    rows = []
    for i, (hyb, key) in enumerate(zip(signals, kw, strict=True)):
        for c in CATEGORIES:
            if not strong_disagreement(hyb[c], key[c], params.disagreement_threshold):
                continue
            gap = abs(float(hyb[c]["score"]) - float(key[c]["score"]))
            rows.append(
                {
                    "article_id": df.at[i, "article_id"],
                    "text": texts[i],
                    "category": c,
                    "labeller_score": float(hyb[c]["score"]),
                    "labeller_tag": hyb[c]["tag"],
                    "labeller_confidence": float(hyb[c].get("confidence", 1.0)),
                    "keyword_score": float(key[c]["score"]),
                    "keyword_tag": key[c]["tag"],
                    "gap": gap,
                }
            )
    return df, pd.DataFrame(rows)


def strong_disagreement(labeller: dict, keyword: dict, threshold: float, confident: float = 0.8) -> bool:
    """Scores ``threshold`` apart, opposite signs, or a confident presence the other labeller denies."""
    ls, ks = float(labeller["score"]), float(keyword["score"])
    l_on, k_on = bool(labeller.get("tag")), bool(keyword.get("tag"))
    if abs(ls - ks) >= threshold or (l_on and k_on and ls * ks < 0):
        return True
    return l_on != k_on and float(labeller.get("confidence", 1.0)) >= confident


def _disagreement_summary(dis: pd.DataFrame) -> dict[str, Any]:
    if dis.empty:
        return {"rows": 0, "per_category": {}, "examples": []}
    top = dis.sort_values(["gap", "article_id"], ascending=[False, True]).head(10)
    return {
        "rows": int(dis["article_id"].nunique()),
        "per_category": _value_counts(dis["category"]),
        "examples": top.to_dict(orient="records"),
        "file": DISAGREEMENTS,
    }


def _balance(df: pd.DataFrame, params: SnapshotParams) -> tuple[pd.DataFrame, int]:
    import pandas as pd

    before = len(df)
    human = df[df[human_labels.HUMAN_COLUMN] > 0] if human_labels.HUMAN_COLUMN in df else df.iloc[0:0]
    df = df.drop(index=human.index)  # human-labelled rows are never balanced away
    groups = []
    for _, group in df.groupby("primary_category", sort=True):
        if params.max_per_class is not None and len(group) > params.max_per_class:
            group = group.sample(n=params.max_per_class, random_state=params.seed)
        groups.append(group)
    out = pd.concat(groups) if groups else df
    if params.max_none_ratio is not None:
        labelled = int((out["primary_category"] != NONE).sum()) + len(human)
        cap = int(labelled * params.max_none_ratio)
        none = out[out["primary_category"] == NONE]
        if len(none) > cap:
            out = pd.concat(
                [out[out["primary_category"] != NONE], none.sample(n=cap, random_state=params.seed)]
            )
    out = pd.concat([out, human])
    return out.sort_values("article_id").reset_index(drop=True), before - len(out)


def _check_min_rows(df: pd.DataFrame, params: SnapshotParams, dates: list[str]) -> list[str]:
    counts = positives(df)
    warnings, short = [], []
    for c, n in counts.items():
        if n == 0 and params.allow_empty_categories:
            warnings.append(
                f"category {c} has no labelled rows in {dates[0]}..{dates[-1]}; its heads learn 'absent' only"
            )
        elif n < params.min_rows_per_category:
            short.append(f"{c} has {n} labelled rows and needs at least {params.min_rows_per_category}")
    for w in warnings:
        log.warning(w)
    if short:
        raise SnapshotError(
            "too little data for a category: " + "; ".join(short) + f" (window {dates[0]}..{dates[-1]}, "
            f"{len(dates)} partitions). Backfill more days or raise lookback_days, or lower min_rows_per_category."
        )
    return warnings


def _write_atomically(
    storage: Storage,
    target: str,
    splits: dict[str, pd.DataFrame],
    dis: pd.DataFrame,
    manifest: dict[str, Any],
) -> None:
    fs = storage.fs
    parent = posixpath.dirname(target)
    fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f".tmp-{uuid.uuid4().hex}")
    fs.makedirs(tmp, exist_ok=True)
    try:
        files = {}
        for name, frame in splits.items():
            frame = frame.drop(columns=["_norm"], errors="ignore")
            frame = frame.assign(title_norm=splits[name]["_norm"]) if "_norm" in splits[name] else frame
            files[f"{name}.parquet"] = frame
        if not dis.empty:
            files[DISAGREEMENTS] = dis.reset_index(drop=True)
        hashes = {}
        for fname, frame in files.items():
            path = posixpath.join(tmp, fname)
            with fs.open(path, "wb") as fh:
                frame.to_parquet(fh, index=False)
            hashes[fname] = _sha256(storage, path)
        manifest["files"] = hashes
        with fs.open(posixpath.join(tmp, MANIFEST), "wb") as fh:
            fh.write(json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
        if fs.exists(target):  # an earlier run crashed after its rename? never mix: replace whole
            fs.rm(target, recursive=True)
        protocol = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        if "file" in protocol:
            os.rename(tmp, target)
        else:
            fs.mv(tmp, target, recursive=True)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)


def previous_snapshot(storage: Storage, current_id: str) -> dict[str, Any] | None:
    """The manifest of the newest other snapshot with an earlier end date (for the shift check)."""
    base = storage.path("snapshots")
    if not storage.fs.exists(base):
        return None
    current = storage.read_json(posixpath.join(storage.snapshot_dir(current_id), MANIFEST))
    best = None
    for entry in storage.fs.ls(base, detail=False):
        name = posixpath.basename(entry.rstrip("/"))
        path = posixpath.join(entry, MANIFEST)
        if name == current_id or name.startswith(".") or not storage.fs.exists(path):
            continue
        m = storage.read_json(path)
        key = (m["source"]["end"], m.get("created_at", ""))
        if key[0] < current["source"]["end"] and (best is None or key > best[0]):
            best = (key, m)
    return best[1] if best else None
