"""Fast CPU/GPU inference with a saved artifact, behind the ``Classifier`` protocol.

Why it is fast compared with the replaced system (one article at a time padded to 512):
texts are sorted by token length and cut into batches so each batch is padded only to
its own longest headline (length bucketing + dynamic padding), truncation is at the
artifact's ``max_length`` (64 for headlines), everything runs under
``torch.inference_mode``, and the loaded model is cached once per process, keyed by the
directory and the manifest hash (so a retrained model in the same place is reloaded).

Backends: ``torch`` runs the model as loaded; ``onnx`` runs the same model exported to
ONNX and optimized by ONNX Runtime (fused attention / LayerNorm / GELU; see
``news_signals.model.onnx_runtime``), which gives the same outputs within float rounding
(tested at 1e-4, measured ~1e-6), is as fast as torch on an uncontended CPU and 1.6-2x
faster when the cores are shared (its threads do not spin; see docs/MODEL.md). ``auto`` (the default) is ``onnx`` on
CPU and ``torch`` on CUDA; when the ONNX backend cannot be built (onnxruntime missing, export
or cache failure) ``auto`` logs a warning with the reason and uses torch. Optionally the
linear layers are quantized to int8 (``quantize=True``): with ``auto`` / ``onnx`` on CPU it is
ONNX Runtime's dynamic int8: the fastest recipe of ``onnx_runtime.INT8_RECIPES`` (all of the
encoder's MatMul/Attention, then the same with the FFN down-projections kept in fp32) that
passes the contract-level check of ``news_signals.model.int8_check`` for this artifact (else
fp32, with the reasons logged); ``torch`` gives torch's dynamic int8, unchecked (bench only).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals
from news_signals.model.artifact import LoadedArtifact, load_artifact, manifest_hash

log = logging.getLogger(__name__)

BACKENDS = ("auto", "torch", "onnx")

_CACHE: dict[tuple[str, str, bool], LoadedArtifact] = {}
_CACHE_LOCK = threading.Lock()


def cached_artifact(directory: str | Path, quantize: bool = False) -> LoadedArtifact:
    """One loaded model per (directory, manifest hash, quantized) per process."""
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
    """Forget loaded models and ONNX Runtime sessions (the on-disk ONNX cache stays)."""
    from news_signals.model.onnx_runtime import clear_sessions

    with _CACHE_LOCK:
        _CACHE.clear()
    clear_sessions()


def quantize_dynamic(model: Any) -> Any:
    """int8 dynamic quantization of every nn.Linear (CPU only); outputs stay close, see bench/."""
    import torch

    return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


@dataclass
class Prediction:
    """Raw head outputs for a batch of texts, in input order."""

    scores: np.ndarray  # [n, n_categories] in [-1, 1]
    tag_probs: dict[str, np.ndarray]  # category -> [n, len(vocabulary)]

    def presence(self) -> np.ndarray:
        """P(category present) = 1 - P(tag == absent), [n, n_categories]; ranks categories."""
        return np.stack([1.0 - self.tag_probs[c][:, 0] for c in self.tag_probs], axis=1)


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
        onnx_variant: str = "fp32",
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
        self.categories = tuple(artifact.manifest["categories"])
        self.vocabularies = {c: tuple(v) for c, v in artifact.manifest["vocabularies"].items()}
        # Per-category P(present) thresholds tuned on the validation split at training time; a
        # category without one (or an older artifact) uses the argmax of its tag head.
        self.thresholds = {
            c: float(t) for c, t in (artifact.manifest.get("presence_thresholds") or {}).items() if c in self.categories
        }
        # Languages the model was trained for (manifest ``languages``; empty = all). A text the
        # keyword labeller's language detector places in another language goes to keywords instead:
        # an English-only encoder guesses on Swedish, the lexicon knows both.
        self.languages = frozenset(artifact.manifest.get("languages") or [])
        self._keywords: Any = None
        sidecar = artifact.sidecar
        name = sidecar.get("name") or artifact.manifest.get("model_name") or "news_signals"
        version = sidecar.get("version", "local")
        self.name = f"model:{name}@{version}"
        self.onnx = None
        self.int8_checks: dict[str, dict[str, Any]] = {}  # every int8 recipe tried: its check report
        self.int8_recipe: str | None = None  # the int8 recipe served, None when fp32 (or torch) is
        self.backend, self.backend_reason = self._choose_backend(backend, onnx_variant)

    def _choose_backend(self, requested: str, variant: str) -> tuple[str, str]:
        """``torch`` or ``onnx`` and why; ``auto`` falls back to torch with a warning naming the reason."""
        if requested == "torch":
            return "torch", "torch requested"
        if requested == "auto" and self.device.type != "cpu":
            return "torch", f"auto: torch on {self.device.type}"
        if requested == "auto" and not self.artifact.manifest_sha256:
            return "torch", "auto: torch for an in-memory model (no verified manifest hash to key an ONNX export)"
        if any(type(m).__module__.startswith("torch.ao.nn.quantized") for m in self.model.modules()):
            if requested == "onnx":  # the ONNX file is keyed by the artifact: it would be the fp32 model
                raise ValueError("backend='onnx' needs the fp32 model; use from_dir(..., backend='onnx', quantize=True)")
            return "torch", "auto: torch for a torch-quantized model"
        from news_signals.model.onnx_runtime import OnnxUnavailable, load_onnx

        try:
            self.onnx = load_onnx(self.artifact, self.threads, "fp32")  # int8: the reference of its check
        except OnnxUnavailable as exc:
            if requested == "onnx":
                raise
            log.warning("ONNX Runtime backend unavailable for %s, using torch: %s", self.name, exc)
            return "torch", f"auto: torch because the ONNX backend is unavailable ({exc})"
        if tuple(self.onnx.categories) != self.categories:  # guarded by the cache record; belt and braces
            raise RuntimeError(f"ONNX outputs {self.onnx.categories} differ from the model's {self.categories}")
        if variant == "int8":
            return self._choose_int8(requested)
        return "onnx", f"{requested}: ONNX Runtime ({variant}, {self.onnx.record.get('exporter')} export) on CPU"

    def _choose_int8(self, requested: str) -> tuple[str, str]:
        """The fastest int8 recipe (``INT8_RECIPES``) that passes the int8 check, else fp32 with the
        reasons. An int8 model whose check cannot run is never served."""
        import functools

        from news_signals.model import int8_check
        from news_signals.model.onnx_runtime import INT8_RECIPES, drop_session, load_onnx

        fp32 = self.onnx

        @functools.cache
        def reference() -> tuple[list[str], list[Signals]]:  # the check's texts and fp32 outputs, made once
            texts = int8_check.verification_texts(sorted(self.languages))
            return texts, self.to_signals(self.predict(texts, session=fp32))

        refused = []
        for recipe in INT8_RECIPES:
            try:
                self.onnx = load_onnx(self.artifact, self.threads, recipe)
                missed = self._check_int8(recipe, reference)
            except Exception as exc:  # noqa: BLE001 - an unchecked int8 model is never served
                refused.append(f"{recipe}: the int8 check could not run ({type(exc).__name__}: {exc})")
                drop_session(self.artifact, self.threads, recipe)
                break  # the next recipe's check would fail the same way
            if not missed:
                self.int8_recipe = recipe
                return "onnx", (f"{requested}: ONNX Runtime ({recipe}, within the int8 tolerance, "
                                f"{self.onnx.record.get('exporter')} export) on CPU")
            refused.append(f"{recipe}: {'; '.join(missed)}")
            drop_session(self.artifact, self.threads, recipe)
        log.warning("no int8 model of %s is within the int8 tolerance, using fp32: %s", self.name, " | ".join(refused))
        self.onnx = fp32
        return "onnx", f"{requested}: ONNX Runtime (fp32; int8 rejected: {' | '.join(refused)}) on CPU"

    @property
    def int8_check(self) -> dict[str, Any] | None:
        """The int8 check report of the recipe served, else of the last one tried (None: int8 not asked for,
        or its check could not run)."""
        if self.int8_recipe is not None:
            return self.int8_checks[self.int8_recipe]
        return list(self.int8_checks.values())[-1] if self.int8_checks else None

    def _check_int8(self, recipe: str, reference: Callable[[], tuple[list[str], list[Signals]]]) -> list[str]:
        """Compare the loaded int8 session with fp32 (``reference()``: the check's texts and fp32 outputs)
        on the classify contract (``int8_check``); the verdict is cached beside the ONNX files, keyed by
        the int8 file's hash. Returns what it missed."""
        import json

        from news_signals.model import int8_check
        from news_signals.model.onnx_runtime import cache_dir, write_atomic

        assert self.onnx is not None
        path = cache_dir(self.artifact.manifest_sha256) / f"model-{recipe}.check.json"
        key = {
            "check_version": int8_check.CHECK_VERSION,
            "int8_onnx_sha256": self.onnx.record.get("onnx_sha256"),
            "tolerance": int8_check.TOLERANCE.as_dict(),
            "presence_thresholds": self.thresholds,
            "languages": sorted(self.languages),
        }
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if all(cached.get(k) == v for k, v in key.items()):
                self.int8_checks[recipe] = cached["report"]
                return list(cached["failures"])
        except (OSError, ValueError, KeyError, AttributeError):
            pass
        texts, expected = reference()
        report = int8_check.compare_signals(expected, self.to_signals(self.predict(texts, session=self.onnx)))
        missed = int8_check.failures(report)
        self.int8_checks[recipe] = report
        log.info("int8 check of %s (%s): %s (%s)", self.name, recipe, int8_check.summary(report),
                 "; ".join(missed) or "within tolerance")
        try:
            write_atomic(path, json.dumps({**key, "recipe": recipe, "report": report, "failures": missed}, indent=2).encode())
        except OSError as exc:
            log.debug("could not cache the int8 check: %s", exc)
        return missed

    @classmethod
    def from_dir(
        cls,
        directory: str | Path,
        threads: int | None = None,
        *,
        quantize: bool = False,
        batch_size: int = 64,
        backend: str = "auto",
    ) -> ModelClassifier:
        """Load (or reuse) the artifact in ``directory``; ArtifactError when it is not intact.

        ``quantize`` with ``auto`` / ``onnx`` is ONNX Runtime's dynamic int8, used when it passes the
        int8 check (``self.int8_check``; else fp32, said in ``backend_reason``); with ``torch`` it is
        torch's dynamic int8, unchecked. A CUDA device ignores it (``auto`` runs torch fp32 there).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown inference backend {backend!r}; choose one of {BACKENDS}")
        torch_int8 = quantize and backend == "torch"
        return cls(
            cached_artifact(directory, quantize=torch_int8),
            threads=threads,
            batch_size=batch_size,
            backend=backend,
            onnx_variant="int8" if quantize else "fp32",
        )

    # ---- raw outputs ---------------------------------------------------------------------------
    def batches(self, texts: Sequence[str], size: int) -> list[tuple[list[int], np.ndarray, np.ndarray]]:
        """(input positions, input_ids, attention_mask) per batch: sorted by token length, each
        padded (right side) only to its own longest text."""
        enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length, padding=False)
        ids = enc["input_ids"]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        pad_id = self.tokenizer.pad_token_id or 0
        out = []
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            width = max(len(ids[i]) for i in idx)
            batch = np.full((len(idx), width), pad_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                batch[row, : len(ids[i])] = ids[i]
                mask[row, : len(ids[i])] = 1
            out.append((idx, batch, mask))
        return out

    def predict(self, texts: Sequence[str], batch_size: int | None = None, *, session: Any = None) -> Prediction:
        """Scores and tag probabilities; batches of similar length, each padded to its own longest.
        ``session``: an ONNX model to run instead of this classifier's backend (the int8 check)."""
        texts = [t if isinstance(t, str) else "" for t in texts]
        n, size = len(texts), int(batch_size or self.batch_size)
        scores = np.zeros((n, len(self.categories)), dtype=np.float32)
        probs = {c: np.zeros((n, len(self.vocabularies[c])), dtype=np.float32) for c in self.categories}
        if n == 0:
            return Prediction(scores, probs)
        batches = self.batches(texts, size)
        session = session or self.onnx
        if session is not None:
            for idx, batch, mask in batches:
                s, p = session.run(batch, mask)
                scores[idx] = s
                for c, pc in zip(self.categories, p, strict=True):
                    probs[c][idx] = pc
            return Prediction(scores, probs)
        import torch

        if self.threads:
            torch.set_num_threads(int(self.threads))
        self.model.eval()
        with torch.inference_mode():
            for idx, batch, mask in batches:
                out = self.model(
                    input_ids=torch.from_numpy(batch).to(self.device),
                    attention_mask=torch.from_numpy(mask).to(self.device),
                )
                scores[idx] = out.scores.float().cpu().numpy()
                for c in self.categories:
                    probs[c][idx] = torch.softmax(out.tag_logits[c].float(), dim=-1).cpu().numpy()
        return Prediction(scores, probs)

    # ---- the Classifier protocol ---------------------------------------------------------------
    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        signals, _ = self.classify_with_presence(texts)
        return signals

    def classify_named(self, texts: Sequence[str]) -> tuple[list[Signals], list[str]]:
        """Signals and, per text, who classified it: this model, or ``keywords`` for other languages."""
        signals, _, names = self._classify(texts)
        return signals, names

    def classify_with_presence(self, texts: Sequence[str]) -> tuple[list[Signals], np.ndarray]:
        """Signals plus P(present) per category, so evaluation can rank categories (top-k)."""
        signals, presence, _ = self._classify(texts)
        return signals, presence

    def other_language(self, texts: Sequence[str]) -> list[bool]:
        """True for texts detected as a language outside ``languages`` (unsure texts stay with the model)."""
        return [a is not None for a in self._other_language_analyses(texts)]

    def _other_language_analyses(self, texts: Sequence[str]) -> list[Any]:
        """Per text, its keyword analysis when it belongs to another language, else None."""
        if not self.languages:
            return [None] * len(texts)
        from news_signals.labelling.keywords import served_language

        analyses = [self.keywords.analyse(t) for t in texts]
        return [None if served_language(a.lang_lean, self.languages) else a for a in analyses]

    @property
    def keywords(self) -> Any:
        if self._keywords is None:
            from news_signals.labelling.keywords import KeywordLabeller

            self._keywords = KeywordLabeller()
        return self._keywords

    def _classify(self, texts: Sequence[str]) -> tuple[list[Signals], np.ndarray, list[str]]:
        texts = [t if isinstance(t, str) else "" for t in texts]
        routed = self._other_language_analyses(texts)  # analysed once: the keyword signals come with it
        other = [a is not None for a in routed]
        mine = [i for i, o in enumerate(other) if not o]
        signals: list[Signals] = [{} for _ in texts]
        presence = np.zeros((len(texts), len(self.categories)), dtype=np.float32)
        if mine:
            pred = self.predict([texts[i] for i in mine])
            presence[mine] = pred.presence()
            for i, sig in zip(mine, self.to_signals(pred), strict=True):
                signals[i] = sig
        for i in (i for i, o in enumerate(other) if o):
            signals[i] = routed[i].signals
            presence[i] = [1.0 if signals[i][c]["tag"] != ABSENT else 0.0 for c in self.categories]
        names = [self.keywords.name if o else self.name for o in other]
        return signals, presence, names

    def top_k(self, texts: Sequence[str], k: int = 3) -> list[list[tuple[str, float]]]:
        """Per text, the k categories most likely present with P(present), best first."""
        presence = self.predict(texts).presence()
        order = np.argsort(-presence, axis=1, kind="stable")[:, :k]
        return [[(self.categories[j], float(presence[i, j])) for j in row] for i, row in enumerate(order)]

    def to_signals(self, pred: Prediction) -> list[Signals]:
        """Present when P(present) reaches the category's threshold (else the argmax of the tag head);
        a present category takes its most likely non-absent tag; an absent tag forces score 0."""
        out: list[Signals] = []
        tag_idx = {c: self._tag_indices(c, pred.tag_probs[c]) for c in self.categories}
        for i in range(pred.scores.shape[0]):
            sig: Signals = {}
            for j, c in enumerate(self.categories):
                k = int(tag_idx[c][i])
                tag = self.vocabularies[c][k]
                score = float(np.clip(pred.scores[i, j], -1.0, 1.0)) if tag != ABSENT else 0.0
                sig[c] = {"score": score, "tag": tag, "confidence": float(pred.tag_probs[c][i, k])}
            out.append({c: sig[c] for c in CATEGORIES})
        return out

    def _tag_indices(self, category: str, probs: np.ndarray) -> np.ndarray:
        threshold = self.thresholds.get(category)
        if threshold is None or probs.shape[1] < 2:
            return probs.argmax(axis=1)
        present = (1.0 - probs[:, 0]) >= threshold
        return np.where(present, probs[:, 1:].argmax(axis=1) + 1, 0)
