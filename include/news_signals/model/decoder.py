"""Raw head outputs -> ``Signals``: presence thresholds, tag choice, score clipping.

The tag heads are trained with class weights so rare categories fire at all, which pushes
P(present) up; the trainer therefore tunes a P(present) threshold per category on the
validation split and stores it in the manifest (``presence_thresholds``). A category without
one keeps the argmax of its tag head.

**Keyword blend** (``presence_keyword_blend``): for a category where it helped on the human
calibration rows, P(present) is ``(1 - w) * model + w * keyword strength`` before the threshold.
The keyword labeller is already in the serving path (language routing) and labels ~12,000 texts
per CPU-second; its evidence is independent of the encoder's, and on transportation, where the
student learned the least from humans, the blend chosen on calibration rows lifted held-out human
F1 from 0.482 to 0.537 (docs/MODEL.md).
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
        keyword_blend: Mapping[str, float] | None = None,
    ) -> None:
        self.categories = tuple(categories)
        self.vocabularies = {c: tuple(vocabularies[c]) for c in self.categories}
        self.thresholds = {c: float(t) for c, t in (thresholds or {}).items() if c in self.categories}
        self.keyword_blend = {
            c: float(w) for c, w in (keyword_blend or {}).items() if c in self.thresholds and float(w) > 0
        }
        bad = {c: w for c, w in self.keyword_blend.items() if not 0.0 < w <= 1.0}
        if bad:
            raise ValueError(f"presence_keyword_blend weights must be in (0, 1], got {bad}")

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> Decoder:
        return cls(
            manifest["categories"], manifest["vocabularies"], manifest.get("presence_thresholds"),
            manifest.get("presence_keyword_blend"),
        )

    def presence(self, pred: Prediction) -> np.ndarray:
        """P(present) per category as the thresholds see it: the model's, blended where configured."""
        out = pred.presence().astype(np.float64)
        if self.keyword_blend:
            kw = self._keyword_strength(pred)
            for c, w in self.keyword_blend.items():
                j = self.categories.index(c)
                out[:, j] = (1.0 - w) * out[:, j] + w * kw[:, j]
        return out

    def attach_keywords(self, pred: Prediction, texts: Sequence[str], labeller: Any = None) -> Prediction:
        """``pred`` with the keyword strengths of ``texts`` when this decoder blends them (else as is):
        every path that decodes raw predictions (serving, the bf16 and int8 checks) decides alike."""
        if self.keyword_blend and pred.keyword_strength is None:
            pred.keyword_strength = keyword_strength(texts, self.categories, labeller)
        return pred

    def _keyword_strength(self, pred: Prediction) -> np.ndarray:
        if pred.keyword_strength is None:
            raise ValueError(
                "this model blends keyword evidence into P(present) (presence_keyword_blend); "
                "predict through ModelClassifier.predict, which attaches Prediction.keyword_strength"
            )
        return pred.keyword_strength

    def to_signals(self, pred: Prediction) -> list[Signals]:
        blended = self.presence(pred) if self.keyword_blend else None
        tag_idx = {
            c: self.tag_indices(c, pred.tag_probs[c], None if blended is None else blended[:, j])
            for j, c in enumerate(self.categories)
        }
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

    def tag_indices(self, category: str, probs: np.ndarray, p_present: np.ndarray | None = None) -> np.ndarray:
        """Per row the tag index: absent (0) below the threshold, else the most likely non-absent tag.
        ``p_present`` overrides the model's own 1 - P(absent) (the keyword blend)."""
        threshold = self.thresholds.get(category)
        if threshold is None or probs.shape[1] < 2:
            return probs.argmax(axis=1)
        present = (1.0 - probs[:, 0] if p_present is None else p_present) >= threshold
        return np.where(present, probs[:, 1:].argmax(axis=1) + 1, 0)


def keyword_strength(texts: Sequence[str], categories: Sequence[str], labeller: Any = None) -> np.ndarray:
    """The keyword labeller's evidence strength per text and category, [n, len(categories)] in [0, 1]."""
    if labeller is None:
        from news_signals.labelling.keywords import KeywordLabeller

        labeller = KeywordLabeller()
    analyses = [labeller.analyse(t if isinstance(t, str) else "") for t in texts]
    out = np.array([[a.strength.get(c, 0.0) for c in categories] for a in analyses], dtype=np.float64)
    return np.clip(out.reshape(len(texts), len(categories)), 0.0, 1.0)
