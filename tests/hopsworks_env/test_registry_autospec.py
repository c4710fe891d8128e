"""HopsworksRegistry and the login against autospecs of the real hsml / hopsworks classes.

Runs inside the isolated Hopsworks venv (``.venv-hopsworks/bin/python -m pytest tests/hopsworks_env``),
where hsml is installed; the main suite runs this folder there (tests/test_hopsworks_isolation.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest.mock import create_autospec

import pytest
from _hs_helpers import fake_artifact, hs_model, hsml_mocks, tagging
from news_signals.core.storage import Storage
from news_signals.registry import LocalRegistry, RegistryError
from news_signals.registry.hopsworks import HopsworksRegistry


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
def test_hopsworks_rollback_moves_the_production_tag_and_carries_the_history():
    mr, Model = hsml_mocks()
    models = {v: tagging(hs_model(Model, v)) for v in (1, 2, 3)}
    mr.get_models.return_value = list(models.values())
    mr.get_model.side_effect = lambda name, version=None: models.get(version)
    reg = HopsworksRegistry("m", model_registry=mr)

    reg.promote(1, "first", by="promotion gate")
    reg.promote(2, "better", by="promotion gate")
    with pytest.raises(RegistryError, match="never in production"):
        reg.rollback(3, "x", "ada")
    reg.rollback(1, "v2 regressed on weather", "ada")

    assert reg.production().version == 1
    assert models[2].get_tag("production") is None  # the old tag was removed...
    history = reg.promotions()  # ...but the history travelled on the new tag
    assert [(h["action"], h["version"], h["previous"], h["by"]) for h in history] == [
        ("promote", 1, None, "promotion gate"),
        ("promote", 2, 1, "promotion gate"),
        ("rollback", 1, 2, "ada"),
    ]
    name, value = models[1].add_tag.call_args.args
    assert name == "production" and value["reason"] == "v2 regressed on weather" and value["production"]
    json.dumps(value)  # a tag value must be valid JSON
