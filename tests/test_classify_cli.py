"""The `classify` command line contract of ARCHITECTURE.md, run as other tools run it (a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from news_signals.core.taxonomy import CATEGORIES, TAGS

ARTICLES = [
    {"title": "Skogsbrand sprider sig norr om Umeå, hundratals evakueras", "id": 1},
    {"title": "Stocks rally as inflation cools", "description": "Markets rose on Tuesday.", "source": "x"},
    {"title": "Festival in Stockholm draws record crowds", "lang": "en"},
]


def run_cli(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NEWS_SIGNALS_HOME": str(home), "NEWS_SIGNALS_REGISTRY": "local"}
    return subprocess.run(
        [sys.executable, "-m", "news_signals", "classify", *args], capture_output=True, text=True, env=env
    )


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_keywords_follow_the_contract(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ARTICLES)
    out = tmp_path / "out.jsonl"
    proc = run_cli("--method", "keywords", "--input", str(src), "--output", str(out), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["title"] for r in rows] == [a["title"] for a in ARTICLES]  # same order
    assert rows[0]["id"] == 1 and rows[1]["source"] == "x" and rows[2]["lang"] == "en"  # pass-through
    for row in rows:
        assert row["classifier"] == "keywords"
        assert set(row["signals"]) == set(CATEGORIES)
        for cat, sig in row["signals"].items():
            assert set(sig) == {"score", "tag"}
            assert -1.0 <= sig["score"] <= 1.0
            assert sig["tag"] == "" or sig["tag"] in TAGS[cat]
    assert rows[0]["signals"]["emergencies"]["tag"] == "fire"
    assert rows[0]["signals"]["emergencies"]["score"] < 0
    # "Stockholm" is not the stock market; "festival" is not an election (val)
    assert rows[2]["signals"]["economics"]["tag"] == ""
    assert rows[2]["signals"]["politics"]["tag"] == ""


def test_bad_line_is_named_and_nothing_is_written(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [ARTICLES[0], "{not json", ARTICLES[1]])
    out = tmp_path / "out.jsonl"
    proc = run_cli("--method", "keywords", "--input", str(src), "--output", str(out), home=tmp_path)
    assert proc.returncode != 0
    assert "in.jsonl:2" in proc.stderr and "not valid JSON" in proc.stderr
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.jsonl")]  # no temp file left


def test_missing_title_is_named(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [ARTICLES[0], {"description": "no title here"}])
    out = tmp_path / "out.jsonl"
    proc = run_cli("--method", "keywords", "--input", str(src), "--output", str(out), home=tmp_path)
    assert proc.returncode != 0
    assert "in.jsonl:2" in proc.stderr and '"title"' in proc.stderr
    assert not out.exists()


def test_missing_input_file(tmp_path):
    proc = run_cli("--method", "keywords", "--input", str(tmp_path / "nope.jsonl"),
                   "--output", str(tmp_path / "o.jsonl"), home=tmp_path)
    assert proc.returncode != 0 and "does not exist" in proc.stderr


def test_auto_without_a_promoted_model_falls_back_and_says_so(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", ARTICLES[:1])
    out = tmp_path / "out.jsonl"
    proc = run_cli("--method", "auto", "--input", str(src), "--output", str(out), home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "falling back to keywords" in proc.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["classifier"] == "keywords"
    failed = run_cli("--method", "auto", "--require-model", "--input", str(src),
                     "--output", str(tmp_path / "o2.jsonl"), home=tmp_path)
    assert failed.returncode == 3 and not (tmp_path / "o2.jsonl").exists()
    assert "no model has been promoted" in failed.stderr and "Traceback" not in failed.stderr
