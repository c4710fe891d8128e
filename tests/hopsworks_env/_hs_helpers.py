"""Helpers of the in-venv Hopsworks tests: autospecs of the real hsml classes, a fake artifact, feature rows."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import create_autospec

import pandas as pd
from news_signals.core.taxonomy import empty_signals, signals_to_columns
from news_signals.core.text import article_id


def fake_artifact(path: Path, weights: bytes = b"w1") -> Path:
    """The artifact's shape (files + news_signals.json); the registry only hashes and copies files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    (path / "news_signals.json").write_text(json.dumps({"files": {"model.safetensors": "x"}}))
    return path


def hsml_mocks():
    """Autospecs of the real hsml classes: a wrong call signature fails the test."""
    import hsml.python.signature as python_signature
    from hsml.model import Model
    from hsml.model_registry import ModelRegistry

    mr = create_autospec(ModelRegistry, instance=True)
    mr.python = create_autospec(python_signature)
    return mr, Model


def hs_model(Model, version: int, tag=None, description: str = ""):
    m = create_autospec(Model, instance=True)
    m.version, m.description, m.training_metrics = version, description, {"macro_f1": 0.5}
    m.created, m.model_path = "2026-11-01", f"/Models/m/{version}"
    m.get_tag.return_value = tag
    return m


def tagging(model):
    """The autospec'd hsml Model keeps its tags like the server does (add_tag / get_tag / delete_tag)."""
    tags: dict = {}
    model.get_tag.side_effect = tags.get
    model.add_tag.side_effect = tags.__setitem__
    model.delete_tag.side_effect = lambda name: tags.pop(name)
    return model


def headline_rows(n: int = 8, day: str = "2024-05-01") -> pd.DataFrame:
    """``n`` valid headline_classifications rows (the shape features.pipeline.classify_rows produces)."""
    rows = []
    for i in range(n):
        url, title = f"https://news.example.se/{i}", f"Storm {i} closes the E4 near Uppsala"
        sig = empty_signals()
        sig["weather_wet"] = {"score": -0.5, "tag": "storm"}
        rows.append({"article_id": article_id(url, title), "seendate": pd.Timestamp(f"{day}T{i % 24:02d}:00:00Z"),
                     "title": title, "url": url, "domain": "news.example.se", "language": "english",
                     "sourcecountry": "SW", **signals_to_columns(sig), "classifier": "keywords"})
    return pd.DataFrame(rows)
