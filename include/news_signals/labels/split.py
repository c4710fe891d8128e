"""The once-and-for-all split of human labels: held-out, calibration and training parts.

An article's part depends only on its ``article_id`` (a salted sha256), never on when it was
labelled, by whom, or what else is in the store, so a held-out article stays held out for ever
and the gate's evaluation set only grows. Changing the salt or the fractions would move articles
between parts and leak held-out labels into training: do not.

- **held-out** (point < 0.3): judges every model, labeller and the gate; never in a snapshot.
- **calibration** (0.3 <= point < 0.4): in the snapshot's validation split only, where the trainer
  tunes each category's presence threshold on it. Never trains weights, never judges. A threshold
  follows the mix of the rows it is tuned on; the active-learning rows are the articles the model
  was least sure of, so thresholds tuned on them did not fit the news the product is judged on
  (docs/DEMO.md, 2026-12-06). A hash bucket of a seeded source is a random sample.
- **training** (the rest): overrides the bootstrap labels in the training split.
"""

from __future__ import annotations

import hashlib
from typing import Literal

HELDOUT_FRACTION = 0.3
CALIBRATION_FRACTION = 0.1  # the bucket just above the held-out one: the held-out part never moves
_SALT = "news-signals-heldout"

Part = Literal["heldout", "calibration", "training"]
PARTS: tuple[Part, ...] = ("heldout", "calibration", "training")


def heldout_point(article_id: str) -> float:
    """The article's fixed point in [0, 1): the first 8 hex of sha256(salt:article_id) / 16**8."""
    digest = hashlib.sha256(f"{_SALT}:{article_id}".encode()).hexdigest()
    return int(digest[:8], 16) / 16**8


def is_heldout(article_id: str, fraction: float = HELDOUT_FRACTION) -> bool:
    """True when the article belongs to the held-out part (stable for ever for a given fraction)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"held-out fraction {fraction} must be in [0, 1]")
    return heldout_point(article_id) < fraction


def is_calibration(article_id: str) -> bool:
    """True when the article belongs to the calibration part (thresholds only, never weights)."""
    return part_of(article_id) == "calibration"


def part_of(article_id: str) -> Part:
    """Which part of the human labels the article belongs to, for ever."""
    point = heldout_point(article_id)
    if point < HELDOUT_FRACTION:
        return "heldout"
    if point < HELDOUT_FRACTION + CALIBRATION_FRACTION:
        return "calibration"
    return "training"
