"""Model registry: ``get_registry()`` picks Hopsworks when its connection exists, else local files.

``NEWS_SIGNALS_REGISTRY`` = ``auto`` (default) | ``local`` | ``hopsworks`` forces a backend.
"""

from __future__ import annotations

from news_signals.core.storage import Storage
from news_signals.registry.base import ModelRegistry, ModelVersion, RegistryError
from news_signals.registry.local import LocalRegistry

__all__ = [
    "LocalRegistry",
    "ModelRegistry",
    "ModelVersion",
    "RegistryError",
    "get_registry",
    "registry_backend",
]


def registry_backend() -> str:
    """``local`` or ``hopsworks`` for this environment (``NEWS_SIGNALS_REGISTRY``, default auto)."""
    from news_signals.core.config import Settings
    from news_signals.core.hopsworks import choose_backend

    return choose_backend(Settings.from_env().registry_backend)


def get_registry(model_name: str | None = None, storage: Storage | None = None) -> ModelRegistry:
    """The configured registry for ``model_name`` (default: Settings().model_name)."""
    from news_signals.core.config import Settings

    name = model_name or Settings().model_name
    if registry_backend() == "hopsworks":
        # HopsworksRegistry runs in the isolated Hopsworks interpreter, behind this proxy
        from news_signals.isolated.proxy import HopsworksRegistryProxy

        return HopsworksRegistryProxy(name)
    return LocalRegistry(name, storage)
