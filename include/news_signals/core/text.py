"""Text helpers shared by every stage: ids, title normalisation, model input text."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)


def article_id(url: str, title: str) -> str:
    """First 16 hex of sha256(url + title): the feature-group primary key."""
    return hashlib.sha256(f"{url}{title}".encode()).hexdigest()[:16]


def normalise_title(title: str) -> str:
    """Casefolded, accent-preserving, punctuation-free title used for dedupe and leakage checks."""
    text = unicodedata.normalize("NFKC", title or "").casefold()
    return " ".join(_NON_WORD.sub(" ", text).split())


def article_text(title: str, description: str | None = None) -> str:
    """The one string a labeller or the model sees for an article."""
    title = (title or "").strip()
    description = (description or "").strip()
    if description and description != title:
        return f"{title}. {description}" if title else description
    return title
