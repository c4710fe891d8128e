"""The model-registry interface every backend implements (local files or Hopsworks).

Versions are immutable and numbered 1, 2, …; only :meth:`ModelRegistry.promote` moves the
production pointer, so a failed registration can never change what consumers load.
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from news_signals.model.artifact import MANIFEST

# Files the registry writes beside the artifact; they are not part of the artifact's hashes.
SIDECAR = "registry.json"
METRICS_FILE = "metrics.json"
GATE_FILE = "gate.json"
# registry.json = {"name", "version"} (read by the model loader) plus created_at, description,
# fingerprint and the sha256 of every artifact file (what download() verifies).
VERSION_FILE = SIDECAR
REGISTRY_FILES = frozenset({SIDECAR, METRICS_FILE, GATE_FILE})
ARTIFACT_MANIFEST = MANIFEST  # the artifact manifest the registry checks for


class RegistryError(RuntimeError):
    """The registry could not do what was asked; production is unchanged."""


@dataclass
class ModelVersion:
    name: str
    version: int
    metrics: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    created_at: str = ""
    is_production: bool = False
    path: str | None = None
    description: str = ""
    fingerprint: str = ""  # sha256 over the artifact's file hashes: same model, same fingerprint

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(ABC):
    """register / production / promote / history / download (docs/DESIGN.md, "Registry")."""

    name: str

    @abstractmethod
    def register(
        self,
        model_dir: str | Path,
        metrics: dict[str, Any],
        gate: dict[str, Any] | None = None,
        description: str = "",
    ) -> ModelVersion:
        """Store ``model_dir`` as the next immutable version (or return the version holding the same files)."""

    @abstractmethod
    def production(self) -> ModelVersion | None:
        """The promoted version, or None before the first promotion."""

    @abstractmethod
    def promote(self, version: int, reason: str, *, by: str = "", action: str = "promote") -> ModelVersion:
        """Point production at ``version`` (atomically); who (``by``), why and when are recorded."""

    @abstractmethod
    def promotions(self) -> list[dict[str, Any]]:
        """Every production move, oldest first: version, previous, reason, by, action, promoted_at."""

    def rollback(self, version: int, reason: str, by: str) -> ModelVersion:
        """Move production back to ``version``, a version that was in production before.

        A rollback undoes a promotion; it is not a way around the gate, so a version that never
        served is refused (promote it through monthly_retrain with force_promote instead).
        """
        if not (reason or "").strip():
            raise ValueError("rollback needs --reason: why production goes back (it is recorded)")
        if not (by or "").strip():
            raise ValueError("rollback needs --by: who rolls back (it is recorded)")
        current = self.production()
        if current is None:
            raise RegistryError(f"{self.name} has no production model; there is nothing to roll back")
        if current.version == int(version):
            raise RegistryError(f"{self.name}@{version} is already production; nothing to roll back")
        served = sorted({int(p["version"]) for p in self.promotions()})
        if int(version) not in served:
            raise RegistryError(
                f"{self.name}@{version} was never in production (versions that were: {served}); a rollback "
                "only returns to one of those. To promote a new version, trigger monthly_retrain with "
                "evaluate_only=false, force_promote=true and a reason."
            )
        return self.promote(int(version), reason, by=by, action="rollback")

    @abstractmethod
    def history(self) -> list[ModelVersion]:
        """All versions, oldest first."""

    @abstractmethod
    def get(self, version: int) -> ModelVersion:
        """One version; RegistryError naming the known versions when it does not exist."""

    @abstractmethod
    def download(self, version: int, dest: str | Path | None = None) -> Path:
        """A local directory with the version's artifact, hashes verified."""


# ---- helpers shared by the backends ------------------------------------------------------------
def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def artifact_files(model_dir: str | Path) -> dict[str, str]:
    """sha256 of every artifact file (relative posix path), registry sidecars excluded."""
    root = Path(model_dir)
    out: dict[str, str] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in REGISTRY_FILES and not rel.startswith(".tmp-"):
            out[rel] = sha256_file(p)
    return out


def fingerprint(files: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def check_artifact_dir(model_dir: str | Path) -> Path:
    """Refuse anything that is not a saved model artifact, naming what is missing."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ValueError(f"model directory {path} does not exist; pass the trainer's --out directory")
    missing = [f for f in ("config.json", ARTIFACT_MANIFEST) if not (path / f).is_file()]
    if missing:
        raise ValueError(
            f"{path} is not a model artifact: missing {missing} (save it with news_signals.model.artifact)"
        )
    return path


def verify_files(path: str | Path, expected: dict[str, str]) -> None:
    """Raise RegistryError naming the first file whose sha256 differs from the registered one."""
    root = Path(path)
    for rel, digest in expected.items():
        f = root / rel
        if not f.is_file():
            raise RegistryError(f"{root}: registered file {rel} is missing")
        if sha256_file(f) != digest:
            raise RegistryError(f"{root}: {rel} does not match its registered sha256 (corrupted or modified)")


def write_json_file(path: str | Path, obj: Any) -> None:
    """Write JSON via a temp file + rename (local paths)."""
    from news_signals.core.storage import atomic_write

    atomic_write(path, json.dumps(obj, indent=2, sort_keys=True, default=str))


def flat_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Numeric top-level metrics plus per-category F1 and latency p95, for registries that want a flat dict."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int | float):
            out[key] = float(value)
    for cat, vals in (metrics.get("per_category") or {}).items():
        if isinstance(vals, dict) and isinstance(vals.get("f1"), int | float):
            out[f"f1_{cat}"] = float(vals["f1"])
    for key, value in (metrics.get("speed") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[key] = float(value)
    return {k: v for k, v in out.items() if math.isfinite(v)}
