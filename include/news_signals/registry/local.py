"""The default registry: immutable version directories under ``registry/<model_name>/``.

Layout (docs/CONTRACTS.md): ``<version>/`` holds the artifact plus ``metrics.json``, ``gate.json``
and the ``registry.json`` sidecar (name, version, file hashes, created_at, description);
``production`` names the promoted version and is replaced atomically by
:meth:`LocalRegistry.promote` only (a rollback is a promote with ``action="rollback"``);
``promotions.json`` keeps the log of every move: who, when, why.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from news_signals.core.storage import Storage
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
    verify_files,
)

log = logging.getLogger(__name__)

PRODUCTION_FILE = "production"
PROMOTIONS_FILE = "promotions.json"


def cache_root() -> Path:
    """Where remote registries' versions are downloaded (``$NEWS_SIGNALS_CACHE`` or ~/.cache/news_signals)."""
    from news_signals.core.config import Settings

    return Path(Settings.from_env().cache or Path.home() / ".cache" / "news_signals") / "models"


class LocalRegistry(ModelRegistry):
    """File-based registry on any fsspec filesystem the Storage root points at."""

    def __init__(self, model_name: str, storage: Storage | None = None) -> None:
        self.name = model_name
        self.storage = storage or Storage()
        self.fs = self.storage.fs
        self.root = self.storage.registry_dir(model_name)
        self._is_local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )

    # ---- reading ------------------------------------------------------------------------
    def _version_dir(self, version: int) -> str:
        return posixpath.join(self.root, str(int(version)))

    def _versions(self) -> list[int]:
        if not self.fs.exists(self.root):
            return []
        out = []
        for entry in self.fs.ls(self.root, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name.isdigit() and self.fs.exists(posixpath.join(entry, VERSION_FILE)):
                out.append(int(name))
        return sorted(out)

    def _production_version(self) -> int | None:
        target = posixpath.join(self.root, PRODUCTION_FILE)
        if not self.fs.exists(target):
            return None
        return int(self.storage.read_json(target)["version"])

    def _load(self, version: int, production: int | None) -> ModelVersion:
        vdir = self._version_dir(version)
        meta = self.storage.read_json(posixpath.join(vdir, VERSION_FILE))
        gate_path = posixpath.join(vdir, GATE_FILE)
        return ModelVersion(
            name=self.name,
            version=version,
            metrics=self.storage.read_json(posixpath.join(vdir, METRICS_FILE)),
            gate=self.storage.read_json(gate_path) if self.fs.exists(gate_path) else None,
            created_at=meta.get("created_at", ""),
            is_production=production == version,
            path=self.storage.url(vdir),
            description=meta.get("description", ""),
            fingerprint=meta.get("fingerprint", ""),
        )

    def history(self) -> list[ModelVersion]:
        prod = self._production_version()
        return [self._load(v, prod) for v in self._versions()]

    def get(self, version: int) -> ModelVersion:
        versions = self._versions()
        if int(version) not in versions:
            raise RegistryError(
                f"{self.name} has no version {version}; registered versions: {versions or 'none'}"
            )
        return self._load(int(version), self._production_version())

    def production(self) -> ModelVersion | None:
        prod = self._production_version()
        return None if prod is None else self._load(prod, prod)

    def promotions(self) -> list[dict[str, Any]]:
        """Every production move ever made (version, previous, reason, by, action, promoted_at), oldest first."""
        target = posixpath.join(self.root, PROMOTIONS_FILE)
        return self.storage.read_json(target) if self.fs.exists(target) else []

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
        for existing in self.history():
            if existing.fingerprint == fp:
                log.info(
                    "%s: these artifact files are already registered as version %s; not duplicating",
                    self.name,
                    existing.version,
                )
                return existing
        meta = {
            "name": self.name,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "description": description,
            "fingerprint": fp,
            "files": files,
        }
        self.fs.makedirs(self.root, exist_ok=True)
        for _attempt in range(5):  # another writer may claim the same number: take the next one
            version = (max(self._versions(), default=0)) + 1
            tmp = posixpath.join(self.root, f".tmp-{uuid.uuid4().hex}")
            try:
                self._stage(src, tmp, version, {**meta, "version": version}, metrics, gate)
                if self._claim(tmp, self._version_dir(version)):
                    log.info("registered %s@%s from %s", self.name, version, src)
                    return self.get(version)
            finally:
                if self.fs.exists(tmp):
                    self.fs.rm(tmp, recursive=True)
        raise RegistryError(f"could not allocate a new version number for {self.name} under {self.root}")

    def _stage(self, src: Path, tmp: str, version: int, meta: dict, metrics: dict, gate: dict | None) -> None:
        self.fs.makedirs(tmp, exist_ok=True)
        for rel in meta["files"]:
            target = posixpath.join(tmp, rel)
            self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
            self.fs.put_file(str(src / rel), target)
        sidecars = {
            METRICS_FILE: metrics,
            VERSION_FILE: meta,
        }
        if gate is not None:
            sidecars[GATE_FILE] = gate
        for fname, obj in sidecars.items():
            with self.fs.open(posixpath.join(tmp, fname), "wb") as fh:
                fh.write(json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def _claim(self, tmp: str, target: str) -> bool:
        """Rename the staged directory to its version number; False when that number is taken."""
        if self._is_local:
            try:
                os.rename(tmp, target)  # atomic; fails when target exists and is not empty
                return True
            except OSError:
                return False
        if self.fs.exists(target):
            return False
        self.fs.mv(tmp, target, recursive=True)
        return True

    def promote(self, version: int, reason: str, *, by: str = "", action: str = "promote") -> ModelVersion:
        if not reason or not reason.strip():
            raise ValueError("promote needs a reason (it is recorded in the promotion log)")
        mv = self.get(version)  # raises for an unknown version before anything moves
        self.verify(version)
        previous = self._production_version()
        record = {
            "version": mv.version,
            "reason": reason,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "previous": previous,
            "by": by,
            "action": action,
        }
        self.storage.write_json(posixpath.join(self.root, PRODUCTION_FILE), record)  # the atomic switch
        try:
            self.storage.write_json(posixpath.join(self.root, PROMOTIONS_FILE), [*self.promotions(), record])
        except Exception as exc:  # the switch happened; a lost log line must not hide that
            log.warning(
                "promoted %s@%s but could not append to the promotion log: %s", self.name, version, exc
            )
        log.info("production %s: %s -> %s (%s by %s: %s)", self.name, previous, mv.version, action, by or "-", reason)
        return self.get(version)

    # ---- download -----------------------------------------------------------------------
    def verify(self, version: int) -> None:
        """Raise RegistryError when a stored file no longer matches its registered hash."""
        vdir = self._version_dir(version)
        meta = self.storage.read_json(posixpath.join(vdir, VERSION_FILE))
        if self._is_local:
            verify_files(vdir, meta["files"])

    def download(self, version: int, dest: str | Path | None = None) -> Path:
        mv = self.get(version)
        vdir = self._version_dir(mv.version)
        meta = self.storage.read_json(posixpath.join(vdir, VERSION_FILE))
        if dest is None and self._is_local:
            verify_files(vdir, meta["files"])  # immutable and already local: no copy needed
            return Path(vdir)
        target = Path(dest) if dest is not None else cache_root() / self.name / str(mv.version)
        if target.is_dir():
            try:
                verify_files(target, meta["files"])
                return target
            except RegistryError:
                log.warning("cached copy %s is stale or corrupted; downloading again", target)
                shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=target.parent))
        try:
            for rel in [*meta["files"], SIDECAR]:
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(posixpath.join(vdir, rel), str(tmp / rel))
            verify_files(tmp, meta["files"])
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target
