"""Runtime settings, read from the environment (and Airflow connections where noted).

One place for every knob so the DAGs, the CLI and the tests agree on defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[3]
GDELT_DEFAULT_URL = "https://api.gdeltproject.org/api/v2/doc/doc"
DEFAULT_MODEL_NAME = "news_signals"


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in os.environ.get(name, default).split(",") if x.strip())


def default_home() -> str:
    """``$NEWS_SIGNALS_HOME``, else ``data/`` in the project (or the working directory when installed)."""
    home = os.environ.get("NEWS_SIGNALS_HOME")
    if home:
        return home
    base = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return str(base / "data")


@dataclass(frozen=True)
class Settings:
    home: str = field(default_factory=default_home)
    # GDELT
    gdelt_url: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_GDELT_URL", GDELT_DEFAULT_URL))
    gdelt_min_interval_s: float = field(
        default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_GDELT_MIN_INTERVAL", "5"))
    )
    gdelt_timeout_s: float = field(default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_GDELT_TIMEOUT", "30")))
    countries: tuple[str, ...] = field(default_factory=lambda: _env_list("NEWS_SIGNALS_COUNTRIES", "SW"))
    languages: tuple[str, ...] = field(
        default_factory=lambda: _env_list("NEWS_SIGNALS_LANGUAGES", "swedish,english")
    )
    # Model registry / feature store
    model_name: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_MODEL_NAME", DEFAULT_MODEL_NAME))
    # monthly_retrain: a human approves each PROMOTE (Param require_approval overrides); unanswered after the timeout = reject
    require_approval: bool = field(
        default_factory=lambda: os.environ.get("NEWS_SIGNALS_REQUIRE_APPROVAL", "false").strip().lower() in ("1", "true", "yes")
    )
    approval_timeout_hours: float = field(
        default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_APPROVAL_TIMEOUT_HOURS", "72"))
    )
    # model inference serves the artifact's registration-checked int8 graph; 0/false switches to fp32
    int8: bool = field(
        default_factory=lambda: os.environ.get("NEWS_SIGNALS_INT8", "1").strip().lower() not in ("0", "false", "no", "off")
    )
    # LLM labeller (an OpenAI-compatible endpoint; the news_signals_llm connection takes precedence)
    llm_url: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_LLM_URL", ""))  # base URL ending in /v1
    llm_model: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_LLM_MODEL", ""))
    llm_api_key: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_LLM_API_KEY", ""), repr=False)  # secret
    llm_rps: float = field(default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_LLM_RPS", "4")))  # 0 = unlimited
    llm_workers: int = field(default_factory=lambda: int(os.environ.get("NEWS_SIGNALS_LLM_WORKERS", "4")))
    llm_timeout_s: float = field(default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_LLM_TIMEOUT", "60")))  # per request
    llm_retries: int = field(default_factory=lambda: int(os.environ.get("NEWS_SIGNALS_LLM_RETRIES", "4")))  # per request
    llm_price_prompt_per_1k: float = field(  # price per 1,000 prompt tokens, for the cost counter
        default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_LLM_PRICE_PROMPT_PER_1K", "0"))
    )
    llm_price_completion_per_1k: float = field(
        default_factory=lambda: float(os.environ.get("NEWS_SIGNALS_LLM_PRICE_COMPLETION_PER_1K", "0"))
    )
    llm_cache_dir: str = field(default_factory=lambda: os.environ.get("NEWS_SIGNALS_LLM_CACHE_DIR", ""))  # default $HOME/cache/llm

    @classmethod
    def from_env(cls) -> Settings:
        return cls()
