"""``python -m news_signals`` entry point."""

from news_signals.cli import main

raise SystemExit(main())
