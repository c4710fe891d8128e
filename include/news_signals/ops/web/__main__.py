"""``python -m news_signals.ops.web [--host 127.0.0.1] [--port 8765]``: the model-history page without Airflow."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m news_signals.ops.web", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--model-name", default=None, help="registry model name (default: Settings().model_name)")
    args = parser.parse_args(argv)

    import uvicorn

    from news_signals.ops.web import create_app

    uvicorn.run(create_app(args.model_name), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
