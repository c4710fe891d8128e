"""The registry on Hopsworks' model registry (used when the ``hopsworks_default`` connection exists).

Calls follow docs/CONTRACTS.md and the installed hsml 5.2.1 signatures:
``mr.python.create_model(name, version=…, metrics=…, description=…, input_example=…)`` then
``model.save(dir)``; production is the ``production`` tag on a model version
(``model.add_tag`` — ``set_tag`` is deprecated in hsml 5.x). The tag value carries
``promoted_at``: when two versions carry it (a demotion failed half-way) the latest
promotion wins, so production never points at an unintended model. The tag also carries
``history``, every production move so far (who, when, why, promote or rollback): each promotion
copies the previous production tag's history forward, so it survives the old tag's removal and
needs no tag schema besides ``production``.
Metadata the registry needs (file hashes, fingerprint) travels inside the saved
directory in the ``registry.json`` sidecar; the fingerprint is also appended to the description so a
re-registration of the same files is found without downloading anything.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from news_signals.registry.base import (
    GATE_FILE,
    METRICS_FILE,
    SIDECAR,
    VERSION_FILE,
    ModelRegistry,
    ModelVersion,
    RegistryError,
    artifact_files,
    check_artifact_dir,
    fingerprint,
    flat_metrics,
    verify_files,
)
from news_signals.registry.local import cache_root

log = logging.getLogger(__name__)

PRODUCTION_TAG = "production"
_FP = re.compile(r"\[fingerprint:([0-9a-f]{64})\]")


class HopsworksRegistry(ModelRegistry):
    """``ModelRegistry`` on a Hopsworks project; ``model_registry`` may be injected (tests)."""

    def __init__(
        self, model_name: str, model_registry: Any = None, conn_id: str = "hopsworks_default"
    ) -> None:
        self.name = model_name
        self._mr = model_registry
        self._conn_id = conn_id

    @property
    def mr(self) -> Any:
        if self._mr is None:
            from news_signals.core.hopsworks import login

            self._mr = login(self._conn_id).get_model_registry()
        return self._mr

    # ---- reading ------------------------------------------------------------------------
    def _models(self) -> list[Any]:
        try:
            models = self.mr.get_models(self.name) or []
        except Exception as exc:
            if "not found" in str(exc).lower():
                return []
            raise
        return sorted(models, key=lambda m: int(m.version))

    @staticmethod
    def _tag(model: Any) -> dict | None:
        value = model.get_tag(PRODUCTION_TAG)
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        return value if isinstance(value, dict) and value.get("production") else None

    def _production_model(self, models: list[Any]) -> Any | None:
        tagged = [(tag.get("promoted_at", ""), m) for m in models if (tag := self._tag(m))]
        return max(tagged, key=lambda t: (t[0], int(t[1].version)))[1] if tagged else None

    def _to_version(self, model: Any, production: int | None) -> ModelVersion:
        desc = model.description or ""
        fp = _FP.search(desc)
        return ModelVersion(
            name=self.name,
            version=int(model.version),
            metrics=dict(model.training_metrics or {}),
            gate=None,
            created_at=str(model.created or ""),
            is_production=production == int(model.version),
            path=str(model.model_path or ""),
            description=_FP.sub("", desc).strip(),
            fingerprint=fp.group(1) if fp else "",
        )

    def history(self) -> list[ModelVersion]:
        models = self._models()
        prod = self._production_model(models)
        prod_v = int(prod.version) if prod is not None else None
        return [self._to_version(m, prod_v) for m in models]

    def get(self, version: int) -> ModelVersion:
        model = self.mr.get_model(self.name, int(version))
        if model is None:
            raise RegistryError(f"Hopsworks has no model {self.name} version {version}")
        prod = self.production()
        return self._to_version(model, prod.version if prod else None)

    def production(self) -> ModelVersion | None:
        models = self._models()
        prod = self._production_model(models)
        return None if prod is None else self._to_version(prod, int(prod.version))

    def best(self, metric: str = "macro_f1") -> ModelVersion | None:
        """The version with the highest ``metric`` (``mr.get_best_model``), for consumers that want it."""
        model = self.mr.get_best_model(self.name, metric, "max")
        return None if model is None else self._to_version(model, None)

    # ---- writing ------------------------------------------------------------------------
    def register(
        self,
        model_dir: str | Path,
        metrics: dict[str, Any],
        gate: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        src = check_artifact_dir(model_dir)
        files = artifact_files(src)
        fp = fingerprint(files)
        models = self._models()
        for m in models:
            found = _FP.search(m.description or "")
            if found and found.group(1) == fp:
                log.info(
                    "%s: these files are already registered as version %s; not duplicating",
                    self.name,
                    m.version,
                )
                return self._to_version(m, None)
        version = max((int(m.version) for m in models), default=0) + 1
        meta = {
            "name": self.name,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "description": description,
            "fingerprint": fp,
            "files": files,
        }
        with tempfile.TemporaryDirectory(prefix="news-signals-register-") as tmp:
            stage = Path(tmp) / self.name
            shutil.copytree(
                src, stage, ignore=shutil.ignore_patterns(SIDECAR, METRICS_FILE, GATE_FILE, VERSION_FILE)
            )
            sidecars = {
                METRICS_FILE: metrics,
                VERSION_FILE: meta,
            }
            if gate is not None:
                sidecars[GATE_FILE] = gate
            for fname, obj in sidecars.items():
                (stage / fname).write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
            model = self.mr.python.create_model(
                self.name,
                version=version,
                metrics=flat_metrics(metrics),
                description=f"{description} [fingerprint:{fp}]".strip()[:1000],
                input_example=["Storm closes the E4 motorway near Uppsala"],
            )
            try:
                model.save(str(stage))
            except Exception as exc:
                raise RegistryError(f"saving {self.name}@{version} to Hopsworks failed: {exc}") from exc
        log.info("registered %s@%s in Hopsworks", self.name, version)
        return ModelVersion(
            name=self.name,
            version=version,
            metrics=metrics,
            gate=gate,
            created_at=meta["created_at"],
            is_production=False,
            path=str(getattr(model, "model_path", "") or ""),
            description=description,
            fingerprint=fp,
        )

    def promotions(self) -> list[dict[str, Any]]:
        """The production tag's ``history`` (tags written before it existed give their own move only)."""
        prod = self._production_model(self._models())
        if prod is None:
            return []
        tag = self._tag(prod) or {}
        history = tag.get("history")
        if isinstance(history, list):
            return [dict(h) for h in history]
        return [{**_move(tag), "version": int(prod.version)}]

    def promote(self, version: int, reason: str, *, by: str = "", action: str = "promote") -> ModelVersion:
        if not reason or not reason.strip():
            raise ValueError("promote needs a reason (it is recorded on the production tag)")
        model = self.mr.get_model(self.name, int(version))
        if model is None:
            raise RegistryError(f"Hopsworks has no model {self.name} version {version}; nothing promoted")
        models = self._models()
        previous = self._production_model(models)
        move = {
            "version": int(version),
            "previous": int(previous.version) if previous is not None else None,
            "reason": reason,
            "by": by,
            "action": action,
            "promoted_at": datetime.now(UTC).isoformat(timespec="microseconds"),
        }
        tag = {**move, "production": True, "history": [*self.promotions(), move]}
        model.add_tag(PRODUCTION_TAG, tag)  # the switch: the newest promotion wins from here on
        if previous is not None and int(previous.version) != int(version):
            try:
                previous.delete_tag(PRODUCTION_TAG)
            except Exception as exc:  # harmless: production() picks the latest promoted_at
                log.warning(
                    "could not remove the production tag from %s@%s: %s", self.name, previous.version, exc
                )
        log.info("production %s: %s -> %s (%s by %s: %s)", self.name, move["previous"], version, action, by or "-", reason)
        return self._to_version(model, int(version))

    # ---- download -----------------------------------------------------------------------
    def download(self, version: int, dest: str | Path | None = None) -> Path:
        model = self.mr.get_model(self.name, int(version))
        if model is None:
            raise RegistryError(f"Hopsworks has no model {self.name} version {version}")
        target = Path(dest) if dest is not None else cache_root() / self.name / str(int(version))
        if (target / VERSION_FILE).is_file():
            try:
                verify_files(target, json.loads((target / VERSION_FILE).read_text())["files"])
                return target
            except (RegistryError, KeyError, ValueError):
                log.warning("cached copy %s is stale or corrupted; downloading again", target)
                shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            got = Path(model.download(local_path=str(tmp)))
            meta_file = got / VERSION_FILE
            if not meta_file.is_file():
                raise RegistryError(
                    f"{self.name}@{version} in Hopsworks has no {VERSION_FILE}; was it registered by news_signals?"
                )
            verify_files(got, json.loads(meta_file.read_text())["files"])
            os.replace(got, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target


def _move(tag: dict[str, Any]) -> dict[str, Any]:
    """The production-move fields of a tag value (no ``history``, no ``production`` flag)."""
    return {k: tag.get(k) for k in ("version", "previous", "reason", "by", "action", "promoted_at")}
