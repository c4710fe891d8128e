"""Does an int8 model emit the same signals as its fp32 original, within a stated tolerance?

Dynamic int8 (ONNX Runtime, per-channel weights, activations quantized per call) is about
1.3-1.6x faster than fp32 on a CPU without VNNI, but it moves single probabilities: for a
headline on a category's decision boundary P(present) can move by 0.1-0.3. A tolerance on raw
probabilities would therefore reject every useful int8 model, so ours is stated on what the
product emits, the ``classify`` contract's ``tag`` and ``score`` per (article, category):

* **tags**: identical on at least 99.5% of all (article, category) cells, and on at least
  97% of the cells where either model finds the category present (the cells that matter);
* **scores**: where the two tags agree, ``|score difference|`` at most 0.1 in every cell and
  at most 0.01 on average over the present cells.

The check runs once per artifact (on up to 1,000 headline-length texts from the packaged
replay corpus in the model's languages) and an int8 export that misses it is not used: the
classifier keeps fp32 and says why. See bench/bench_inference.py for the speed side.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals

CHECK_VERSION = 2  # bump when the texts or the measures change: cached verdicts are redone


@dataclass(frozen=True)
class Int8Tolerance:
    min_tag_agreement: float = 0.995  # all (article, category) cells
    min_present_tag_agreement: float = 0.97  # cells where either model finds the category present
    max_score_diff: float = 0.1  # any cell where the tags agree
    max_score_mae: float = 0.01  # mean over the present cells where the tags agree

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


TOLERANCE = Int8Tolerance()


def compare_signals(reference: Sequence[Signals], other: Sequence[Signals]) -> dict[str, Any]:
    """Agreement of ``other`` with ``reference`` (same texts, same order) on tags and scores."""
    if len(reference) != len(other):
        raise ValueError(f"compare_signals needs outputs for the same texts: {len(reference)} vs {len(other)}")
    cells = agree = present = present_agree = 0
    max_diff, diffs = 0.0, []
    for ref, oth in zip(reference, other, strict=True):
        for c in CATEGORIES:
            a, b = ref[c], oth[c]
            same = a["tag"] == b["tag"]
            cells += 1
            agree += same
            if a["tag"] != ABSENT or b["tag"] != ABSENT:
                present += 1
                present_agree += same
                if same:
                    diffs.append(abs(float(a["score"]) - float(b["score"])))
            if same:
                max_diff = max(max_diff, abs(float(a["score"]) - float(b["score"])))
    return {
        "texts": len(reference),
        "cells": cells,
        "tag_agreement": agree / cells if cells else 1.0,
        "present_cells": present,
        "present_tag_agreement": present_agree / present if present else 1.0,
        "max_score_diff": max_diff,
        "score_mae": sum(diffs) / len(diffs) if diffs else 0.0,
    }


def failures(report: dict[str, Any], tolerance: Int8Tolerance | None = None) -> list[str]:
    """What ``report`` misses of ``tolerance`` (default ``TOLERANCE``), in words; empty when within."""
    tolerance = tolerance or TOLERANCE
    out = []
    if report["tag_agreement"] < tolerance.min_tag_agreement:
        out.append(f"tags agree on {report['tag_agreement']:.2%} of cells (< {tolerance.min_tag_agreement:.1%})")
    if report["present_tag_agreement"] < tolerance.min_present_tag_agreement:
        out.append(f"tags agree on {report['present_tag_agreement']:.2%} of present cells "
                   f"(< {tolerance.min_present_tag_agreement:.0%})")
    if report["max_score_diff"] > tolerance.max_score_diff:
        out.append(f"a score moves by {report['max_score_diff']:.3f} (> {tolerance.max_score_diff})")
    if report["score_mae"] > tolerance.max_score_mae:
        out.append(f"scores move by {report['score_mae']:.4f} on average (> {tolerance.max_score_mae})")
    return out


def summary(report: dict[str, Any]) -> str:
    return (f"tags agree {report['tag_agreement']:.2%} (present cells {report['present_tag_agreement']:.2%}), "
            f"max |score diff| {report['max_score_diff']:.3f}, score MAE {report['score_mae']:.4f}, "
            f"{report['texts']} texts")


def verification_texts(languages: Sequence[str] = (), n: int = 1000, max_chars: int = 90) -> list[str]:
    """Up to ``n`` headline-length texts of the packaged replay corpus, spread over it, in ``languages``."""
    from news_signals.corpus import load_corpus

    texts = [r.text for r in load_corpus() if 0 < len(r.text) <= max_chars]
    if languages:  # the texts the model serves: unsure or in its languages (the rest go to keywords)
        from news_signals.labelling.keywords import KeywordLabeller, served_language

        lexicon = KeywordLabeller()
        texts = texts[:: max(1, len(texts) // (3 * n))]  # analyse a spread, not the whole corpus
        texts = [t for t in texts if served_language(lexicon.analyse(t).lang_lean, languages)]
    return texts[:: max(1, len(texts) // n)][:n]
