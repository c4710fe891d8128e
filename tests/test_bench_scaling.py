"""bench/bench_scaling.py runs end to end at tiny sizes and prints its tables and the verdict line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBER = r"-?\d+(?:\.\d+)?"


def test_bench_scaling_prints_table_and_worst_exponent():
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "include")]),
        "GX_ANALYTICS_ENABLED": "false",
    }
    # three of the five stages (one daily, one GX, one feature stage) keep this under a minute;
    # the two feature-store writes take a full feature-pipeline run each as setup
    cmd = [sys.executable, str(ROOT / "bench" / "bench_scaling.py"), "--sizes", "1,2", "--day-rows", "50",
           "--stages", "label,validate,classify"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)  # ~30 s; a hang fails
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()

    assert lines[0].startswith("one day = 50 articles")
    assert "| stage | size | rows | wall s | CPU s | peak MiB | stage MiB |" in lines
    for stage in ("label", "validate", "classify"):
        for size, rows in (("1x", 50), ("2x", 100)):
            row = [ln for ln in lines if ln.startswith(f"| {stage} | {size} |")]
            assert len(row) == 1, (stage, size, proc.stdout)
            cells = [c.strip() for c in row[0].strip("|").split("|")]
            assert cells[2] == str(rows)
            wall, cpu, peak = (float(c) for c in cells[3:6])
            assert wall > 0 and cpu > 0 and peak > 50  # a Python process with pandas holds > 50 MiB
        growth = [ln for ln in lines if re.match(rf"\| {stage} \| {NUMBER} \| {NUMBER} \|", ln)]
        assert len(growth) == 1, (stage, proc.stdout)

    last = lines[-1]
    assert re.fullmatch(rf"scaling: worst exponent {NUMBER} \((label|validate|classify)\)", last), last
