"""Strict JSON Lines I/O for the ``classify`` contract: errors name the line, writes are atomic."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path


def json_objects(path: str | Path, what: str = "input file") -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line; ValueError naming the first bad line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
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
            yield lineno, obj


def read_articles(path: str | Path) -> list[dict]:
    """Read articles; raise ValueError naming the first bad line (not JSON, not an object, no title)."""
    articles: list[dict] = []
    for lineno, obj in json_objects(path):
        title = obj.get("title")
        if not isinstance(title, str) or not title.strip():
            raise ValueError(f"{path}:{lineno}: missing \"title\" (a non-empty string is required)")
        articles.append(obj)
    return articles


def read_gold(path: str | Path) -> tuple[list[str], list[dict]]:
    """Human-labelled JSON Lines: ``text`` (or ``title`` + optional ``description``) and ``signals``.

    Shared by ``evaluate --input`` and monthly_retrain's ``gold_file`` Param; errors name the line.
    """
    from news_signals.core.taxonomy import check_signals
    from news_signals.core.text import article_text

    texts: list[str] = []
    truth: list[dict] = []
    for lineno, obj in json_objects(path, what="gold file"):
        text = obj.get("text") or article_text(str(obj.get("title") or ""), obj.get("description"))
        sig = obj.get("signals")
        try:
            if not text.strip():
                raise ValueError('needs "text" or "title"')
            if not isinstance(sig, dict):
                raise ValueError('missing "signals" object')
            check_signals(sig)
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: article {len(texts) + 1}: {exc}") from exc
        texts.append(text)
        truth.append({c: {"score": float(s["score"]), "tag": s["tag"]} for c, s in sig.items()})
    if not texts:
        raise ValueError(f"gold file {path} has no articles")
    return texts, truth


def write_jsonl_atomic(path: str | Path, rows: Iterable[dict]) -> None:
    """Write to a temporary file in the same folder and rename, so a failure leaves nothing behind."""
    from news_signals.core.storage import atomic_path

    with atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
