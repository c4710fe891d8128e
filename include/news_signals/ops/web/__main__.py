"""``python -m news_signals.ops.web [--host 127.0.0.1] [--port 8765]``: the model-history page without Airflow.

Standalone the page has no login, so it listens on a loopback address only; to share it on a network
use the Airflow plugin (``/model-history/`` on the api-server), which requires an Airflow login.
"""

from __future__ import annotations

import argparse
import ipaddress


def loopback_host(value: str) -> str:
    """``value`` when it is a loopback address (127.0.0.0/8, ::1, localhost), else an argparse error."""
    if value == "localhost":
        return value
    try:
        if ipaddress.ip_address(value).is_loopback:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"{value!r} is not a loopback address; the standalone page has no login, so it binds to "
        "127.0.0.1 or ::1 only (serve it to others through the Airflow plugin, which requires a login)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m news_signals.ops.web", description=__doc__)
    parser.add_argument("--host", type=loopback_host, default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model-name", default=None, help="registry model name (default: Settings().model_name)")
    args = parser.parse_args(argv)

    import uvicorn

    from news_signals.ops.web import create_app

    uvicorn.run(create_app(args.model_name), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
