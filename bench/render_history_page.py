"""Render the model-history page in headless Chromium to a PNG, so a person can look at it.

    python bench/render_history_page.py                 # the registry under $NEWS_SIGNALS_HOME (after a demo)
    python bench/render_history_page.py --example       # a throwaway registry with four example versions
    python bench/render_history_page.py --out page.png --width 1280 --height 1500

Serves the real app (``news_signals.ops.web.create_app``) with uvicorn on a loopback port, points
Debian's ``chromium`` at it and prints the PNG path and the timings. Without versions in the
registry it falls back to the example data and says so. Without Chromium it says how to install
it and exits 0 (so ``make bench`` still runs the other benchmarks); ``--require-chromium`` makes
that an error.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def render(out: Path, width: int = 1280, height: int = 1100, chromium: str | None = None) -> dict[str, float]:
    """Serve the page from the current NEWS_SIGNALS_HOME and screenshot it to ``out``; returns timings (s)."""
    import uvicorn
    from news_signals.ops.web import create_app

    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            "no chromium found; install it: apt-get update && apt-get install -y --no-install-recommends chromium"
        )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    while not server.started:
        if time.perf_counter() - t0 > 30 or not thread.is_alive():
            raise RuntimeError("the page server did not start within 30 s")
        time.sleep(0.05)
    timings = {}
    try:
        import urllib.request

        t = time.perf_counter()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=60) as resp:
            resp.read()
        timings["page_s"] = time.perf_counter() - t
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp_png = out.with_name(f".tmp-{os.getpid()}-{out.name}")
        with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
            cmd = [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={tmp_png}",
                f"http://127.0.0.1:{port}/",
            ]
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            timings["chromium_s"] = time.perf_counter() - t
        if proc.returncode != 0 or not tmp_png.exists():
            tmp_png.unlink(missing_ok=True)
            raise RuntimeError(f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-800:]}")
        os.replace(tmp_png, out)  # no half-written PNG at the target
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="PNG path (default: <home>/reports/model_history.png)")
    parser.add_argument("--example", action="store_true", help="render four example versions in a temp home")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    parser.add_argument("--require-chromium", action="store_true", help="fail (exit 1) when chromium is missing")
    args = parser.parse_args(argv)

    from news_signals.core.config import Settings

    out = args.out or Path(Settings().home) / "reports" / "model_history.png"
    chromium = find_chromium()
    if chromium is None:
        msg = "chromium not found: apt-get update && apt-get install -y --no-install-recommends chromium"
        print(("error: " if args.require_chromium else "SKIP render_history_page: ") + msg, file=sys.stderr)
        return 1 if args.require_chromium else 0

    tmp_home = None
    if not args.example:
        from news_signals.ops.history import load_history

        history = load_history()
        if history.error or not history.rows:
            why = history.error or "no registered versions"
            print(f"registry under {Settings().home}: {why}; rendering the example data instead", file=sys.stderr)
            args.example = True
    if args.example:
        tmp_home = tempfile.mkdtemp(prefix="news-signals-example-")
        os.environ["NEWS_SIGNALS_HOME"] = tmp_home
        os.environ["NEWS_SIGNALS_REGISTRY"] = "local"
        from tools.example_history import build_example_registry

        build_example_registry()
    try:
        timings = render(out.resolve(), args.width, args.height, chromium)
    finally:
        if tmp_home:
            shutil.rmtree(tmp_home, ignore_errors=True)
    print(f"model-history page ({'example data' if args.example else 'registry data'}) -> {out}")
    print(f"  page render (HTML + 2 SVG charts): {timings['page_s']:.2f} s")
    print(f"  chromium screenshot:               {timings['chromium_s']:.2f} s")
    print(f"  ratio chromium/page:               {timings['chromium_s'] / max(timings['page_s'], 1e-9):.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
