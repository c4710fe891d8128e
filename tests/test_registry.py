"""Model registry: LocalRegistry on real files; the Hopsworks registry in tests/hopsworks_env (in its venv) and
tests/test_hopsworks_isolation.py (through the isolated worker)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hopsworks_env._hs_helpers import fake_artifact  # one artifact shape for both venvs' tests
from news_signals.core.storage import Storage
from news_signals.registry import LocalRegistry, RegistryError, get_registry


@pytest.fixture()
def reg(tmp_path) -> LocalRegistry:
    return LocalRegistry("m", Storage(str(tmp_path / "home")))


def test_versions_are_immutable_numbered_and_deduplicated(reg, tmp_path):
    a = fake_artifact(tmp_path / "a", b"one")
    b = fake_artifact(tmp_path / "b", b"two")
    v1 = reg.register(a, {"macro_f1": 0.5}, {"decision": "promote"}, "first")
    v2 = reg.register(b, {"macro_f1": 0.6})
    assert (v1.version, v2.version) == (1, 2)
    assert reg.register(a, {"macro_f1": 0.9}).version == 1  # same files: no duplicate version
    assert reg.get(1).metrics == {"macro_f1": 0.5} and reg.get(1).gate == {"decision": "promote"}
    sidecar = json.loads((Path(v1.path) / "registry.json").read_text())
    assert sidecar["name"] == "m" and sidecar["version"] == 1
    assert set(sidecar["files"]) == {"config.json", "model.safetensors", "news_signals.json"}
    assert [h.version for h in reg.history()] == [1, 2]
    assert reg.production() is None


def test_promote_moves_only_the_pointer_and_is_logged(reg, tmp_path):
    reg.register(fake_artifact(tmp_path / "a", b"one"), {})
    reg.register(fake_artifact(tmp_path / "b", b"two"), {})
    with pytest.raises(ValueError, match="needs a reason"):
        reg.promote(1, "")
    with pytest.raises(RegistryError, match=r"no version 7; registered versions: \[1, 2\]"):
        reg.promote(7, "why not")
    assert reg.production() is None
    reg.promote(1, "first")
    reg.promote(2, "better")
    assert reg.production().version == 2
    assert [h.is_production for h in reg.history()] == [False, True]
    assert [(p["version"], p["previous"], p["reason"]) for p in reg.promotions()] == [
        (1, None, "first"),
        (2, 1, "better"),
    ]


def test_download_verifies_hashes_and_caches(reg, tmp_path, monkeypatch):
    reg.register(fake_artifact(tmp_path / "a"), {})
    local = reg.download(1)
    assert (local / "model.safetensors").read_bytes() == b"w1"
    copy = reg.download(1, dest=tmp_path / "copy")
    assert json.loads((copy / "registry.json").read_text())["version"] == 1
    (Path(reg.get(1).path) / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(RegistryError, match="model.safetensors does not match"):
        reg.download(1)
    with pytest.raises(RegistryError, match="does not match"):
        reg.promote(1, "tampered models are never promoted")


def test_bad_artifact_and_failed_register_leave_nothing(reg, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="not a model artifact"):
        reg.register(tmp_path, {})
    with pytest.raises(ValueError, match="does not exist"):
        reg.register(tmp_path / "missing", {})
    reg.register(fake_artifact(tmp_path / "a", b"one"), {})
    reg.promote(1, "ok")
    calls = {"n": 0}
    real_put = reg.fs.put_file

    def flaky_put(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        return real_put(*args, **kwargs)

    monkeypatch.setattr(reg.fs, "put_file", flaky_put)
    with pytest.raises(OSError, match="disk full"):
        reg.register(fake_artifact(tmp_path / "b", b"two"), {})
    root = Path(reg.root)
    assert sorted(p.name for p in root.iterdir()) == ["1", "production", "promotions.json"]
    assert reg.production().version == 1


def test_get_registry_picks_local_without_hopsworks(monkeypatch, tmp_path):
    monkeypatch.delenv("AIRFLOW_CONN_HOPSWORKS_DEFAULT", raising=False)
    monkeypatch.setenv("NEWS_SIGNALS_HOME", str(tmp_path))
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "auto")
    monkeypatch.setattr("news_signals.core.hopsworks.get_connection", lambda conn_id: None)
    r = get_registry("x")
    assert isinstance(r, LocalRegistry) and r.root.endswith("registry/x")
    monkeypatch.setenv("NEWS_SIGNALS_REGISTRY", "bogus")
    with pytest.raises(ValueError, match="NEWS_SIGNALS_REGISTRY"):
        get_registry("x")


def test_cli_output_has_no_airflow_config_chatter(tmp_path):
    """Airflow 3.3 logs its config loading at INFO when a command imports it (the auto backend looks up the
    hopsworks_default connection): the CLI keeps Airflow's loggers at WARNING unless -v."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "NEWS_SIGNALS_HOME": str(tmp_path), "NEWS_SIGNALS_REGISTRY": "auto"}
    env.pop("AIRFLOW_CONN_HOPSWORKS_DEFAULT", None)
    proc = subprocess.run([sys.executable, "-m", "news_signals", "models"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no versions of news_signals registered yet" in proc.stdout + proc.stderr
    assert "airflow.configuration" not in proc.stderr and "airflow.settings" not in proc.stderr, proc.stderr
