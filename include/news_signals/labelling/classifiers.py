"""One interface for every way of classifying articles, and the ``auto`` resolution rule.

The keyword labeller, the hybrid labeller and the trained model all expose
``name`` (what goes into the ``classifier`` column) and ``classify_texts``.
``resolve_classifier("auto")`` prefers the promoted model and falls back to keywords,
always returning the reason so callers can log which one they used and why.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from news_signals.core.taxonomy import Signals

log = logging.getLogger(__name__)

METHODS = ("keywords", "model", "auto")


@runtime_checkable
class Classifier(Protocol):
    name: str  # "keywords", "hybrid@<ver>" or "model:<name>@<version>"

    def classify_texts(self, texts: Sequence[str]) -> list[Signals]: ...


def classify_named(classifier: Classifier, texts: Sequence[str]) -> tuple[list[Signals], list[str]]:
    """Signals plus, per text, the name of what classified it (the ``classifier`` column).

    A model trained for some languages hands texts in other languages to the keyword labeller
    (``ModelClassifier.classify_named``), so the name can differ per row; for every other
    classifier it is ``classifier.name`` throughout.
    """
    named = getattr(classifier, "classify_named", None)
    if callable(named):
        signals, names = named(texts)
    else:
        signals = classifier.classify_texts(texts)
        names = [classifier.name] * len(signals)
    return signals, names


class ModelUnavailable(RuntimeError):
    """No usable model: none promoted, download failed, hashes or taxonomy mismatch."""


@dataclass
class Resolution:
    classifier: Classifier
    reason: str  # human-readable: which classifier and why
    fell_back: bool = False


def keyword_classifier() -> Classifier:
    from news_signals.labelling.keywords import KeywordLabeller

    return KeywordLabeller()


def model_classifier(
    model_dir: str | Path, backend: str = "auto", int8: bool | None = None, bf16: bool | None = None
) -> Classifier:
    """The model in ``model_dir``; ``backend`` auto (bf16 torch or ONNX Runtime on CPU, torch on CUDA), torch or onnx.

    ``bf16`` (default: ``Settings().bf16``, on unless ``NEWS_SIGNALS_BF16=0``) serves the model's
    bf16 weights on a CPU with bf16 instructions when their registration check passed;
    ``int8`` (default: ``Settings().int8``, on unless ``NEWS_SIGNALS_INT8=0``) serves the
    artifact's int8 graph when its registration check passed (``model.export``), else fp32.
    """
    from news_signals.core.config import Settings
    from news_signals.model.inference import ModelClassifier

    settings = Settings()
    int8 = settings.int8 if int8 is None else int8
    bf16 = settings.bf16 if bf16 is None else bf16
    return ModelClassifier.from_dir(model_dir, backend=backend, int8=int8, bf16=bf16)


def registered_model_dir(
    model_name: str | None = None, version: int | None = None, storage: Any = None
) -> tuple[Path, str]:
    """The promoted (or the pinned ``version``) model's artifact, downloaded or from the cache.

    The one "promoted model" lookup of the package (``classify``, the feature pipeline): any
    failure is a ModelUnavailable with the reason, which callers turn into the keyword fallback.
    """
    from news_signals.registry import get_registry

    try:
        registry = get_registry(model_name, storage) if storage is not None else get_registry(model_name)
        if version is None:
            prod = registry.production()
            if prod is None:
                raise ModelUnavailable(f"no model has been promoted to production yet ({registry.name!r})")
            version = int(prod.version)
    except ModelUnavailable:
        raise
    except Exception as exc:  # registry down is a reason to fall back, not to crash `auto`
        raise ModelUnavailable(f"registry unreachable: {exc}") from exc
    ref = f"{registry.name}@{version}"
    try:
        path = registry.download(version)  # cached by name and version, hashes verified
    except Exception as exc:
        raise ModelUnavailable(f"download of {ref} failed: {exc}") from exc
    return Path(path), ref


def production_model_dir(model_name: str | None = None) -> tuple[Path, str]:
    """Download (or reuse from cache) the promoted model; raise ModelUnavailable with the reason."""
    return registered_model_dir(model_name)


def resolve_classifier(
    method: str,
    model_dir: str | Path | None = None,
    require_model: bool = False,
    backend: str = "auto",
    int8: bool | None = None,
    bf16: bool | None = None,
) -> Resolution:
    """Pick the classifier for ``method`` (keywords / model / auto); ``backend`` is the model's inference backend."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if method == "keywords":
        return Resolution(keyword_classifier(), "keywords requested")
    if method == "model":
        if model_dir is None:
            raise ValueError("--method model needs --model-dir DIR (a saved model artifact)")
        clf = model_classifier(model_dir, backend, int8, bf16)
        return Resolution(clf, f"model from {model_dir}")
    try:
        if model_dir is not None:
            clf, where = model_classifier(model_dir, backend, int8, bf16), str(model_dir)
        else:
            path, where = production_model_dir()
            clf = model_classifier(path, backend, int8, bf16)
        return Resolution(clf, f"promoted model {clf.name} ({where})")
    except Exception as exc:
        if require_model:
            raise ModelUnavailable(f"a model is required but unavailable: {exc}") from exc
        reason = f"falling back to keywords: {exc}"
        log.warning(reason)
        return Resolution(keyword_classifier(), reason, fell_back=True)
