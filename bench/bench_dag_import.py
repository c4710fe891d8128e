"""Import time of each DAG file (what the dag-processor pays on every parse), side by side.

Each measurement runs in a fresh interpreter: first ``airflow.sdk`` is imported (the floor every
DAG file shares, reported separately), then the DAG file is executed and timed. For scale, the
same is done for ``great_expectations`` and ``pandas``: what a top-level import would add to a parse.

    .venv/bin/python bench/bench_dag_import.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "pandas", "great_expectations", "hopsworks", "sklearn", "numpy", "gdeltdoc")

_PROBE = r"""
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk  # noqa: F401  the shared floor
t1 = time.perf_counter()
target = sys.argv[1]
if target.endswith(".py"):
    runpy.run_path(target, run_name="bench_probe")
else:
    __import__(target)
t2 = time.perf_counter()
print(json.dumps({"sdk_s": t1 - t0, "file_s": t2 - t1,
                  "heavy": sorted(m for m in sys.argv[2].split(",") if m in sys.modules)}))
"""


def measure(target: str, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, target, ",".join(HEAVY)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{target} failed to import:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeat", type=int, default=3, help="fresh interpreters per file (median is printed)"
    )
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="bench-dag-import-")
    env = {
        **os.environ,
        "AIRFLOW_HOME": os.environ.get("AIRFLOW_HOME", home),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "GX_ANALYTICS_ENABLED": "false",
        "PYTHONPATH": str(ROOT / "include"),
    }
    targets = [str(p) for p in sorted((ROOT / "dags").glob("*.py")) if not p.name.startswith("_")]
    measure(targets[0], env)  # warm the OS file cache and .pyc files so the first file is not penalised
    rows = []
    for target in [*targets, "pandas", "great_expectations"]:
        runs = [measure(target, env) for _ in range(args.repeat if target.endswith(".py") else 1)]
        rows.append(
            {
                "target": Path(target).name if target.endswith(".py") else f"import {target}",
                "file_ms": 1000 * statistics.median(r["file_s"] for r in runs),
                "sdk_ms": 1000 * statistics.median(r["sdk_s"] for r in runs),
                "heavy": runs[-1]["heavy"],
            }
        )
    dag_rows = [r for r in rows if r["target"].endswith(".py")]
    slowest = max(r["file_ms"] for r in dag_rows)
    print(
        f"{'target':34} {'import ms':>10} {'airflow.sdk ms':>15} {'x slowest DAG':>14}  heavy modules loaded"
    )
    for r in rows:
        ratio = r["file_ms"] / slowest if slowest else float("nan")
        print(
            f"{r['target']:34} {r['file_ms']:10.0f} {r['sdk_ms']:15.0f} {ratio:14.1f}  "
            f"{', '.join(r['heavy']) or '-'}"
        )
    bad = [r["target"] for r in dag_rows if r["heavy"]]
    if bad:
        print(f"DAG files importing heavy libraries at parse time: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
