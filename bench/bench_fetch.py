"""GDELT fetcher against the local replay server: requests per day, articles per day, and what a
day costs at GDELT's pacing (one request every 5 s) versus unpaced, side by side.

    .venv/bin/python bench/bench_fetch.py [--days 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT))  # tools/


def main() -> int:
    from news_signals.core.config import Settings
    from news_signals.corpus import DEFAULT_START
    from news_signals.daily.gdelt import GdeltClient, fetch_day

    from tools.gdelt_replay import ReplayServer

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=3)
    args = parser.parse_args()

    t0 = time.perf_counter()
    server = ReplayServer().start()
    print(f"replay server ready in {time.perf_counter() - t0:.1f} s")
    settings = replace(Settings(), gdelt_url=server.url, gdelt_min_interval_s=0.0)
    rows = []
    try:
        for k in range(args.days):
            day = DEFAULT_START + timedelta(days=3 + k)
            client = GdeltClient(server.url, min_interval_s=0.0)
            t = time.perf_counter()
            df = fetch_day(day, settings, client=client)
            elapsed = time.perf_counter() - t
            stats = df.attrs["fetch_stats"]
            rows.append((day, len(df), stats["requests"], stats["full_windows"], stats["raw_rows"], elapsed))
    finally:
        server.stop()
    print(
        f"{'day':<12}{'articles':>9}{'requests':>9}{'full':>6}{'raw rows':>9}{'unpaced s':>11}{'@5 s pacing':>13}{'ratio':>8}"
    )
    for day, n, req, full, raw, elapsed in rows:
        paced = (req - 1) * 5.0 + elapsed
        print(
            f"{day!s:<12}{n:>9}{req:>9}{full:>6}{raw:>9}{elapsed:>11.2f}{paced:>12.0f}s{paced / elapsed:>7.0f}x"
        )
    total_req = sum(r[2] for r in rows)
    total_n = sum(r[1] for r in rows)
    print(f"mean: {total_n / len(rows):.0f} articles/day in {total_req / len(rows):.1f} requests/day; "
          f"overlap/duplicates removed: {sum(r[4] for r in rows) - total_n} raw rows")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
