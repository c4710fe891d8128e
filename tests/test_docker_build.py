"""tools.docker_build without a daemon: the cache key, the loopback wheel server, the wheelhouse stamp."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tools import docker_build as db

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def project(tmp_path, monkeypatch) -> Path:
    """A minimal copy of the files the image depends on, with the module pointed at it."""
    root = tmp_path / "project"
    (root / "docker" / "trainer").mkdir(parents=True)
    for name in ("Dockerfile", "requirements.txt", "requirements-nodeps.txt"):
        shutil.copy2(ROOT / "docker" / "trainer" / name, root / "docker" / "trainer" / name)
    shutil.copy2(ROOT / "constraints.txt", root / "constraints.txt")
    shutil.copy2(ROOT / "pyproject.toml", root / "pyproject.toml")
    pkg = root / "include" / "news_signals"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text('"""pkg"""\n')
    (pkg / "mod.py").write_text("X = 1\n")
    monkeypatch.setattr(db, "PROJECT_ROOT", root)
    monkeypatch.setattr(db, "TRAINER_DIR", root / "docker" / "trainer")
    return root


def test_cache_key_follows_dockerfile_requirements_source_and_base(project):
    key = db.context_hash("sha256:base1", "offline")
    assert key == db.context_hash("sha256:base1", "offline")  # deterministic
    assert key != db.context_hash("sha256:base2", "offline")  # another base image
    assert key != db.context_hash("sha256:base1", "online")
    (project / "include" / "news_signals" / "__pycache__").mkdir()
    (project / "include" / "news_signals" / "__pycache__" / "mod.cpython-311.pyc").write_bytes(b"\0")
    assert db.context_hash("sha256:base1", "offline") == key  # bytecode is not source
    (project / "include" / "news_signals" / "mod.py").write_text("X = 2\n")
    changed_src = db.context_hash("sha256:base1", "offline")
    assert changed_src != key
    with (project / "docker" / "trainer" / "requirements.txt").open("a") as fh:
        fh.write("tqdm\n")
    assert db.context_hash("sha256:base1", "offline") != changed_src


def test_tags_split_like_docker():
    assert db._split_tag("news-signals-trainer:test") == ("news-signals-trainer", "test")
    assert db._split_tag("news-signals-trainer") == ("news-signals-trainer", "latest")
    assert db._split_tag("registry.example:5000/ns/trainer") == ("registry.example:5000/ns/trainer", "latest")
    assert db._split_tag("registry.example:5000/ns/trainer:1.2") == ("registry.example:5000/ns/trainer", "1.2")


def test_wheel_server_serves_the_wheelhouse_to_pip_and_stops(tmp_path):
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK fake wheel")
    with db.serve_wheelhouse(tmp_path) as pip_args:
        assert pip_args.startswith("--no-index --find-links=http://127.0.0.1:") and "--trusted-host 127.0.0.1" in pip_args
        url = pip_args.split("--find-links=")[1].split()[0]
        listing = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'href="demo-1.0-py3-none-any.whl"' in listing  # what pip's --find-links parses
        assert urllib.request.urlopen(url + wheel.name, timeout=10).read() == b"PK fake wheel"
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_wheelhouse_is_rebuilt_only_when_requirements_change(project, tmp_path, monkeypatch):
    calls: list[list[str]] = []
    monkeypatch.setattr(db, "_pip", lambda args: calls.append(args))
    dest = tmp_path / "wheels"
    db.build_wheelhouse(dest)
    assert len(calls) == 2 and calls[0][0] == "wheel" and "--no-deps" in calls[1]
    db.build_wheelhouse(dest)
    assert len(calls) == 2  # current: nothing to do
    with (project / "constraints.txt").open("a") as fh:
        fh.write("\n")
    db.build_wheelhouse(dest)
    assert len(calls) == 4


def test_no_daemon_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(db.BuildError, match="ensure_dockerd.sh"):
        db.docker_client()
