#!/usr/bin/env python
"""Calibrate the embedding and hybrid labellers on the development data only; write hybrid.json.

Development data: the disaster messages' ``split == "train"`` news rows on the training side of the
human-label split (``labels.split``; the held-out side is what the gate scores) (labels for emergencies,
weather_wet, weather_temp, transportation) and the hand-written sv+en set shipped in
``labelling/dev_handmade.json`` (all nine categories). Nothing else is read; the held-out splits
never are.

Per category with disaster labels: a grid search over the hybrid's (w, lo, hi, theta) maximising
the mean of the F1 on the disaster rows and on the English hand-written set (so the disaster set's
narrow label definitions — emergencies = fire or earthquake only — do not tune away accidents and
explosions), and over the embedding labeller's threshold maximising the disaster F1. The other five categories have
only the small hand-written set, too small to fit four numbers: they take the median w, and lo / hi /
theta / threshold chosen on the English part of the hand-written set with a coarse grid (ties go to
the values closest to the disaster categories' medians). Prints every number and stores them, with
the grid and the data used, in the config's ``calibration`` block.

    python scripts/calibrate_hybrid.py [--limit N] [--encoder minilm] [--config PATH] [--dry-run]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

import numpy as np  # noqa: E402
from news_signals.core.taxonomy import CATEGORIES  # noqa: E402
from news_signals.labelling.evaluation import (  # noqa: E402
    DISASTER_MAPPING,
    DevSet,
    disaster_dev_set,
    handmade_dev_set,
)

DEFAULT_CONFIG = ROOT / "include" / "news_signals" / "labelling" / "hybrid.json"
W_GRID = [round(x, 2) for x in np.arange(0.2, 1.0001, 0.1)]
LO_GRID = [round(x, 2) for x in np.arange(0.05, 0.50001, 0.05)]
SPAN_GRID = [0.1, 0.2, 0.3, 0.4]
THETA_GRID = [round(x, 2) for x in np.arange(0.15, 0.80001, 0.05)]
THR_GRID = [round(x, 3) for x in np.arange(0.10, 0.80001, 0.01)]


def f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    denom = float(pred.sum() + gold.sum())
    return 2 * tp / denom if denom else 0.0


def best_threshold(sim: np.ndarray, gold: np.ndarray) -> tuple[float, float]:
    scores = [(f1(sim >= t, gold), -abs(t - 0.35), t) for t in THR_GRID]
    best = max(scores)
    return best[2], best[0]


def hybrid_grid(kw: np.ndarray, sim: np.ndarray, gold: np.ndarray, w_grid=W_GRID, prefer=None, extra=None):
    """Best (F1, params) over the grid; ties broken toward ``prefer`` (or larger w: trust keywords).

    ``extra`` = (kw, sim, gold) of a second development set: the objective is then the mean of both
    F1s, so a category is not tuned to one data set's narrow label definition alone.
    """
    best: tuple | None = None
    for lo in LO_GRID:
        for span in SPAN_GRID:
            emb = np.clip((sim - lo) / span, 0.0, 1.0)
            emb2 = None if extra is None else np.clip((extra[1] - lo) / span, 0.0, 1.0)
            for w in w_grid:
                ev = w * kw + (1 - w) * emb
                ev2 = None if emb2 is None else w * extra[0] + (1 - w) * emb2
                for theta in THETA_GRID:
                    score = f1(ev >= theta, gold)
                    if ev2 is not None:
                        score = 0.5 * score + 0.5 * f1(ev2 >= theta, extra[2])
                    params = {"w": w, "lo": lo, "hi": round(lo + span, 2), "theta": theta}
                    tie = -sum(abs(params[k] - prefer[k]) for k in params) if prefer else w
                    key = (round(score, 4), tie)
                    if best is None or key > best[0]:
                        best = (key, score, params)
    assert best is not None
    return best[1], best[2]


def features(texts: list[str], encoder: str | None):
    from news_signals.labelling.embeddings import EmbeddingLabeller
    from news_signals.labelling.keywords import KeywordLabeller

    kwl = KeywordLabeller()
    emb = EmbeddingLabeller(encoder)
    analyses = [kwl.analyse(t) for t in texts]
    kw = np.array([[a.strength.get(c, 0.0) for c in CATEGORIES] for a in analyses])
    start = time.perf_counter()
    scores = emb.scores(texts)
    print(f"  embedded {len(texts)} texts in {time.perf_counter() - start:.1f}s "
          f"(encoder calls {emb.encoder.calls}, texts encoded {emb.encoder.texts_encoded})", file=sys.stderr)
    return kw, scores.category, kwl.threshold


def training_side(dev: DevSet) -> DevSet:
    """The development rows on the training side of ``labels.split``: the held-out side scores the
    gate, the hybrid and every model, so a labeller tuned on it would be scored in-sample."""
    from news_signals.labels.split import is_heldout
    from news_signals.labels.store import text_article_id

    keep = [i for i, t in enumerate(dev.texts) if not is_heldout(text_article_id(t))]
    return DevSet([dev.texts[i] for i in keep], {c: [v[i] for i in keep] for c, v in dev.truth.items()},
                  dev.source + " training side")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="only the first N disaster development rows")
    parser.add_argument("--encoder", help="encoder name/path (default: the config's)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="hybrid config to update")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    config_path = Path(args.config)
    config = json.loads(config_path.read_text(encoding="utf-8"))
    encoder = args.encoder or config.get("encoder", "minilm")

    dev = training_side(disaster_dev_set(limit=args.limit))
    print(f"disaster development rows (training side of the human-label split): {len(dev.texts)}", file=sys.stderr)
    kw, sim, kw_thr = features(dev.texts, encoder)
    hand = handmade_dev_set("en")  # the encoder-language part (MiniLM is English-only)
    hkw, hsim, _ = features(hand.texts, encoder)

    hybrid: dict[str, dict] = {}
    thresholds: dict[str, float] = {}
    report: dict[str, dict] = {}
    for cat in DISASTER_MAPPING:
        j = CATEGORIES.index(cat)
        gold = np.array(dev.truth[cat])
        f_kw = f1(kw[:, j] >= kw_thr, gold)
        thr, f_emb = best_threshold(sim[:, j], gold)
        hgold = np.array(hand.truth[cat])
        _, params = hybrid_grid(kw[:, j], sim[:, j], gold, extra=(hkw[:, j], hsim[:, j], hgold))
        ev = params["w"] * kw[:, j] + (1 - params["w"]) * np.clip((sim[:, j] - params["lo"]) / (params["hi"] - params["lo"]), 0, 1)
        hev = params["w"] * hkw[:, j] + (1 - params["w"]) * np.clip(
            (hsim[:, j] - params["lo"]) / (params["hi"] - params["lo"]), 0, 1
        )
        f_hyb = f1(ev >= params["theta"], gold)
        hybrid[cat], thresholds[cat] = params, thr
        report[cat] = {"data": "disaster train + hand-written en", "f1_keywords": f_kw, "f1_embeddings": f_emb,
                       "f1_hybrid": f_hyb, "f1_hybrid_handmade": f1(hev >= params["theta"], hgold),
                       "positives": int(gold.sum())}
    med = {k: statistics.median(p[k] for p in hybrid.values()) for k in ("w", "lo", "hi", "theta")}
    med_thr = statistics.median(thresholds.values())
    for cat in CATEGORIES:
        if cat in DISASTER_MAPPING:
            continue
        j = CATEGORIES.index(cat)
        gold = np.array(hand.truth[cat])
        f_hyb, params = hybrid_grid(hkw[:, j], hsim[:, j], gold, w_grid=[med["w"]], prefer=med)
        scores = [(f1(hsim[:, j] >= t, gold), -abs(t - med_thr), t) for t in THR_GRID]
        f_emb, _, thr = max(scores)
        hybrid[cat], thresholds[cat] = params, thr
        report[cat] = {"data": "hand-written en", "f1_keywords": f1(hkw[:, j] >= kw_thr, gold), "f1_embeddings": f_emb,
                       "f1_hybrid": f_hyb, "positives": int(gold.sum())}

    print("| category | data | positives | keywords F1 | embeddings F1 | hybrid F1 | w | lo | hi | theta | emb thr |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for cat in CATEGORIES:
        r, p = report[cat], hybrid[cat]
        print(f"| {cat} | {r['data']} | {r['positives']} | {r['f1_keywords']:.3f} | {r['f1_embeddings']:.3f} | "
              f"{r['f1_hybrid']:.3f} | {p['w']} | {p['lo']} | {p['hi']} | {p['theta']} | {thresholds[cat]} |")

    old_version = int(str(config.get("version", "0")).split(".")[0] or 0)
    config.update({
        "version": str(old_version + 1),
        "encoder": encoder,
        "embedding": {**config.get("embedding", {}), "thresholds": thresholds},
        "hybrid": {"default": med, **hybrid},
        "calibration": {
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "data": [dev.source + (f" (first {args.limit})" if args.limit else ""), hand.source],
            "n_disaster_rows": len(dev.texts),
            "grid": {"w": W_GRID, "lo": LO_GRID, "span": SPAN_GRID, "theta": THETA_GRID},
            "in_sample_f1": report,
            "note": "F1 values are in-sample on the development data they were tuned on (the training side of the "
                    "human-label split); its held-out side and the held-out splits are never read.",
        },
    })
    if args.dry_run:
        print(json.dumps(config, indent=2))
        return 0
    from news_signals.core.storage import Storage

    storage = Storage(str(config_path.resolve().parent))
    storage.write_bytes(storage.path(config_path.name), (json.dumps(config, indent=2) + "\n").encode())
    print(f"\nwrote {config_path} (version {config['version']})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
