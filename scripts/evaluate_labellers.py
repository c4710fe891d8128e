#!/usr/bin/env python
"""Compare the labellers side by side on the development split (disaster messages, train/news).

Prints a markdown table (per category precision / recall / F1 and macro-F1; the README includes
it), then latency and cost per labeller, and writes the same numbers as JSON. Only
``split == "train"`` rows are read. ``llm`` (the OpenAI-compatible endpoint of docs/LLM.md) is
scored too when an endpoint is configured (the ``news_signals_llm`` connection or
``NEWS_SIGNALS_LLM_URL``); its answers are cached, so a second run costs nothing and its
latency is then the cache's: the first run's request latency is in the JSON (``llm_summary``).

    python scripts/evaluate_labellers.py [--labellers keywords,embeddings,hybrid,llm] [--model-dir DIR]
        [--output reports/labellers.json] [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from news_signals.core.storage import Storage  # noqa: E402
from news_signals.labelling.evaluation import (  # noqa: E402
    disaster_dev_set,
    handmade_dev_set,
    markdown_table,
    score_predictions,
    to_json,
)

LABELLERS = ("keywords", "embeddings", "hybrid", "llm")


def llm_configured() -> bool:
    from news_signals.labelling.llm import LLMConfig, LLMNotConfigured

    try:
        LLMConfig.from_environment()
    except LLMNotConfigured:
        return False
    return True


def default_labellers() -> str:
    return ",".join(n for n in LABELLERS if n != "llm" or llm_configured())


def build(name: str):
    if name == "keywords":
        from news_signals.labelling.keywords import KeywordLabeller

        return KeywordLabeller()
    if name == "embeddings":
        from news_signals.labelling.embeddings import EmbeddingLabeller

        return EmbeddingLabeller()
    if name == "hybrid":
        from news_signals.labelling.hybrid import HybridLabeller

        return HybridLabeller()
    if name == "llm":
        from news_signals.labelling.llm import LLMConfig, LLMLabeller

        return LLMLabeller(LLMConfig.from_environment())
    raise ValueError(f"unknown labeller {name!r}; choose from {LABELLERS}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--labellers", default=None, help=f"comma list of {LABELLERS} (default: all; llm when an endpoint is configured)"
    )
    parser.add_argument("--model-dir", help="also score a saved model artifact (news_signals.labelling.classifiers.model_classifier)")
    parser.add_argument("--output", default=str(ROOT / "reports" / "labellers.json"), help="JSON results file")
    parser.add_argument("--limit", type=int, help="only the first N development texts (quick checks)")
    parser.add_argument("--no-handmade", action="store_true", help="skip the hand-written sv/en set")
    args = parser.parse_args(argv)

    dev = disaster_dev_set(limit=args.limit)
    print(f"development set: {len(dev.texts)} texts ({dev.source})", file=sys.stderr)
    results: dict[str, dict] = {}
    built: dict[str, object] = {}
    names = args.labellers or default_labellers()
    classifiers = [(n.strip(), None) for n in names.split(",") if n.strip()]
    if args.model_dir:
        classifiers.append(("model", args.model_dir))
    for name, model_dir in classifiers:
        if model_dir is not None:
            from news_signals.labelling.classifiers import model_classifier

            clf = model_classifier(model_dir)
        else:
            clf = build(name)
        start = time.perf_counter()
        signals = clf.classify_texts(dev.texts)
        seconds = time.perf_counter() - start
        res = score_predictions(signals, dev.truth)
        res["seconds"] = round(seconds, 2)
        res["ms_per_text"] = round(seconds / max(1, len(dev.texts)) * 1000, 3)
        if hasattr(clf, "summary"):  # the LLM: requests, tokens, cost, request latency
            summary = clf.summary()
            res["llm_summary"] = summary
            res["cost_per_1000_articles"] = summary["cost_per_1000_articles"]
        res["classifier"] = getattr(clf, "label", None) or clf.name
        results[name if model_dir is None else clf.name] = res
        built[name if model_dir is None else clf.name] = clf
        print(f"{name}: macro-F1 {res['macro_f1']:.3f} in {seconds:.1f}s", file=sys.stderr)

    print(markdown_table(results))
    print("\n| labeller | ms per text | cost per 1,000 articles |\n|---|---|---|")
    for name, res in results.items():
        cost = res.get("cost_per_1000_articles")
        print(f"| {name} | {res['ms_per_text']:.2f} | {'-' if cost is None else f'{cost:.4f}'} |")
    out = {"dev_set": dev.source, "n_texts": len(dev.texts), "results": results, "handmade": {}}
    if not args.no_handmade:
        for lang in ("en", "sv"):
            hand = handmade_dev_set(lang)
            rows = {}
            for name, clf in built.items():
                rows[name] = score_predictions(clf.classify_texts(hand.texts), hand.truth)
            out["handmade"][lang] = {"n_texts": len(hand.texts), "results": rows}
            print(f"\nHand-written development headlines, {lang} ({len(hand.texts)} texts, all categories; "
                  "in-sample: also used while writing the lexicon and for calibration):\n")
            print(markdown_table(rows, f1_only=True))
    storage = Storage(str(Path(args.output).resolve().parent))
    storage.write_bytes(storage.path(Path(args.output).name), to_json(out).encode())
    print(f"\nwrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
