"""Does an int8 model emit the same signals as its fp32 original, within a stated tolerance?

Dynamic int8 (ONNX Runtime, per-channel weights, activations quantized per call) is faster
than fp32 on CPUs (docs/MODEL.md, "Measured on an idle machine"), but it moves single
probabilities: a headline on a category's decision boundary can change its P(present) by far
more than any useful tolerance (docs/MODEL.md, "Backends and the default"). A tolerance on raw
probabilities would therefore reject every useful int8 model, so ours is stated on what the
product emits, the ``classify`` contract's ``tag`` and ``score`` per (article, category):

* **tags**: identical on at least 99.5% of all (article, category) cells, and on at least
  97% of the cells where either model finds the category present (the cells that matter);
* **scores**: where the two tags agree, ``|score difference|`` at most 0.1 in every cell and
  at most 0.01 on average over the present cells.

* **held-out human labels** (when the registration has them): the int8 model's macro-F1 on
  them at most 0.01 below fp32's.

The check runs once, when the model is registered (``model.export.prepare_for_serving``), on up
to 1,000 headline-length texts from the packaged replay corpus in the model's languages plus the
held-out human-labelled texts; its report is stored, hashed, in the artifact (``int8_check.json``)
and an int8 model that misses it is not stored: serving keeps fp32 and says why. See
bench/bench_inference.py for the speed side.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals

if TYPE_CHECKING:
    from news_signals.model.artifact import LoadedArtifact
    from news_signals.model.predictor import Engine

log = logging.getLogger(__name__)

CHECK_VERSION = 3  # bump when the texts or the measures change: artifacts are checked again at registration


@dataclass(frozen=True)
class Int8Tolerance:
    min_tag_agreement: float = 0.995  # all (article, category) cells
    min_present_tag_agreement: float = 0.97  # cells where either model finds the category present
    max_score_diff: float = 0.1  # any cell where the tags agree
    max_score_mae: float = 0.01  # mean over the present cells where the tags agree
    max_human_f1_drop: float = 0.01  # held-out human macro-F1, int8 below fp32 (when held-out labels exist)

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
    human = report.get("human_macro_f1") or {}
    reduced = human.get("int8", human.get("bf16"))  # the int8 or the bf16 model's
    if human.get("fp32") is not None and reduced is not None:
        drop = float(human["fp32"]) - float(reduced)
        if drop > tolerance.max_human_f1_drop:
            out.append(f"held-out human macro-F1 drops by {drop:.3f} ({human['fp32']:.3f} -> {reduced:.3f}, "
                       f"> {tolerance.max_human_f1_drop})")
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


def run_check(
    art: LoadedArtifact,
    fp32: Engine,
    texts: Sequence[str],
    human: tuple[list[int], list[int], Any] | None,
    quantized: Callable[[str], tuple[Engine, dict[str, Any]]],
    recipes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Each int8 recipe (fastest first, ``quantized(recipe)`` builds it) against ``fp32`` on ``texts``
    through the real predictor and decoder, in serving batches; stops at the first that passes.

    ``human``: (positions of the held-out texts in ``texts``, their rows in the held-out set, the
    set) for the human macro-F1 rule. Returns the report stored as ``int8_check.json``.
    """
    from news_signals.model.decoder import Decoder
    from news_signals.model.export import INT8_RECIPES
    from news_signals.model.predictor import Predictor

    decoder = Decoder.from_manifest(art.manifest)
    kw = {"max_length": art.max_length, "categories": art.manifest["categories"],
          "vocabularies": art.manifest["vocabularies"]}
    report: dict[str, Any] = {
        "check_version": CHECK_VERSION,
        "tolerance": TOLERANCE.as_dict(),
        "languages": sorted(art.manifest.get("languages") or []),
        "texts": {"total": len(texts), "heldout": len(human[0]) if human else 0},
        "recipes": {},
        "served": None,
    }
    if not texts:
        report["reason"] = "no texts to check int8 on"
        return report
    reference = decoder.to_signals(decoder.attach_keywords(Predictor(fp32, art.tokenizer, **kw).predict(texts), texts))
    human_fp32 = human_f1(reference, human)
    for recipe in recipes or INT8_RECIPES:
        try:
            engine, info = quantized(recipe)
            got = decoder.to_signals(decoder.attach_keywords(Predictor(engine, art.tokenizer, **kw).predict(texts), texts))
        except Exception as exc:  # noqa: BLE001 - an unchecked int8 model is never stored
            report["recipes"][recipe] = {"failures": [f"the int8 check could not run ({type(exc).__name__}: {exc})"]}
            break  # the next recipe's check would fail the same way
        result = compare_signals(reference, got)
        if human:
            result["heldout"] = compare_signals([reference[i] for i in human[0]], [got[i] for i in human[0]])
            result["human_macro_f1"] = {"fp32": human_fp32, "int8": human_f1(got, human)}
        missed = failures(result)
        report["recipes"][recipe] = {"report": rounded(result), "failures": missed, "quantization": info}
        log.info("int8 check of %s (%s): %s (%s)", art.path.name, recipe, summary(result), "; ".join(missed) or "within tolerance")
        if not missed:
            report["served"] = recipe
            break
    if report["served"] is None:
        report["reason"] = " | ".join(f"{r}: {'; '.join(v['failures'])}" for r, v in report["recipes"].items())
    return report


def human_f1(signals: Sequence[Signals], human: tuple[list[int], list[int], Any] | None) -> float | None:
    """Macro-F1 over the gated categories of the held-out rows the model serves (None: none gated)."""
    if not human:
        return None
    from news_signals.retrain.heldout import HeldoutSet, presence, score

    positions, rows, held = human
    subset = HeldoutSet([held.article_ids[i] for i in rows], [held.texts[i] for i in rows], held.truth[rows])
    gated, _ = subset.gated_categories()
    if not gated:
        return None
    return round(float(score(presence([signals[i] for i in positions]), subset, gated)["macro_f1"]), 6)


def rounded(report: dict[str, Any]) -> dict[str, Any]:
    """Floats to 6 digits: the stored report (hashed in the manifest) does not move with float noise."""
    return {k: (round(v, 6) if isinstance(v, float) else rounded(v) if isinstance(v, dict) else v)
            for k, v in report.items()}
