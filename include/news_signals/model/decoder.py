"""Raw head outputs -> ``Signals``: presence thresholds, tag choice, score clipping.

The tag heads are trained with class weights so rare categories fire at all, which pushes
P(present) up; the trainer therefore tunes a P(present) threshold per category on the
validation split and stores it in the manifest (``presence_thresholds``). A category without
one keeps the argmax of its tag head.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals
from news_signals.model.predictor import Prediction


class Decoder:
    """``to_signals(prediction)``: present when P(present) reaches the category's threshold (else the
    argmax of the tag head); a present category takes its most likely non-absent tag; an absent tag
    forces score 0; ``confidence`` is the chosen tag's probability."""

    def __init__(
        self,
        categories: Sequence[str],
        vocabularies: Mapping[str, Sequence[str]],
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.categories = tuple(categories)
        self.vocabularies = {c: tuple(vocabularies[c]) for c in self.categories}
        self.thresholds = {c: float(t) for c, t in (thresholds or {}).items() if c in self.categories}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Decoder:
        return cls(manifest["categories"], manifest["vocabularies"], manifest.get("presence_thresholds"))

    def to_signals(self, pred: Prediction) -> list[Signals]:
        tag_idx = {c: self.tag_indices(c, pred.tag_probs[c]) for c in self.categories}
        out: list[Signals] = []
        for i in range(pred.scores.shape[0]):
            sig: Signals = {}
            for j, c in enumerate(self.categories):
                k = int(tag_idx[c][i])
                tag = self.vocabularies[c][k]
                score = float(np.clip(pred.scores[i, j], -1.0, 1.0)) if tag != ABSENT else 0.0
                sig[c] = {"score": score, "tag": tag, "confidence": float(pred.tag_probs[c][i, k])}
            out.append({c: sig[c] for c in CATEGORIES})
        return out

    def tag_indices(self, category: str, probs: np.ndarray) -> np.ndarray:
        threshold = self.thresholds.get(category)
        if threshold is None or probs.shape[1] < 2:
            return probs.argmax(axis=1)
        present = (1.0 - probs[:, 0]) >= threshold
        return np.where(present, probs[:, 1:].argmax(axis=1) + 1, 0)
