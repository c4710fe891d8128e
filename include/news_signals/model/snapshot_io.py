"""Read a training snapshot (``{train,val,test}.parquet`` + ``manifest.json``) with clear errors.

The snapshot builder (news_signals.retrain.snapshot) writes it; the trainer and the evaluation read it
through here, so a missing split, an empty split or a missing column is reported the same way.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

from news_signals.core.taxonomy import (
    ABSENT,
    CATEGORIES,
    SIGNAL_COLUMNS,
    TAGS,
    Signals,
    confidence_column,
    human_column,
    score_column,
    tag_column,
)

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
REQUIRED_COLUMNS = ("text", *SIGNAL_COLUMNS)


def snapshot_id(snapshot_dir: str | Path) -> str:
    """The manifest's ``id``, else the directory name."""
    snapshot_dir = Path(snapshot_dir)
    manifest = snapshot_dir / "manifest.json"
    if manifest.is_file():
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("id"):
                return str(data["id"])
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; using the directory name as the snapshot id", manifest)
    return snapshot_dir.name


def read_split(snapshot_dir: str | Path, split: str) -> pd.DataFrame:
    """One split, checked: it exists, is not empty, has text + signal columns with valid values."""
    import pandas as pd

    snapshot_dir = Path(snapshot_dir)
    if not snapshot_dir.is_dir():
        raise FileNotFoundError(
            f"snapshot directory {snapshot_dir} does not exist; build one with `python -m news_signals snapshot`"
        )
    path = snapshot_dir / f"{split}.parquet"
    if not path.is_file():
        raise FileNotFoundError(f"snapshot {snapshot_dir} has no {split} split ({path.name} is missing)")
    df = pd.read_parquet(path)
    if df.empty:
        raise ValueError(f"snapshot split {path} is empty; the {split} split needs at least one row")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"snapshot split {path} lacks columns {missing}; expected text and {{category}}_score/_tag")
    df = df.copy()
    no_confidence = [c for c in CATEGORIES if confidence_column(c) not in df.columns]
    if no_confidence:
        log.warning("%s has no confidence columns for %s; those labels count with confidence 1.0", path, no_confidence)
    df["text"] = df["text"].fillna("").astype(str)
    for c in CATEGORIES:
        tags = df[tag_column(c)].fillna(ABSENT).astype(str)
        bad = sorted(set(tags) - {ABSENT, *TAGS[c]})
        if bad:
            raise ValueError(f"snapshot split {path}: column {tag_column(c)} has tags {bad} outside {list(TAGS[c])}")
        df[tag_column(c)] = tags
        scores = pd.to_numeric(df[score_column(c)], errors="coerce")
        if scores.isna().any() or (scores.abs() > 1.0).any():
            row = int((scores.isna() | (scores.abs() > 1.0)).to_numpy().argmax())
            raise ValueError(f"snapshot split {path}: {score_column(c)} row {row} is not a number in [-1, 1]")
        df[score_column(c)] = scores.astype(float)
        conf = confidence_column(c)
        if conf not in df.columns:
            df[conf] = 1.0
        else:
            # a bootstrap label weighs its confidence (<= 1), a human label the snapshot's human_weight
            # (> 1 by default): only negatives are clipped, or the human weight would be lost here
            values = pd.to_numeric(df[conf], errors="coerce").fillna(1.0)
            df[conf] = values.clip(lower=0.0).astype(float)
        human = human_column(c)
        df[human] = df[human].fillna(False).astype(bool) if human in df.columns else False
    return df.reset_index(drop=True)


def truth_signals(df: pd.DataFrame) -> list[Signals]:
    """Rows of a split as Signals (the evaluation's truth)."""
    out: list[Signals] = []
    for row in df[list(SIGNAL_COLUMNS)].itertuples(index=False):
        sig: Signals = {}
        for i, c in enumerate(CATEGORIES):
            score, tag = float(row[2 * i]), str(row[2 * i + 1] or "")
            sig[c] = {"score": 0.0 if tag == ABSENT or math.isnan(score) else score, "tag": tag}
        out.append(sig)
    return out
