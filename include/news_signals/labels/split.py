"""The once-and-for-all split of human labels into a training part and a held-out part.

An article's side depends only on its ``article_id`` (a salted sha256), never on when it was
labelled, by whom, or what else is in the store, so a held-out article stays held out for ever
and the gate's evaluation set only grows. Changing the salt or the fraction would move articles
between sides and leak held-out labels into training: do not.
"""

from __future__ import annotations

import hashlib

HELDOUT_FRACTION = 0.3
_SALT = "news-signals-heldout"


def heldout_point(article_id: str) -> float:
    """The article's fixed point in [0, 1): the first 8 hex of sha256(salt:article_id) / 16**8."""
    digest = hashlib.sha256(f"{_SALT}:{article_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 16**8


def is_heldout(article_id: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """True when the article belongs to the held-out part (stable for ever for a given fraction)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction {fraction} must be in [0, 1]")
    return heldout_point(article_id) < fraction
