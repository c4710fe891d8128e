#!/usr/bin/env python
"""Apply airflow_settings.yaml (pools, connections, variables) to the local Airflow.

Usage: .venv/bin/python scripts/apply_airflow_settings.py [airflow_settings.yaml] [--check]
The logic lives in tools.airflow_settings (importable, tested).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tools/
from tools.airflow_settings import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
