"""Hybrid labeller: keyword evidence and embedding similarity combined per category, with confidence.

Keywords are precise but miss paraphrases; embedding similarity recalls paraphrases but fires
on loosely related text. Per category the hybrid mixes both into one evidence value

    evidence = w * keyword_strength + (1 - w) * clip((similarity - lo) / (hi - lo), 0, 1)

and calls the category present when ``evidence >= theta``. ``w``, ``lo``, ``hi`` and ``theta`` are
calibrated per category on the development split only (``scripts/calibrate_hybrid.py`` writes
them into ``hybrid.json``). The confidence says how far the evidence is from ``theta`` (for a
present *and* an absent decision), so the trainer can weight or drop unsure labels.

When the encoder does not understand the text's language (``encoder_languages`` in the config;
the offline MiniLM is English-only), the embedding term is dropped and keywords decide alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, Signal, Signals
from news_signals.labelling.embeddings import (
    CONFIG_FILE,
    EmbeddingLabeller,
    EmbeddingScores,
    read_package_json,
)
from news_signals.labelling.keywords import KeywordAnalysis, KeywordLabeller

DEFAULT_PARAMS = {"w": 0.6, "lo": 0.2, "hi": 0.5, "theta": 0.4}


@dataclass(frozen=True)
class CategoryParams:
    w: float  # weight of the keyword strength (1 - w for the embedding term)
    lo: float  # similarity at which the embedding term starts to count
    hi: float  # similarity at which it counts fully
    theta: float  # evidence threshold for "present"

    @classmethod
    def from_dict(cls, d: Mapping[str, float], where: str) -> CategoryParams:
        try:
            p = cls(float(d["w"]), float(d["lo"]), float(d["hi"]), float(d["theta"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"hybrid config {where}: needs numbers w, lo, hi, theta ({exc})") from exc
        if not (0.0 <= p.w <= 1.0 and p.hi > p.lo and 0.0 < p.theta <= 1.0):
            raise ValueError(f"hybrid config {where}: need 0 <= w <= 1, hi > lo, 0 < theta <= 1; got {p}")
        return p

    def embedding_term(self, similarity: float) -> float:
        return min(1.0, max(0.0, (similarity - self.lo) / (self.hi - self.lo)))

    def evidence(self, kw_strength: float, similarity: float | None) -> float:
        if similarity is None:  # encoder blind to this language: keywords alone
            return kw_strength
        return self.w * kw_strength + (1.0 - self.w) * self.embedding_term(similarity)

    def confidence(self, evidence: float) -> float:
        if evidence >= self.theta:
            return 0.5 + 0.5 * min(1.0, (evidence - self.theta) / max(1e-6, 1.0 - self.theta))
        return 0.5 + 0.5 * min(1.0, (self.theta - evidence) / max(1e-6, self.theta))


def load_params(config: Mapping[str, Any]) -> dict[str, CategoryParams]:
    section = config.get("hybrid", {})
    default = CategoryParams.from_dict({**DEFAULT_PARAMS, **section.get("default", {})}, "hybrid.default")
    out = {}
    for cat in CATEGORIES:
        out[cat] = CategoryParams.from_dict(section[cat], f"hybrid.{cat}") if cat in section else default
    unknown = set(section) - set(CATEGORIES) - {"default"}
    if unknown:
        raise ValueError(f"hybrid config: unknown categories {sorted(unknown)}; use {list(CATEGORIES)}")
    return out


class HybridLabeller:
    """Keywords + embeddings per category; implements ``classifiers.Classifier`` (with confidence)."""

    def __init__(
        self,
        encoder: str | None = None,
        *,
        config_path: str | Path | None = None,
        keywords: KeywordLabeller | None = None,
        embeddings: EmbeddingLabeller | None = None,
        home: str | None = None,
        cache: bool = True,
        encoder_languages: Sequence[str] | None = None,
    ) -> None:
        self.config = read_package_json(CONFIG_FILE, config_path)
        self.params = load_params(self.config)
        self.keywords = keywords or KeywordLabeller()
        self.embeddings = embeddings or EmbeddingLabeller(encoder, config_path=config_path, home=home, cache=cache)
        if encoder_languages is None:
            same = encoder is None or encoder == self.config.get("encoder")
            # the configured encoder's languages; another encoder (multilingual in production) gets both
            encoder_languages = self.config.get("encoder_languages", ["en", "sv"]) if same else ["en", "sv"]
        self.encoder_languages = frozenset(encoder_languages)
        self.version = f"{self.config.get('version', '0')}+kw{self.keywords.version}"
        self.name = f"hybrid@{self.version}"

    def classify_texts(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> list[Signals]:
        texts = list(texts)
        analyses = [self.keywords.analyse(t, all_cues=True) for t in texts]
        # Only texts the encoder can read are embedded (the others would be thrown away in combine).
        readable = [i for i, a in enumerate(analyses) if self.reads(a.lang_lean)]
        scores = self.embeddings.scores(
            [texts[i] for i in readable], None if keys is None else [keys[i] for i in readable]
        )
        row_of = {i: k for k, i in enumerate(readable)}
        return [self.combine(a, scores, row_of.get(i, -1)) for i, a in enumerate(analyses)]

    def reads(self, lang: str) -> bool:
        """Whether the encoder understands ``lang``; unsure counts only for an encoder reading both."""
        return lang in self.encoder_languages or (lang == "" and {"sv", "en"} <= self.encoder_languages)

    def combine(self, analysis: KeywordAnalysis, scores: EmbeddingScores, row: int) -> Signals:
        """The per-category decision for one text from its keyword analysis and embedding scores
        (``row`` in ``scores``; keywords alone when the encoder cannot read the text's language)."""
        use_embedding = row >= 0 and self.reads(analysis.lang_lean)
        out: Signals = {}
        for j, cat in enumerate(CATEGORIES):
            sim = float(scores.category[row, j]) if use_embedding else None
            tag_sims = scores.tags[cat][row] if use_embedding else None
            out[cat] = self.decide(
                cat,
                analysis,
                similarity=sim,
                tag_similarities=None if tag_sims is None else [float(x) for x in tag_sims],
                emb_polarity=float(scores.polarity[row, j]) if use_embedding else 0.0,
            )
        return out

    def decide(
        self,
        category: str,
        analysis: KeywordAnalysis,
        *,
        similarity: float | None,
        tag_similarities: Sequence[float] | None = None,
        emb_polarity: float = 0.0,
    ) -> Signal:
        """One category: evidence -> present?, tag, signed score, confidence (pure; unit-tested)."""
        p = self.params[category]
        if similarity is None:  # the encoder cannot read this language: exactly the keyword labeller's decision
            p = CategoryParams(1.0, p.lo, p.hi, self.keywords.threshold)
        kw_strength = analysis.strength.get(category, 0.0)
        evidence = p.evidence(kw_strength, similarity)
        confidence = round(p.confidence(evidence), 4)
        if evidence < p.theta:
            return {"score": 0.0, "tag": ABSENT, "confidence": confidence}
        tag = self._tag(category, analysis, p, tag_similarities, similarity is not None)
        polarity = analysis.polarity.get(category, 0.0)
        if polarity == 0.0 and kw_strength == 0.0:  # the embedding alone saw it: sign from good/bad prototypes
            polarity = 0.1 * self.embeddings.sign(category, emb_polarity)
        score = self.keywords.score_from(category, evidence, polarity, analysis.cues)
        return {"score": score, "tag": tag, "confidence": confidence}

    @staticmethod
    def _tag(
        category: str,
        analysis: KeywordAnalysis,
        p: CategoryParams,
        tag_similarities: Sequence[float] | None,
        use_embedding: bool,
    ) -> str:
        kw_tags = analysis.evidence.get(category, {})
        best, best_score = ABSENT, -1.0
        for t, tag in enumerate(TAGS[category]):
            s = p.w * kw_tags.get(tag, 0.0)
            if use_embedding and tag_similarities is not None:
                s += (1.0 - p.w) * p.embedding_term(tag_similarities[t])
            if s > best_score:
                best, best_score = tag, s
        return best
