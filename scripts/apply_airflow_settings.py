#!/usr/bin/env python
"""Apply airflow_settings.yaml (pools, connections, variables) to the local Airflow.

Usage: .venv/bin/python scripts/apply_airflow_settings.py [airflow_settings.yaml] [--check]
The logic lives in news_signals.airflow_settings (importable, tested).
"""

from news_signals.airflow_settings import main

if __name__ == "__main__":
    raise SystemExit(main())
