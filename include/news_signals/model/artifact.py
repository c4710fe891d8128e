"""The model artifact of docs/CONTRACTS.md: save it whole or not at all, load it only if it is intact.

A directory holds the encoder's ``save_pretrained`` files (``config.json``,
``model.safetensors``), the tokenizer files, the heads in ``heads.safetensors``, training
records (``history.json``, ``training_curve.png``) and the ``news_signals.json`` manifest
with the taxonomy, the tag vocabularies and the sha256 of every one of those files.
Loading verifies every hash and the taxonomy before any weight is read, and reads weights
only from safetensors (never pickle), so a tampered or mismatched model is refused with
an error that names the file or category. Files added later beside the artifact by the
registry (``registry.json``, ``metrics.json``, ``gate.json``) are outside the hashed set.
The serving files built at registration (``SERVING_FILES``: the fp32 and int8 ONNX graphs, the
int8 check and the bf16 check) are optional; when present they are listed and hashed like every other file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from news_signals.core.storage import atomic_write
from news_signals.core.taxonomy import CATEGORIES, taxonomy_dict, taxonomy_fingerprint

if TYPE_CHECKING:
    from news_signals.model.modeling import MultiHeadModel

log = logging.getLogger(__name__)

MANIFEST = "news_signals.json"
SIDECAR = "registry.json"  # {"name": ..., "version": ...}, written by the registry
FORMAT_VERSION = 1
REQUIRED_FILES = ("config.json", "model.safetensors", "heads.safetensors")
# Written beside an artifact after it was saved; never hashed, never loaded as weights.
UNHASHED = frozenset({MANIFEST, SIDECAR, "metrics.json", "gate.json"})
# Built once when the model is registered (model.export.prepare_for_serving); optional, hashed when present.
ONNX_FP32 = "onnx/model.onnx"
ONNX_INT8 = "onnx/model-int8.onnx"
INT8_CHECK = "int8_check.json"
BF16_CHECK = "bf16_check.json"  # model.bf16: may this model be served in bfloat16 (no file of its own)
SERVING_FILES = (ONNX_FP32, ONNX_INT8, INT8_CHECK, BF16_CHECK)


class ArtifactError(ValueError):
    """The directory is not an intact artifact for this taxonomy (names the file or category)."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _artifact_files(directory: Path) -> list[str]:
    return sorted(
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and p.relative_to(directory).as_posix() not in UNHASHED
    )


def save_artifact(
    model: MultiHeadModel,
    tokenizer: Any,
    out_dir: str | Path,
    *,
    model_name: str,
    base_model: str,
    max_length: int,
    snapshot_id: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes | Path] | None = None,
    train_config: Mapping[str, Any] | None = None,
    presence_thresholds: Mapping[str, float] | None = None,
    languages: Sequence[str] | None = None,
    presence_keyword_blend: Mapping[str, float] | None = None,
) -> Path:
    """Write the artifact to a temporary sibling directory, then swap it into ``out_dir``.

    Whatever was in ``out_dir`` before (e.g. resumable checkpoints) is replaced only
    once the new artifact is complete, so a failure leaves the old state untouched.
    """
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{out_dir.name}-", dir=out_dir.parent))
    try:
        model.encoder.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        save_file(model.heads_state_dict(), str(tmp / "heads.safetensors"), metadata={"format": "pt"})
        for name, content in (extra_files or {}).items():
            target = tmp / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                shutil.copyfile(content, target)
        manifest = {
            "format_version": FORMAT_VERSION,
            "model_name": model_name,
            "base_model": base_model,
            "max_length": int(max_length),
            "pooling": "mean",
            "categories": list(model.categories),
            "vocabularies": {c: list(model.vocabularies[c]) for c in model.categories},
            "taxonomy": taxonomy_dict(),
            "taxonomy_fingerprint": taxonomy_fingerprint(),
            "snapshot_id": snapshot_id,
            "metrics": dict(metrics or {}),
            "train_config": dict(train_config or {}),
            # P(category present) above which a category counts as present (tuned on validation data);
            # absent for older artifacts, which use the argmax of the tag head.
            "presence_thresholds": {c: float(t) for c, t in (presence_thresholds or {}).items()},
            # per category, the weight of the keyword labeller's strength blended into P(present)
            # before its threshold (model.decoder); absent or {} = the model's own P(present)
            "presence_keyword_blend": {c: float(w) for c, w in (presence_keyword_blend or {}).items()},
            # languages the model was trained for; other languages are classified by keywords ([] = all)
            "languages": sorted(languages or []),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": {name: sha256_file(tmp / name) for name in _artifact_files(tmp)},
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
        _swap_into_place(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("saved model artifact %s (%d files hashed)", out_dir, len(manifest["files"]))
    return out_dir


def _write_manifest(directory: Path, manifest: Mapping[str, Any]) -> None:
    atomic_write(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))


def add_serving_files(directory: str | Path, files: Mapping[str, bytes]) -> dict[str, Any]:
    """Put ``files`` (names from ``SERVING_FILES``) into a verified artifact and list them, hashed.

    Serving files from an earlier build that ``files`` does not name are removed. The manifest
    first drops every serving file, then the files are written (temp + rename), then the manifest
    lists them: a crash in between leaves an intact artifact without serving files, never a
    listed file with other bytes. Returns the new manifest.
    """
    directory = Path(directory)
    unknown = sorted(set(files) - set(SERVING_FILES))
    if unknown:
        raise ValueError(f"{unknown} are not serving files; an artifact may carry only {list(SERVING_FILES)}")
    manifest = verify_artifact(directory)
    listed = {n: h for n, h in manifest["files"].items() if n not in SERVING_FILES}
    _write_manifest(directory, {**manifest, "files": listed})
    for name in SERVING_FILES:
        target = directory / name
        if name not in files:
            target.unlink(missing_ok=True)
            continue
        atomic_write(target, files[name])
    manifest = {**manifest, "files": {**listed, **{n: hashlib.sha256(b).hexdigest() for n, b in files.items()}}}
    _write_manifest(directory, manifest)
    log.info("%s: added %s to the artifact", directory, ", ".join(sorted(files)))
    return manifest


def _swap_into_place(tmp: Path, out_dir: Path) -> None:
    """Rename ``tmp`` to ``out_dir``; an existing ``out_dir`` is moved aside first and removed after."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".old-{out_dir.name}-{uuid.uuid4().hex[:8]}")
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except BaseException:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def read_manifest(directory: str | Path) -> dict[str, Any]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"model directory {directory} does not exist; train one with `python -m news_signals train`")
    path = directory / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{path} is missing: {directory} is not a news-signals model artifact")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ArtifactError(f"{path} has no 'files' table of sha256 hashes")
    return manifest


def manifest_hash(directory: str | Path) -> str:
    """sha256 of the manifest bytes: changes whenever any hashed file changes."""
    return sha256_file(Path(directory) / MANIFEST)


def verify_artifact(directory: str | Path) -> dict[str, Any]:
    """Check every file hash and the taxonomy; return the manifest or raise ArtifactError."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    files: dict[str, str] = manifest["files"]
    for required in REQUIRED_FILES:
        if required not in files:
            raise ArtifactError(f"{directory}: the manifest does not list {required}; the artifact is incomplete")
    for name, expected in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: file {name} listed in {MANIFEST} is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise ArtifactError(
                f"{directory}: file {name} does not match its sha256 in {MANIFEST} "
                f"(expected {expected[:12]}…, got {actual[:12]}…); the artifact was modified or corrupted"
            )
    unlisted = [n for n in _artifact_files(directory) if n not in files]
    if unlisted:
        log.warning("%s: ignoring files not in the manifest: %s", directory, unlisted)
    check_taxonomy(manifest, directory)
    return manifest


def check_taxonomy(manifest: Mapping[str, Any], directory: str | Path = "") -> None:
    """Refuse a model whose categories or tag vocabularies differ from news_signals.core.taxonomy."""
    current = taxonomy_dict()
    categories = list(manifest.get("categories") or [])
    vocabularies = manifest.get("vocabularies") or {}
    for c in CATEGORIES:
        if c not in categories:
            raise ArtifactError(f"{directory}: the model has no head for category {c!r}; retrain it on this taxonomy")
        if list(vocabularies.get(c, []))[1:] != current[c] or list(vocabularies.get(c, [""]))[:1] != [""]:
            raise ArtifactError(
                f"{directory}: category {c!r} tag vocabulary {vocabularies.get(c)} differs from the taxonomy "
                f"{[''] + current[c]}; retrain the model on this taxonomy"
            )
    extra = [c for c in categories if c not in CATEGORIES]
    if extra:
        raise ArtifactError(f"{directory}: the model has categories {extra} that the taxonomy does not know")
    if categories != list(CATEGORIES):
        raise ArtifactError(f"{directory}: the model's category order {categories} differs from {list(CATEGORIES)}")
    if manifest.get("taxonomy_fingerprint") != taxonomy_fingerprint():
        raise ArtifactError(
            f"{directory}: taxonomy fingerprint {manifest.get('taxonomy_fingerprint')} != {taxonomy_fingerprint()}"
        )


@dataclass
class LoadedArtifact:
    model: MultiHeadModel
    tokenizer: Any
    manifest: dict[str, Any]
    path: Path
    manifest_sha256: str = ""
    sidecar: dict[str, Any] = field(default_factory=dict)

    @property
    def max_length(self) -> int:
        return int(self.manifest.get("max_length", 64))

    def listed(self, name: str) -> Path | None:
        """The path of ``name`` when the (verified) manifest lists it, else None."""
        return self.path / name if name in (self.manifest.get("files") or {}) else None


def read_sidecar(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / SIDECAR
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON ({exc.msg})") from exc
    return data if isinstance(data, dict) else {}


def load_artifact(directory: str | Path) -> LoadedArtifact:
    """Verify hashes and taxonomy, then load encoder, tokenizer and heads (safetensors, local files only)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from news_signals.model.modeling import MultiHeadModel

    directory = Path(directory).resolve()
    manifest = verify_artifact(directory)
    digest = manifest_hash(directory)
    try:
        encoder = AutoModel.from_pretrained(directory, local_files_only=True, use_safetensors=True)
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - hashes matched, so this is an incompatible artifact
        raise ArtifactError(f"{directory}: the encoder or tokenizer cannot be loaded: {exc}") from exc
    model = MultiHeadModel(encoder, manifest["categories"], manifest["vocabularies"])
    try:
        model.load_heads_state_dict(load_file(str(directory / "heads.safetensors")))
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"{directory}: heads.safetensors does not fit the model: {exc}") from exc
    model.eval()
    return LoadedArtifact(model, tokenizer, manifest, directory, digest, read_sidecar(directory))
