"""Label a JSON Lines file of articles with a bootstrap labeller (keywords, hybrid or an LLM).

Same input and output rules as ``classify``: ``title`` required, ``description`` optional, other
keys pass through; the rows come back in order with ``signals`` for all nine categories and
``labeller`` naming what produced them. With ``--labeller llm`` a row whose LLM answer failed
(invalid after every re-ask, or the request failed after every retry) is labelled by keywords:
its ``labeller`` is ``keywords`` and ``labeller_error`` says why. The LLM run's counters
(requests, cache hits, failures, tokens, cost) are printed as one JSON line on stderr.
An unreachable endpoint exits 3 and writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys

LABELLERS = ("keywords", "hybrid", "llm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labeller", choices=LABELLERS, default="keywords")
    parser.add_argument("--input", required=True, help="JSON Lines, one article per line")
    parser.add_argument("--output", required=True, help="where to write the labelled JSON Lines")
    parser.add_argument("--workers", type=int, help="llm: concurrent requests (default NEWS_SIGNALS_LLM_WORKERS)")
    parser.add_argument("--rps", type=float, help="llm: requests per second (default NEWS_SIGNALS_LLM_RPS)")
    parser.add_argument(
        "--retry-failed", action="store_true", help="llm: ask again for texts whose cached answer was invalid"
    )


def run(args: argparse.Namespace) -> int:
    from news_signals.core.jsonl import read_articles, write_jsonl_atomic
    from news_signals.core.taxonomy import CATEGORIES
    from news_signals.core.text import article_text

    articles = read_articles(args.input)
    texts = [article_text(a["title"], a.get("description")) for a in articles]
    errors: list[str | None] = [None] * len(texts)
    if args.labeller == "llm":
        from news_signals.labelling.llm import LLMConfig, LLMLabeller, LLMUnavailable

        overrides = {k: v for k, v in (("workers", args.workers), ("rps", args.rps)) if v is not None}
        labeller = LLMLabeller(LLMConfig.from_environment(**overrides), retry_failed=args.retry_failed)
        try:
            rows = labeller.label_with_fallback(texts)
        except LLMUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 3
        finally:
            print(json.dumps({"llm": labeller.summary()}, sort_keys=True), file=sys.stderr)
        signals = [r[0] for r in rows]
        names = [r[1] for r in rows]
        errors = [r[2] for r in rows]
    else:
        if args.labeller == "hybrid":
            from news_signals.labelling.hybrid import HybridLabeller

            clf = HybridLabeller()
        else:
            from news_signals.labelling.keywords import KeywordLabeller

            clf = KeywordLabeller()
        signals = clf.classify_texts(texts) if texts else []
        names = [clf.name] * len(signals)
    out = []
    for article, sig, name, err in zip(articles, signals, names, errors, strict=True):
        row = {
            **article,
            "signals": {c: {"score": float(sig[c]["score"]), "tag": sig[c]["tag"]} for c in CATEGORIES},
            "labeller": name,
        }
        if err is not None:
            row["labeller_error"] = f"llm failed: {err}"
        out.append(row)
    write_jsonl_atomic(args.output, out)
    failed = sum(e is not None for e in errors)
    note = f" ({failed} labelled by keywords after the LLM failed; see labeller_error)" if failed else ""
    print(f"wrote {len(out)} articles to {args.output}{note}", file=sys.stderr)
    return 0
