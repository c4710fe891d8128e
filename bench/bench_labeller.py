#!/usr/bin/env python
"""Labeller throughput: keywords on >= 10,000 real texts; hybrid cold (encoder runs) vs cached.

Texts come from the project's real-text corpus (news_signals.corpus.load_texts), repeated when
the corpus is smaller than ``--keyword-n``. The hybrid is measured in a throw-away
NEWS_SIGNALS_HOME: prototypes are embedded first (not counted), then ``--hybrid-n`` unseen texts
cold, then the same texts again through a fresh labeller that reads the on-disk cache.

    python bench/bench_labeller.py [--keyword-n 10000] [--hybrid-n 256] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))


def real_texts(n: int) -> tuple[list[str], int]:
    from news_signals.corpus import load_texts

    unique = [r.text for r in load_texts()]
    if not unique:
        raise SystemExit("the corpus is empty; see docs/CORPUS.md")
    texts = (unique * (n // len(unique) + 1))[:n]
    return texts, len(unique)


def bench_keywords(texts: list[str]) -> tuple[float, float]:
    """(texts per wall second, texts per CPU second): on a shared machine the CPU figure is the fair one."""
    from news_signals.labelling.keywords import KeywordLabeller

    kw = KeywordLabeller()  # a fresh instance: the token memo starts empty
    wall, cpu = time.perf_counter(), time.process_time()
    kw.classify_texts(texts)
    return len(texts) / (time.perf_counter() - wall), len(texts) / (time.process_time() - cpu)


def bench_hybrid(texts: list[str]) -> tuple[float, float]:
    from news_signals.labelling.hybrid import HybridLabeller

    with tempfile.TemporaryDirectory(prefix="bench-hybrid-") as home:
        warm = HybridLabeller(home=home)
        warm.embeddings._prototype_vectors()  # prototypes are a one-off per encoder: not counted
        start = time.perf_counter()
        warm.classify_texts(texts)
        cold = len(texts) / (time.perf_counter() - start)
        encoded = warm.embeddings.encoder.texts_encoded
        fresh = HybridLabeller(home=home)  # a new process would do the same: read the disk cache
        start = time.perf_counter()
        fresh.classify_texts(texts)
        cached = len(texts) / (time.perf_counter() - start)
        assert fresh.embeddings.encoder.texts_encoded == 0, "cached run must not call the encoder"
        print(f"  (cold run encoded {encoded} texts incl. prototypes; cached run encoded 0)")
    return cold, cached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keyword-n", type=int, default=10_000)
    parser.add_argument("--hybrid-n", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the encoder")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    texts, unique = real_texts(max(args.keyword_n, args.hybrid_n))
    kw_rate, kw_cpu = bench_keywords(texts[: args.keyword_n])
    print(
        f"keywords: {kw_rate:,.0f} texts/s wall, {kw_cpu:,.0f} texts per CPU-second (one core) "
        f"on {args.keyword_n:,} real texts ({unique:,} unique)"
    )
    seen: set[str] = set()
    hybrid_texts = [t for t in texts if not (t in seen or seen.add(t))][: args.hybrid_n]
    cold, cached = bench_hybrid(hybrid_texts)
    print(f"hybrid cold:   {cold:,.1f} texts/s on {len(hybrid_texts)} texts ({args.threads} torch threads)")
    print(f"hybrid cached: {cached:,.1f} texts/s ({cached / cold:.1f}x cold)")
    print(f"keywords vs hybrid cached: {kw_rate / cached:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
