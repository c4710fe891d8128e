"""Settings reads every NEWS_SIGNALS_* variable, docs/CONFIGURATION.md lists each once, nobody else reads them."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import pytest
from news_signals.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "include" / "news_signals"
CONFIG = PACKAGE / "core" / "config.py"
TABLE = ROOT / "docs" / "CONFIGURATION.md"
VAR = re.compile(r"NEWS_SIGNALS_[A-Z0-9_]+")
# a direct read of a NEWS_SIGNALS_* variable: os.environ[...], os.environ.get(...), os.getenv(...)
DIRECT_READ = re.compile(r"(environ(\.get)?\s*[\[(]|getenv\s*\()\s*f?[\"']NEWS_SIGNALS_")
# modules owned by other engineers that still read a variable themselves (shrink to empty)
ALLOWED_DIRECT_READS: set[str] = set()


def _table() -> dict[str, tuple[str, str]]:
    """variable -> (Settings field, default) from the one table."""
    rows: dict[str, tuple[str, str]] = {}
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0].startswith("`NEWS_SIGNALS_"):
            var, fld = (c.strip("`") for c in cells[:2])
            assert var not in rows, f"{var} is listed twice in {TABLE.name}"
            rows[var] = (fld, re.match(r"`([^`]*)`", cells[2]).group(1))  # the first `code` of the cell
    return rows


@pytest.fixture
def clean_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith("NEWS_SIGNALS_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_table_lists_exactly_the_variables_settings_reads():
    in_config = set(VAR.findall(CONFIG.read_text()))
    assert set(_table()) == in_config


def test_table_fields_are_settings_fields_and_cover_them_all():
    fields = {f.name for f in dataclasses.fields(Settings)}
    assert {fld for fld, _ in _table().values()} == fields


def test_table_defaults_are_settings_defaults(clean_env):
    settings = Settings.from_env()
    for var, (fld, default) in _table().items():
        if var == "NEWS_SIGNALS_HOME":
            assert settings.home.endswith("data")
            continue
        value = getattr(settings, fld)
        shown = ",".join(value) if isinstance(value, tuple) else str(value)
        assert shown == default, f"{var}: Settings gives {shown!r}, the table says {default!r}"


def _other_value(value: object) -> str:
    if isinstance(value, bool):
        return "0" if value else "1"
    if isinstance(value, int | float):
        return "7"
    if value == "auto":
        return "local"
    return "x-from-test"


def test_each_variable_reaches_its_field(clean_env):
    default = Settings.from_env()
    for var, (fld, _) in _table().items():
        raw = _other_value(getattr(default, fld))
        clean_env.setenv(var, raw)
        changed = getattr(Settings.from_env(), fld)
        clean_env.delenv(var)
        assert changed != getattr(default, fld), f"setting {var}={raw!r} did not change Settings.{fld}"


def test_bad_backend_choice_names_the_variable(clean_env):
    clean_env.setenv("NEWS_SIGNALS_FEATURE_STORE", "postgres")
    with pytest.raises(ValueError, match="NEWS_SIGNALS_FEATURE_STORE='postgres'"):
        Settings.from_env()


def test_no_module_reads_a_news_signals_variable_itself():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "core/config.py" or rel in ALLOWED_DIRECT_READS:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if DIRECT_READ.search(line):
                offenders.append(f"{rel}:{n}: {line.strip()}")
    for path in sorted([*(ROOT / "dags").glob("*.py"), *(ROOT / "tools").glob("*.py")]):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if DIRECT_READ.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not offenders, "read these through Settings:\n" + "\n".join(offenders)


def test_the_allow_list_is_still_needed():
    """An allowed file that no longer reads a variable itself leaves the list."""
    for rel in ALLOWED_DIRECT_READS:
        assert DIRECT_READ.search((PACKAGE / rel).read_text()), f"{rel} reads through Settings now: drop it"
