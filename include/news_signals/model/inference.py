"""The trained model as a ``Classifier``: predictor (torch or ONNX) + decoder + language routing.

``ModelClassifier.from_dir(dir)`` loads a verified artifact (one per process, keyed by the
directory and the manifest hash) and picks what to run, from files only (nothing is exported
or quantized here; ``model.export`` builds the ONNX files when the model is registered):

* ``auto`` (default) on CPU: on a CPU with bf16 instructions (AMX, AVX-512 BF16: ``model.bf16``),
  torch in bf16 when the artifact's bf16 check (``bf16_check.json``) passed and bf16 is not
  switched off (``bf16=False``, ``--no-bf16``, ``NEWS_SIGNALS_BF16=0``); else the checked int8
  graph (``onnx/model-int8.onnx``) when its registration check passed and int8 is not switched
  off (``int8=False``, ``--no-int8``, ``NEWS_SIGNALS_INT8=0``); else the fp32 graph
  (``onnx/model.onnx``); else torch. On CUDA, and for an in-memory model (the trainer's
  validation pass), torch.
* ``onnx``: the same but an error (``OnnxUnavailable``) instead of torch when the artifact has
  no usable ONNX file. ``torch``: the loaded model (``quantize=True``: torch's dynamic int8,
  unchecked, for the bench only).

``backend`` (torch or onnx), ``precision`` (fp32, bf16 or the int8 recipe) and ``backend_reason``
say what runs and why; ``int8_check`` / ``bf16_check`` are the artifact's registration reports
(None when it has none).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from news_signals.core.taxonomy import Signals
from news_signals.model.artifact import (
    BF16_CHECK,
    INT8_CHECK,
    ONNX_FP32,
    ONNX_INT8,
    LoadedArtifact,
    load_artifact,
    manifest_hash,
)
from news_signals.model.bf16 import Bf16Engine, native_bf16
from news_signals.model.decoder import Decoder
from news_signals.model.predictor import Prediction, Predictor, TorchEngine, length_batches
from news_signals.model.routing import LanguageRouter

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")
__all__ = ["BACKENDS", "ModelClassifier", "Prediction", "cached_artifact", "clear_cache"]

_CACHE: dict[tuple[str, str, bool], LoadedArtifact] = {}
_CACHE_LOCK = threading.Lock()


def cached_artifact(directory: str | Path, quantize: bool = False) -> LoadedArtifact:
    """One loaded model per (directory, manifest hash, torch-quantized) per process."""
    directory = Path(directory).resolve()
    from news_signals.model.artifact import read_manifest

    read_manifest(directory)  # clear error before hashing a missing file
    key = (str(directory), manifest_hash(directory), quantize)
    with _CACHE_LOCK:
        art = _CACHE.get(key)
        if art is None:
            art = load_artifact(directory)
            if quantize:
                art.model = quantize_dynamic(art.model)
            _CACHE[key] = art
            log.info("loaded model %s (%s)", directory, key[1][:12])
        return art


def clear_cache() -> None:
    """Forget loaded models and ONNX Runtime sessions."""
    from news_signals.model.onnx_runtime import clear_sessions

    with _CACHE_LOCK:
        _CACHE.clear()
    clear_sessions()


def quantize_dynamic(model: Any) -> Any:
    """torch's dynamic int8 of every nn.Linear (CPU only, unchecked): the bench's comparison."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def _agreement(report: dict[str, Any]) -> str:
    """``": tags agree on …"`` from a stored check report, for backend_reason ("" without figures)."""
    if "tag_agreement" not in report:
        return ""
    return (f": tags agree on {report['tag_agreement']:.2%} of cells, {report['present_tag_agreement']:.2%} "
            "of present cells")


def read_int8_check(artifact: LoadedArtifact) -> dict[str, Any] | None:
    """The registration's int8 check stored in the artifact, or None."""
    return _read_check(artifact, INT8_CHECK)


def read_bf16_check(artifact: LoadedArtifact) -> dict[str, Any] | None:
    """The registration's bf16 check stored in the artifact, or None."""
    return _read_check(artifact, BF16_CHECK)


def _read_check(artifact: LoadedArtifact, name: str) -> dict[str, Any] | None:
    import json

    path = artifact.listed(name)
    return json.loads(path.read_text(encoding="utf-8")) if path is not None else None


class ModelClassifier:
    """The trained multi-head model as a Classifier (``name = "model:<name>@<version>"``)."""

    def __init__(
        self,
        artifact: LoadedArtifact,
        *,
        threads: int | None = None,
        batch_size: int = 64,
        device: str | None = None,
        backend: str = "auto",
        int8: bool = True,
        bf16: bool = True,
    ) -> None:
        import torch

        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {BACKENDS}")
        self.artifact = artifact
        self.threads = threads
        self.batch_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = artifact.model.to(self.device)
        self.tokenizer = artifact.tokenizer
        self.max_length = artifact.max_length
        manifest = artifact.manifest
        self.categories = tuple(manifest["categories"])
        self.vocabularies = {c: tuple(v) for c, v in manifest["vocabularies"].items()}
        self.decoder = Decoder.from_manifest(manifest)
        self.thresholds = self.decoder.thresholds
        # Languages the model was trained for (manifest ``languages``; empty = all); the others go to keywords.
        self.router = LanguageRouter(manifest.get("languages") or [])
        self.languages = self.router.languages
        sidecar = artifact.sidecar
        self.model_name = sidecar.get("name") or manifest.get("model_name") or "news_signals"
        self.version = sidecar.get("version", "local")
        self.name = f"model:{self.model_name}@{self.version}"
        self.label = f"{self.model_name}@{self.version}"
        self.int8_check = read_int8_check(artifact) if artifact.manifest_sha256 else None
        self.bf16_check = read_bf16_check(artifact) if artifact.manifest_sha256 else None
        self.int8_recipe: str | None = None  # the int8 recipe served, None when fp32 (or torch) is
        self.onnx: Any = None
        engine, self.backend, self.backend_reason = self._choose(backend, int8, bf16)
        self.precision = "bf16" if isinstance(engine, Bf16Engine) else self.int8_recipe or "fp32"
        self.predictor = Predictor(
            engine, self.tokenizer, max_length=self.max_length, categories=self.categories,
            vocabularies=self.vocabularies, batch_size=batch_size,
        )

    @property
    def int8_checks(self) -> dict[str, dict[str, Any]]:
        """Every int8 recipe the registration tried: its agreement report (empty without a check)."""
        recipes = (self.int8_check or {}).get("recipes") or {}
        return {r: v.get("report", {}) for r, v in recipes.items()}

    # ---- which engine, from the artifact's files only ----------------------------------------
    def _choose(self, requested: str, int8: bool, bf16: bool) -> tuple[Any, str, str]:
        """(engine, ``torch`` or ``onnx``, why); ``auto`` uses bf16 torch when it may, else ONNX,
        else torch."""
        torch_engine = TorchEngine(self.model, self.device, self.threads)
        if requested == "torch":
            return torch_engine, "torch", "torch requested"
        if requested == "auto" and self.device.type != "cpu":
            return torch_engine, "torch", f"auto: torch on {self.device.type}"
        if requested == "auto" and not self.artifact.manifest_sha256:
            return torch_engine, "torch", "auto: torch for an in-memory model (no verified artifact files)"
        if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in self.model.modules()):
            if requested == "onnx":  # the artifact's ONNX files are the fp32 model's
                raise ValueError("backend='onnx' needs the fp32 model; load it with from_dir(..., backend='onnx')")
            return torch_engine, "torch", "auto: torch for a torch-quantized model"
        why_not_bf16 = ""
        if requested == "auto":
            bf16_ok, why_not_bf16 = self._bf16_choice(bf16)
            if bf16_ok:
                return Bf16Engine(self.model, self.device, self.threads), "torch", f"auto: torch bf16 ({why_not_bf16}) on CPU"
        from news_signals.model.onnx_runtime import OnnxUnavailable, load_session

        files = self.artifact.manifest.get("files") or {}
        try:
            if not self.artifact.manifest_sha256:
                raise OnnxUnavailable("the artifact has no verified manifest hash (load it with load_artifact)")
            if ONNX_FP32 not in files:
                raise OnnxUnavailable(
                    f"the artifact carries no {ONNX_FP32} (ONNX files are built when a model is registered: "
                    "news_signals.model.export.prepare_for_serving)"
                )
            variant, why = self._int8_choice(int8, files)
            name = ONNX_INT8 if variant != "fp32" else ONNX_FP32
            self.onnx = load_session(self.artifact.path / name, files[name], self.threads)
        except OnnxUnavailable as exc:
            if requested == "onnx":
                raise
            log.warning("ONNX Runtime backend unavailable for %s, using torch: %s", self.name, exc)
            return torch_engine, "torch", f"auto: torch because the ONNX backend is unavailable ({exc})"
        if self.onnx.categories != self.categories:
            raise OnnxUnavailable(f"{name} outputs {self.onnx.categories}, the model has {self.categories}")
        if variant != "fp32":
            self.int8_recipe = variant
        bf16_note = f"; bf16 not served: {why_not_bf16}" if why_not_bf16 else ""
        return self.onnx, "onnx", f"{requested}: ONNX Runtime ({why}) on CPU{bf16_note}"

    def _bf16_choice(self, bf16: bool) -> tuple[bool, str]:
        """(serve bf16?, why or why not) from the stored bf16 check and this CPU."""
        check = self.bf16_check
        if not bf16:
            return False, "switched off"
        if check is None:
            return False, f"the artifact has no {BF16_CHECK} (registered before bf16 was checked at registration)"
        if not check.get("passed"):
            return False, f"rejected at registration: {'; '.join(check.get('failures') or []) or 'no verdict'}"
        flag = native_bf16()
        if not flag:
            return False, "this CPU has no bf16 instructions (AMX, AVX-512 BF16), where bf16 is slower than fp32"
        return True, f"{flag} on this CPU; within the tolerance at registration{_agreement(check.get('report') or {})}"

    def _int8_choice(self, int8: bool, files: dict[str, str]) -> tuple[str, str]:
        """(``fp32`` or the int8 recipe, words for backend_reason) from the stored int8 check."""
        check = self.int8_check
        if not int8:
            return "fp32", "fp32; int8 switched off"
        if check is None:
            return "fp32", f"fp32; the artifact has no {INT8_CHECK} (registered before int8 was built at registration)"
        served = check.get("served")
        if not served or ONNX_INT8 not in files:
            return "fp32", f"fp32; int8 rejected at registration: {check.get('reason') or 'no recipe passed'}"
        report = (check.get("recipes") or {}).get(served, {}).get("report") or {}
        return served, f"{served}, within the int8 tolerance at registration{_agreement(report)}"

    @classmethod
    def from_dir(
        cls,
        directory: str | Path,
        threads: int | None = None,
        *,
        quantize: bool = False,
        batch_size: int = 64,
        backend: str = "auto",
        int8: bool = True,
        bf16: bool = True,
    ) -> ModelClassifier:
        """Load (or reuse) the artifact in ``directory``; ArtifactError when it is not intact.

        ``int8``: serve the artifact's checked int8 graph when it has one (the default); ``False``
        serves fp32. ``bf16``: on a CPU with bf16 instructions, serve the model in bf16 when its
        registration check passed (the default, with ``backend="auto"``). ``quantize`` with ``backend="torch"`` is torch's dynamic int8, unchecked
        (bench only); it is ignored by the other backends.
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {BACKENDS}")
        return cls(
            cached_artifact(directory, quantize=quantize and backend == "torch"),
            threads=threads, batch_size=batch_size, backend=backend, int8=int8, bf16=bf16,
        )

    # ---- raw outputs ---------------------------------------------------------------------------
    def batches(self, texts: Sequence[str], size: int) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """(input positions, input_ids, attention_mask) per batch, sorted by length, padded per batch."""
        return length_batches(self.tokenizer, texts, self.max_length, size)

    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> Prediction:
        """Scores and tag probabilities (no language routing); batches of similar length. When the
        model blends keyword evidence into P(present), the keyword strengths come with it."""
        pred = self.predictor.predict(texts, batch_size)
        return self.decoder.attach_keywords(pred, texts, self.router.keywords if self.decoder.keyword_blend else None)

    def to_signals(self, pred: Prediction) -> list[Signals]:
        return self.decoder.to_signals(pred)

    # ---- the Classifier protocol ---------------------------------------------------------------
    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        signals, _ = self.classify_with_presence(texts)
        return signals

    def classify_named(self, texts: Sequence[str]) -> tuple[list[Signals], list[str]]:
        """Signals and, per text, who classified it: this model, or ``keywords`` for other languages."""
        signals, _, names = self.router.route(texts, self._model_signals, self.name)
        return signals, names

    def classify_with_presence(self, texts: Sequence[str]) -> tuple[list[Signals], np.ndarray]:
        """Signals plus P(present) per category, so evaluation can rank categories (top-k)."""
        signals, presence, _ = self.router.route(texts, self._model_signals, self.name)
        return signals, presence

    def other_language(self, texts: Sequence[str]) -> list[bool]:
        """True for texts detected as a language outside ``languages`` (unsure texts stay with the model)."""
        return self.router.other_language(texts)

    @property
    def keywords(self) -> Any:
        return self.router.keywords

    def _model_signals(self, texts: list[str]) -> tuple[list[Signals], np.ndarray]:
        pred = self.predict(texts)
        return self.to_signals(pred), self.decoder.presence(pred)

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
        """Per text, the k categories most likely present with P(present), best first."""
        presence = self.decoder.presence(self.predict(texts))
        order = np.argsort(-presence, axis=1, kind="stable")[:, :k]
        return [[(self.categories[j], float(presence[i, j])) for j in row] for i, row in enumerate(order)]
