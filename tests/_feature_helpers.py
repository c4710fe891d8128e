"""Helpers for the feature-pipeline tests: daily partitions in the DESIGN.md schema and a tiny classifier."""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pandas as pd
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, Signals, empty_signals, signals_to_columns
from news_signals.core.text import article_id

HEADLINES = [
    ("Fire destroys warehouse in Gothenburg harbour", "Sweden"),
    ("Police arrest two after jewellery store robbery", "Sweden"),
    ("Thousands celebrate at midsummer festival parade", "Sweden"),
    ("Heavy snow closes roads and delays trains", "Sweden"),
    ("Local team wins the hockey championship", "Norway"),
    ("Inflation falls as markets rally", "Norway"),
    ("Parliament votes on new climate policy", "Norway"),
    ("Heatwave breaks temperature records", "Finland"),
]


def make_partition(day: str | date, n: int = 8) -> pd.DataFrame:
    """A labelled daily partition as gdelt_daily_ingest writes it (columns of docs/DESIGN.md)."""
    iso = day if isinstance(day, str) else day.isoformat()
    rows = []
    for i in range(n):
        title, country = HEADLINES[i % len(HEADLINES)]
        title = f"{title} ({i})" if i >= len(HEADLINES) else title
        url = f"https://news.example/{iso}/{i}"
        rows.append(
            {
                "article_id": article_id(url, title),
                "url": url,
                "title": title,
                "seendate": pd.Timestamp(f"{iso}T{i % 24:02d}:00:00Z"),
                "domain": "news.example",
                "language": "English",
                "sourcecountry": country,
                **signals_to_columns(empty_signals()),
                "labeller": "keywords@1",
            }
        )
    return pd.DataFrame(rows)


def write_partition(storage: Storage, day: str, n: int = 8) -> pd.DataFrame:
    df = make_partition(day, n)
    storage.replace_partition(day, df)
    return df


class TinyClassifier:
    """A real Classifier: 'fire' → emergencies -0.8 fire, 'wins' → sports +0.6 victory, else nothing."""

    def __init__(self, name: str = "model:tiny@1") -> None:
        self.name = name
        self.calls: list[int] = []

    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        self.calls.append(len(texts))
        out = []
        for text in texts:
            sig = empty_signals()
            low = text.lower()
            if "fire" in low:
                sig["emergencies"] = {"score": -0.8, "tag": "fire"}
            if "wins" in low:
                sig["sports"] = {"score": 0.6, "tag": "victory"}
            out.append(sig)
        return out


class LogCapture(logging.Handler):
    """Records of one logger, attached directly: Airflow's logging setup can replace the root handlers
    (and with them pytest's caplog handler) when it is first imported inside a test."""

    def __init__(self, logger: str) -> None:
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(logger)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> LogCapture:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)

    def warnings(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.WARNING]


_TINY_ARTIFACT: Path | None = None


def tiny_artifact() -> Path:
    """One real tiny model artifact per test session (built with tools.tiny_model, ~30 s)."""
    global _TINY_ARTIFACT
    if _TINY_ARTIFACT is None:
        import torch

        from tools.tiny_model import build_tiny_artifact

        torch.set_num_threads(1)
        _TINY_ARTIFACT = build_tiny_artifact(
            Path(tempfile.mkdtemp(prefix="feat-tiny-")) / "artifact", epochs=1
        )
    return _TINY_ARTIFACT


def artifact_variant(src: Path, dst: Path, *, note: str = "", vocab_drop: str | None = None) -> Path:
    """A copy of ``src`` with different files (so the registry sees a new version), hashes kept valid.

    ``note`` changes history.json (same weights, new version); ``vocab_drop`` removes one tag from
    the manifest's vocabulary of that category (a taxonomy mismatch the loader must refuse).
    """
    from news_signals.model.artifact import sha256_file

    shutil.copytree(src, dst)
    manifest_path = dst / "news_signals.json"
    manifest = json.loads(manifest_path.read_text())
    if note:
        history = dst / "history.json"
        data = json.loads(history.read_text())
        history.write_text(json.dumps({"note": note, "history": data}))
        manifest["files"]["history.json"] = sha256_file(history)
    if vocab_drop:
        manifest["vocabularies"][vocab_drop] = manifest["vocabularies"][vocab_drop][:-1]
    manifest_path.write_text(json.dumps(manifest, indent=2))
    return dst


def register_and_promote(storage: Storage, artifact: Path, reason: str = "test") -> int:
    """Register ``artifact`` in the LocalRegistry under ``storage`` and promote it; return the version."""
    from news_signals.core.config import Settings
    from news_signals.registry import LocalRegistry

    registry = LocalRegistry(Settings().model_name, storage)
    mv = registry.register(artifact, {"macro_f1": 0.5})
    registry.promote(mv.version, reason)
    return int(mv.version)


__all__ = ["CATEGORIES", "TinyClassifier", "make_partition", "write_partition"]
