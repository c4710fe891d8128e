"""The labellers' JSON data files (lexicon, prototypes, hybrid config), read with errors that name the file."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any


def read_package_json(name: str, path: str | Path | None = None) -> dict[str, Any]:
    """A JSON data file of this package (or ``path``), with errors that name the file."""
    if path is None:
        source, text = f"news_signals/labelling/{name}", resources.files("news_signals.labelling").joinpath(name).read_text("utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{name} file {path} does not exist") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{source} is not valid JSON: {exc}") from exc
