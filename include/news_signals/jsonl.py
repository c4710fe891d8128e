"""Strict JSON Lines I/O for the ``classify`` contract: errors name the line, writes are atomic."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def read_articles(path: str | Path) -> list[dict]:
    """Read articles; raise ValueError naming the first bad line (not JSON, not an object, no title)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} does not exist")
    articles: list[dict] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({exc.msg}); each line must be one JSON object") from exc
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
            title = obj.get("title")
            if not isinstance(title, str) or not title.strip():
                raise ValueError(f"{path}:{lineno}: missing \"title\" (a non-empty string is required)")
            articles.append(obj)
    return articles


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> None:
    """Write to a temporary file in the same folder and rename, so a failure leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
