"""An in-process stand-in of a Hopsworks project for the isolated worker (tests only).

Selected with ``NEWS_SIGNALS_HOPSWORKS_STANDIN=hopsworks_standin:login`` (this folder on PYTHONPATH):
the worker calls ``login(**kwargs)`` instead of ``hopsworks.login``. Every object is a
``create_autospec`` of the real class (``hopsworks.login``, ``Project``, hsml ``ModelRegistry`` /
``Model`` / ``python.signature``, hsfs ``FeatureStore`` / ``FeatureGroup``), so a call with a wrong
signature fails exactly as before; ``side_effect`` gives them the state of a server: models saved
to and downloaded from a folder, tags, feature groups that upsert by primary key. It lives as long
as the worker process, i.e. one proxy instance.

``project.standin(action=...)`` lets a test look inside or inject a fault:
``calls`` (what the SDK was called with; the API key only as its sha256), ``fault`` (the next call of
``method`` raises ``error``: ``RuntimeError`` or ``DataValidationException``).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any
from unittest.mock import create_autospec


class _State:
    def __init__(self, login_kwargs: dict[str, Any]) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="hopsworks-standin-"))
        self.login = {k: (hashlib.sha256(v.encode()).hexdigest() if k == "api_key_value" else v)
                      for k, v in login_kwargs.items()}
        self.models: dict[str, dict[int, Any]] = {}
        self.groups: dict[tuple[str, int], Any] = {}
        self.calls: dict[str, list] = {"create_model": [], "save": [], "download": [], "add_tag": [],
                                       "delete_tag": [], "get_or_create_feature_group": [], "insert": [],
                                       "save_expectation_suite": []}
        self.faults: dict[str, str] = {}

    def maybe_fail(self, method: str) -> None:
        error = self.faults.pop(method, None)
        if error is None:
            return
        kind, _, message = error.partition(":")
        if kind == "DataValidationException":
            from hopsworks_common.client.exceptions import DataValidationException

            raise DataValidationException(message)
        raise RuntimeError(message)


def _model(state: _State, name: str, version: int, metrics: dict | None, description: str | None) -> Any:
    from hsml.model import Model

    m = create_autospec(Model, instance=True)
    m.name, m.version, m.description = name, version, description or ""
    m.training_metrics, m.created = dict(metrics or {}), "2026-12-04T00:00:00"
    m.model_path = f"/Projects/news/Models/{name}/{version}"
    tags: dict[str, Any] = {}
    m.get_tag.side_effect = tags.get

    def add_tag(name_, value):
        state.maybe_fail("add_tag")
        state.calls["add_tag"].append([version, name_])
        tags[name_] = value

    def delete_tag(name_):
        state.calls["delete_tag"].append([version, name_])
        tags.pop(name_)

    m.add_tag.side_effect = add_tag
    m.delete_tag.side_effect = delete_tag

    def save(model_path, await_registration=480, keep_original_files=False, upload_configuration=None):
        state.maybe_fail("save")
        target = state.root / name / str(version)
        shutil.copytree(model_path, target)
        state.calls["save"].append(version)
        state.models.setdefault(name, {})[version] = m
        return m

    def download(local_path=None):
        state.calls["download"].append(version)
        dest = Path(local_path or tempfile.mkdtemp()) / name
        shutil.copytree(state.root / name / str(version), dest)
        return str(dest)

    m.save.side_effect = save
    m.download.side_effect = download
    return m


def _model_registry(state: _State) -> Any:
    import hsml.python.signature as python_signature
    from hsml.model_registry import ModelRegistry

    mr = create_autospec(ModelRegistry, instance=True)
    mr.python = create_autospec(python_signature)

    def create_model(name, version=None, metrics=None, description=None, input_example=None, **kwargs):
        state.calls["create_model"].append({"name": name, "version": version, "metrics": metrics,
                                            "description": description, "input_example": input_example})
        return _model(state, name, int(version), metrics, description)

    mr.python.create_model.side_effect = create_model
    mr.get_models.side_effect = lambda name: [m for _, m in sorted(state.models.get(name, {}).items())]
    mr.get_model.side_effect = lambda name, version=None: state.models.get(name, {}).get(version)

    def get_best_model(name, metric, direction):
        models = [m for m in state.models.get(name, {}).values() if metric in m.training_metrics]
        pick = max if direction == "max" else min
        return pick(models, key=lambda m: m.training_metrics[metric]) if models else None

    mr.get_best_model.side_effect = get_best_model
    return mr


def _feature_store(state: _State) -> Any:
    import pandas as pd
    from hsfs.feature_group import FeatureGroup
    from hsfs.feature_store import FeatureStore

    fs = create_autospec(FeatureStore, instance=True)
    fs.name = "news_featurestore"

    def get_or_create_feature_group(name, version, **kwargs):
        suite = kwargs.get("expectation_suite")
        state.calls["get_or_create_feature_group"].append({
            **{k: v for k, v in kwargs.items() if k != "expectation_suite"}, "name": name, "version": version,
            "suite_type": type(suite).__name__, "suite_policy": getattr(suite, "validation_ingestion_policy", None),
            "suite_expectations": sorted({e.expectation_type for e in getattr(suite, "expectations", [])}),
        })
        key = (name, version)
        if key in state.groups:
            return state.groups[key]
        fg = create_autospec(FeatureGroup, instance=True)
        data = {"df": None, "suite": None}  # a new group: the suite is attached by the caller's check below
        fg.get_expectation_suite.side_effect = lambda ge_type=True: data["suite"]

        def save_expectation_suite(expectation_suite, run_validation=True, validation_ingestion_policy="always",
                                   overwrite=False):
            state.calls["save_expectation_suite"].append([name, validation_ingestion_policy])
            data["suite"] = expectation_suite
            return expectation_suite

        def insert(features, overwrite=False, operation="upsert", storage=None, write_options=None, **kw):
            state.maybe_fail("insert")
            state.calls["insert"].append({"group": name, "rows": len(features), "operation": operation,
                                          "write_options": write_options})
            keys = list(kwargs.get("primary_key") or [])
            old = data["df"]
            merged = features if old is None else pd.concat([old, features], ignore_index=True)
            data["df"] = merged.drop_duplicates(keys, keep="last").reset_index(drop=True)
            return None, None

        def read(wallclock_time=None, online=False, dataframe_type="default", read_options=None, **kw):
            return pd.DataFrame() if data["df"] is None else data["df"].copy()

        fg.save_expectation_suite.side_effect = save_expectation_suite
        fg.insert.side_effect = insert
        fg.read.side_effect = read
        state.groups[key] = fg
        return fg

    fs.get_or_create_feature_group.side_effect = get_or_create_feature_group
    return fs


def login(**kwargs: Any) -> Any:
    """``hopsworks.login``'s stand-in: checks the call against the real signature, returns a project."""
    import hopsworks
    from hopsworks_common.project import Project

    real_login = create_autospec(hopsworks.login)
    real_login(**kwargs)  # TypeError here if our kwargs do not fit the real hopsworks.login
    if not kwargs.get("api_key_value") or not kwargs.get("project"):
        raise RuntimeError("hopsworks.login without api_key_value/project would prompt on stdin and hang")
    state = _State(kwargs)
    project = create_autospec(Project, instance=True)
    mr, fs = _model_registry(state), _feature_store(state)
    project.get_model_registry.side_effect = lambda: mr
    project.get_feature_store.side_effect = lambda name=None: fs

    def standin(action: str = "calls", method: str = "", error: str = "") -> Any:
        if action == "calls":
            return {"login": state.login, **state.calls}
        if action == "fault":
            state.faults[method] = error
            return None
        raise ValueError(f"unknown stand-in action {action!r}")

    project.standin = standin
    return project
