"""The Hopsworks worker: runs in the isolated interpreter, speaks JSON lines on stdin/stdout.

Started by :mod:`news_signals.isolated.proxy` as ``<hopsworks python> -m news_signals.isolated.worker``
(no other argument: nothing secret is ever on the command line). One request per line on stdin, one
answer per line on stdout, in order:

    {"op": "init", "kind": "registry"|"feature_store", "model_name": str|null, "login": {...}}
    {"op": "version"}                                   # no login
    {"op": "registry.<method>", "args": {...}}           # register, production, promote, promotions,
                                                         # history, get, best, download
    {"op": "feature_store.<method>", "args": {...}}      # describe, upsert, read (DataFrames as parquet
                                                         # files at args.path, never JSON)
    {"op": "close"}

    answer: {"ok": true, "result": ...} | {"ok": false, "error": {"type": "RegistryError", "message": "..."}}

``login`` holds the keyword arguments of ``hopsworks.login`` including the API key: it arrives on
stdin only, is kept in memory and is never logged or echoed back. The login happens at the first
request that needs the project. Everything the SDK prints goes to stderr (file descriptor 1 is
pointed at 2 on start), so stdout carries nothing but answers.

``NEWS_SIGNALS_HOPSWORKS_STANDIN=module:callable`` (tests only) replaces ``hopsworks.login`` with
``callable(**login)``, which returns a stand-in project; the worker code path is otherwise the same.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("news_signals.isolated.worker")

STANDIN_ENV = "NEWS_SIGNALS_HOPSWORKS_STANDIN"


def _versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable}
    for dist in ("hopsworks", "great-expectations", "pandas", "pyarrow", "SQLAlchemy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = None
    out["standin"] = os.environ.get(STANDIN_ENV) or None
    return out


class Worker:
    def __init__(self) -> None:
        self.kind: str | None = None
        self.model_name: str | None = None
        self._login: dict[str, Any] | None = None
        self._project: Any = None
        self._registry: Any = None
        self._store: Any = None

    # ---- the Hopsworks objects (login on first use) -------------------------------------------
    @property
    def project(self) -> Any:
        if self._project is None:
            if self._login is None:
                raise RuntimeError("the worker got no init message with the login; the proxy must send it first")
            standin = os.environ.get(STANDIN_ENV)
            if standin:
                module, _, attr = standin.partition(":")
                factory = getattr(importlib.import_module(module), attr or "login")
                log.warning("using the Hopsworks stand-in %s (tests only), not hopsworks.login", standin)
                self._project = factory(**self._login)
            else:
                import hopsworks

                log.info("logging in to Hopsworks %s project %s", self._login.get("host"), self._login.get("project"))
                self._project = hopsworks.login(**self._login)
        return self._project

    @property
    def registry(self) -> Any:
        if self._registry is None:
            from news_signals.registry.hopsworks import HopsworksRegistry

            if not self.model_name:
                raise ValueError("registry requests need init.model_name")
            self._registry = HopsworksRegistry(self.model_name, model_registry=self.project.get_model_registry())
        return self._registry

    @property
    def store(self) -> Any:
        if self._store is None:
            from news_signals.features.store.hopsworks import HopsworksFeatureStore

            self._store = HopsworksFeatureStore(self.project.get_feature_store())
        return self._store

    # ---- requests ---------------------------------------------------------------------------------
    def handle(self, msg: dict[str, Any]) -> Any:
        op = msg.get("op")
        args = msg.get("args") or {}
        if op == "init":
            self.kind, self.model_name = msg.get("kind"), msg.get("model_name")
            self._login = dict(msg.get("login") or {})
            return {"pid": os.getpid()}
        if op == "version":
            return _versions()
        if op == "standin":  # tests: inspect or steer the stand-in project
            if not os.environ.get(STANDIN_ENV):
                raise RuntimeError("the standin op exists only with NEWS_SIGNALS_HOPSWORKS_STANDIN set")
            return self.project.standin(**args)
        group, _, method = str(op).partition(".")
        if group == "registry":
            return self._registry_call(method, args)
        if group == "feature_store":
            return self._store_call(method, args)
        raise ValueError(f"unknown op {op!r}")

    def _registry_call(self, method: str, args: dict[str, Any]) -> Any:
        reg = self.registry
        if method == "register":
            return reg.register(args["model_dir"], args.get("metrics") or {}, args.get("gate"),
                                args.get("description", "")).to_dict()
        if method == "production":
            mv = reg.production()
            return None if mv is None else mv.to_dict()
        if method == "promote":
            return reg.promote(int(args["version"]), args["reason"], by=args.get("by", ""),
                               action=args.get("action", "promote")).to_dict()
        if method == "promotions":
            return reg.promotions()
        if method == "history":
            return [mv.to_dict() for mv in reg.history()]
        if method == "get":
            return reg.get(int(args["version"])).to_dict()
        if method == "best":
            mv = reg.best(args.get("metric", "macro_f1"))
            return None if mv is None else mv.to_dict()
        if method == "download":
            return str(reg.download(int(args["version"]), args.get("dest")))
        raise ValueError(f"unknown registry method {method!r}")

    def _store_call(self, method: str, args: dict[str, Any]) -> Any:
        from news_signals.features.store.base import FeatureGroupSpec

        if method == "describe":
            return self.store.describe()
        spec = FeatureGroupSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in args["spec"].items()})
        if method == "upsert":
            import pandas as pd

            rows = pd.read_parquet(args["path"])
            self.store._upsert(spec, rows)  # the proxy's FeatureStore.upsert validated the rows already
            return len(rows)
        if method == "read":
            df = self.store.read(spec)
            df.to_parquet(Path(args["path"]), index=False)
            return len(df)
        raise ValueError(f"unknown feature_store method {method!r}")


def _error(exc: BaseException) -> dict[str, str]:
    return {"type": type(exc).__name__, "message": str(exc)}


def main() -> int:
    # stdout is the protocol channel: keep a private copy of fd 1 and point fd 1 (and sys.stdout) at
    # stderr, so whatever the SDK prints cannot corrupt an answer.
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    worker = Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
        except ValueError as exc:
            out.write(json.dumps({"ok": False, "error": _error(exc)}) + "\n")
            continue
        if msg.get("op") == "close":
            out.write(json.dumps({"ok": True, "result": None}) + "\n")
            break
        try:
            answer = {"ok": True, "result": worker.handle(msg)}
        except Exception as exc:
            if not isinstance(exc, ValueError | LookupError):
                log.warning("%s failed: %s: %s", msg.get("op"), type(exc).__name__, exc)
            answer = {"ok": False, "error": _error(exc)}
        out.write(json.dumps(answer, default=str) + "\n")
    out.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
