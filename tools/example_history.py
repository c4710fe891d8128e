"""A small, realistic registry for the page's tests and for rendering it before any real retrain.

Versions go through the real ``LocalRegistry.register`` / ``promote`` and the real gate
(``news_signals.retrain.gate.decide``); only the model files are stand-ins (the page never loads them).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from news_signals.core.taxonomy import CATEGORIES

# (macro-F1 offset per version, p95 ms): v1 first model, v2 better, v3 worse (kept), v4 better
_VERSIONS = ((0.00, 210.0), (0.06, 190.0), (0.03, 260.0), (0.11, 180.0))
_KEYWORD_MACRO_F1 = 0.412


def _report(offset: float, p95: float, seed: int) -> dict:
    per_cat = {}
    for i, cat in enumerate(CATEGORIES):
        f1 = round(min(0.97, 0.42 + offset + 0.045 * ((i * 7 + seed) % 9) / 2), 4)
        per_cat[cat] = {"precision": round(min(0.99, f1 + 0.04), 4), "recall": round(max(0.0, f1 - 0.035), 4), "f1": f1}
    macro = round(sum(v["f1"] for v in per_cat.values()) / len(per_cat), 4)
    return {"macro_f1": macro, "per_category": per_cat, "latency_ms": {"p50": p95 * 0.6, "p95": p95}, "n": 600}


def _heldout(report: dict, seed: int) -> dict:
    """Held-out human reports as evaluate_stage writes them (4 human-labelled categories, 900 rows)."""
    cats = ("emergencies", "weather_wet", "weather_temp", "transportation")
    cand = {c: {"f1": round(report["per_category"][c]["f1"] - 0.05, 4)} for c in cats}
    kw = {c: {"f1": _KEYWORD_MACRO_F1} for c in cats}
    macro = round(sum(v["f1"] for v in cand.values()) / len(cats), 4)
    delta = macro - _KEYWORD_MACRO_F1
    return {
        "rows": 900,
        "rows_per_category": {c: {"known": 900, "present": 120} for c in cats},
        "gated_categories": list(cats),
        "reports": {"candidate": {"macro_f1": macro, "categories": cand}, "keywords": {"macro_f1": _KEYWORD_MACRO_F1, "categories": kw}},
        "intervals": {"candidate-keywords": {"delta": delta, "low": delta - 0.03, "high": delta + 0.03, "confidence": 0.95, "samples": 1000, "seed": seed}},
    }


def _heldout_metrics(heldout: dict) -> dict:
    """What the register stage stores under metrics["heldout"]."""
    cand = heldout["reports"]["candidate"]
    return {
        "macro_f1": cand["macro_f1"],
        "rows": heldout["rows"],
        "gated_categories": heldout["gated_categories"],
        "per_category": {c: m["f1"] for c, m in cand["categories"].items()},
        "keywords_macro_f1": heldout["reports"]["keywords"]["macro_f1"],
        "intervals": heldout["intervals"],
    }


def build_example_registry(model_name: str | None = None, storage=None) -> list[int]:
    """Register four versions with gate decisions (three promoted, one kept); returns their numbers."""
    from news_signals.core.config import Settings
    from news_signals.core.storage import Storage
    from news_signals.registry import LocalRegistry
    from news_signals.registry.base import ARTIFACT_MANIFEST
    from news_signals.retrain.gate import decide

    registry = LocalRegistry(model_name or Settings().model_name, storage or Storage())
    keyword = {"macro_f1": _KEYWORD_MACRO_F1}
    production: dict | None = None
    prod_ref: str | None = None
    out = []
    for seed, (offset, p95) in enumerate(_VERSIONS):
        report = _report(offset, p95, seed)
        heldout = _heldout(report, seed)
        if production is not None:  # evaluate_stage scores production on the same held-out rows
            prod_held = production["heldout"]
            heldout["reports"]["production"] = {"macro_f1": prod_held["macro_f1"], "categories": {
                c: {"f1": f1} for c, f1 in prod_held["per_category"].items()}}
            d = heldout["reports"]["candidate"]["macro_f1"] - prod_held["macro_f1"]
            heldout["intervals"]["candidate-production"] = {"delta": d, "low": d - 0.02, "high": d + 0.02, "confidence": 0.95}
        report["heldout"] = _heldout_metrics(heldout)
        ref = f"{registry.name}@{len(registry.history()) + 1}"
        decision = decide(report, keyword, production, candidate_ref=ref, production_ref=prod_ref, heldout=heldout)
        with tempfile.TemporaryDirectory() as tmp:
            art = Path(tmp)
            (art / "config.json").write_text(json.dumps({"example": True, "seed": seed}))
            (art / ARTIFACT_MANIFEST).write_text(json.dumps({"base_model": "example", "seed": seed}))
            mv = registry.register(art, report, gate=decision.to_dict(), description=f"example version {seed + 1}")
        if decision.promote:
            registry.promote(mv.version, decision.reason)
            production, prod_ref = report, mv.ref
        out.append(mv.version)
    return out
