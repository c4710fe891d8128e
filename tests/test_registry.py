"""Model registry: LocalRegistry on real files; HopsworksRegistry against autospecs of the real hsml classes."""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import create_autospec

import pytest
from news_signals.core.storage import Storage
from news_signals.registry import LocalRegistry, RegistryError, get_registry
from news_signals.registry.hopsworks import HopsworksRegistry


def fake_artifact(path: Path, weights: bytes = b"w1") -> Path:
    """The artifact's shape (files + news_signals.json); the registry only hashes and copies files."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text("{}")
    (path / "model.safetensors").write_bytes(weights)
    (path / "news_signals.json").write_text(json.dumps({"files": {"model.safetensors": "x"}}))
    return path


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


# ---- Hopsworks -----------------------------------------------------------------------------------
def hsml_mocks():
    """Autospecs of the real hsml classes: a wrong call signature fails the test."""
    import hsml.python.signature as python_signature
    from hsml.model import Model
    from hsml.model_registry import ModelRegistry

    mr = create_autospec(ModelRegistry, instance=True)
    mr.python = create_autospec(python_signature)
    return mr, Model


def hs_model(Model, version: int, tag=None, description: str = ""):
    m = create_autospec(Model, instance=True)
    m.version, m.description, m.training_metrics = version, description, {"macro_f1": 0.5}
    m.created, m.model_path = "2026-11-01", f"/Models/m/{version}"
    m.get_tag.return_value = tag
    return m


def test_hopsworks_register_uses_create_model_then_save(tmp_path):
    mr, Model = hsml_mocks()
    existing = hs_model(Model, 1)
    mr.get_models.return_value = [existing]
    new = hs_model(Model, 2)
    saved = {}

    def save(model_path, **kwargs):
        saved.update(json.loads((Path(model_path) / "registry.json").read_text()))
        saved["metrics_file"] = json.loads((Path(model_path) / "metrics.json").read_text())
        return new

    new.save.side_effect = save
    mr.python.create_model.return_value = new
    reg = HopsworksRegistry("m", model_registry=mr)
    mv = reg.register(
        fake_artifact(tmp_path / "a"),
        {"macro_f1": 0.7, "per_category": {"sports": {"f1": 0.4}}},
        {"decision": "keep"},
    )
    assert mv.version == 2
    kwargs = mr.python.create_model.call_args.kwargs
    assert mr.python.create_model.call_args.args == ("m",)
    assert kwargs["version"] == 2 and kwargs["metrics"] == {"macro_f1": 0.7, "f1_sports": 0.4}
    assert "[fingerprint:" in kwargs["description"] and kwargs["input_example"]
    assert saved["name"] == "m" and saved["version"] == 2 and saved["metrics_file"]["macro_f1"] == 0.7


def test_hopsworks_promote_tags_new_then_untags_old_and_failure_keeps_production(tmp_path):
    mr, Model = hsml_mocks()
    old = hs_model(Model, 1, tag={"production": True, "promoted_at": "2026-10-01T00:00:00"})
    new = hs_model(Model, 2)
    mr.get_models.return_value = [old, new]
    mr.get_model.side_effect = lambda name, version=None: {1: old, 2: new}.get(version)
    reg = HopsworksRegistry("m", model_registry=mr)
    assert reg.production().version == 1
    reg.promote(2, "better")
    name, value = new.add_tag.call_args.args
    assert (
        name == "production"
        and value["production"]
        and value["previous"] == 1
        and value["reason"] == "better"
    )
    old.delete_tag.assert_called_once_with("production")

    # the tag call fails: the error propagates and the old production tag is untouched
    mr2, Model2 = hsml_mocks()
    old2 = hs_model(Model2, 1, tag={"production": True, "promoted_at": "2026-10-01T00:00:00"})
    new2 = hs_model(Model2, 2)
    new2.add_tag.side_effect = RuntimeError("REST 500")
    mr2.get_models.return_value = [old2, new2]
    mr2.get_model.side_effect = lambda name, version=None: {1: old2, 2: new2}.get(version)
    reg2 = HopsworksRegistry("m", model_registry=mr2)
    with pytest.raises(RuntimeError, match="REST 500"):
        reg2.promote(2, "better")
    old2.delete_tag.assert_not_called()
    assert reg2.production().version == 1


def test_hopsworks_save_failure_is_a_registry_error(tmp_path):
    mr, Model = hsml_mocks()
    mr.get_models.return_value = []
    model = hs_model(Model, 1)
    model.save.side_effect = RuntimeError("upload interrupted")
    mr.python.create_model.return_value = model
    with pytest.raises(RegistryError, match="upload interrupted"):
        HopsworksRegistry("m", model_registry=mr).register(fake_artifact(tmp_path / "a"), {})


def test_hopsworks_download_verifies_and_best_model(tmp_path):
    mr, Model = hsml_mocks()
    reg_local = LocalRegistry("m", Storage(str(tmp_path / "home")))
    src = Path(reg_local.register(fake_artifact(tmp_path / "a"), {}).path)
    model = hs_model(Model, 1)

    def download(local_path=None):
        import shutil

        target = Path(local_path) / "m"
        shutil.copytree(src, target)
        return str(target)

    model.download.side_effect = download
    mr.get_model.return_value = model
    mr.get_best_model.return_value = model
    reg = HopsworksRegistry("m", model_registry=mr)
    path = reg.download(1, dest=tmp_path / "dl")
    assert (path / "model.safetensors").read_bytes() == b"w1"
    assert reg.download(1, dest=tmp_path / "dl") == path  # cached: verified, not downloaded again
    assert model.download.call_count == 1
    assert reg.best("macro_f1").version == 1
    mr.get_best_model.assert_called_once_with("m", "macro_f1", "max")


def test_login_always_passes_key_and_project(monkeypatch):
    import hopsworks
    from news_signals.core import hopsworks as hopsworks_client

    login = create_autospec(hopsworks.login)
    monkeypatch.setattr(hopsworks, "login", login)
    monkeypatch.setattr(
        hopsworks_client,
        "get_connection",
        lambda conn_id: hopsworks_client.ConnectionInfo(
            conn_id, "h.example", None, "KEY", None, 443, {"project": "news"}
        ),
    )
    hopsworks_client.login()
    login.assert_called_once_with(host="h.example", project="news", api_key_value="KEY", port=443)
    monkeypatch.setattr(
        hopsworks_client,
        "get_connection",
        lambda conn_id: hopsworks_client.ConnectionInfo(conn_id, "h.example", None, None, None, None, {}),
    )
    with pytest.raises(ValueError, match=r"lacks password \(the API key\), schema or extra.project"):
        hopsworks_client.login()
    assert "KEY" not in repr(hopsworks_client.ConnectionInfo("c", "h", None, "KEY", None, None, {}))
