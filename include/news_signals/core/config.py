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
BACKEND_CHOICES = ("auto", "local", "hopsworks")


def _env_list(name: str, default: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in os.environ.get(name, default).split(",") if x.strip())


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """A lower-cased value from ``choices``; anything else is an error naming the variable."""
    value = (os.environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(choices)}")
    return value


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
    # ... and its bf16 weights on CPUs with bf16 instructions when their check passed; 0/false switches bf16 off
    bf16: bool = field(
        default_factory=lambda: os.environ.get("NEWS_SIGNALS_BF16", "1").strip().lower() not in ("0", "false", "no", "off")
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
    # daily batch validation limits (the DAG's Params override them per run)
    min_rows: int = field(default_factory=lambda: int(_env("NEWS_SIGNALS_MIN_ROWS", "1")))  # 0 publishes empty days
    max_rows: int = field(default_factory=lambda: int(_env("NEWS_SIGNALS_MAX_ROWS", "100000")))
    max_unlabelled_share: float = field(  # largest share of rows in which no category fired
        default_factory=lambda: float(_env("NEWS_SIGNALS_MAX_UNLABELLED_SHARE", "0.95"))
    )
    # GDELT client retries on 429/5xx/HTML answers, with exponential backoff from this many seconds
    gdelt_retries: int = field(default_factory=lambda: int(_env("NEWS_SIGNALS_GDELT_RETRIES", "5")))
    gdelt_backoff_s: float = field(default_factory=lambda: float(_env("NEWS_SIGNALS_GDELT_BACKOFF", "2")))
    # backends: auto = Hopsworks when the hopsworks_default connection exists, else local files
    registry_backend: str = field(
        default_factory=lambda: _env_choice("NEWS_SIGNALS_REGISTRY", BACKEND_CHOICES, "auto")
    )
    feature_store_backend: str = field(
        default_factory=lambda: _env_choice("NEWS_SIGNALS_FEATURE_STORE", BACKEND_CHOICES, "auto")
    )
    # the isolated Hopsworks interpreter (news_signals.isolated): "" = .venv-hopsworks in the project, else
    # /opt/hopsworks-venv (the Airflow image); seconds one worker call may take (a model upload included)
    hopsworks_python: str = field(default_factory=lambda: _env("NEWS_SIGNALS_HOPSWORKS_PYTHON"))
    # extra folders (os.pathsep-separated) with the corpus packages, installed --no-deps --target off sys.path
    corpus_packages: str = field(default_factory=lambda: _env("NEWS_SIGNALS_CORPUS_PACKAGES"))
    hopsworks_timeout_s: float = field(default_factory=lambda: float(_env("NEWS_SIGNALS_HOPSWORKS_TIMEOUT", "1800")))
    # cache for derived files outside the home (corpus texts, downloaded model versions); "" = XDG cache
    cache: str = field(default_factory=lambda: _env("NEWS_SIGNALS_CACHE"))
    # trainer (retrain/trainer.py): "" = docker when a daemon is configured, else local
    trainer_backend: str = field(default_factory=lambda: _env("NEWS_SIGNALS_TRAINER_BACKEND").lower())
    trainer_image: str = field(
        default_factory=lambda: _env("NEWS_SIGNALS_TRAINER_IMAGE", "news-signals-trainer:latest")
    )
    trainer_gpu: str = field(default_factory=lambda: _env("NEWS_SIGNALS_TRAINER_GPU", "auto").lower())  # 1 | 0 | auto
    # Celery queue of the training task: only workers next to the GPU's Docker daemon consume it
    trainer_queue: str = field(default_factory=lambda: _env("NEWS_SIGNALS_TRAINER_QUEUE", "gpu"))
    train_timeout_h: float = field(default_factory=lambda: float(_env("NEWS_SIGNALS_TRAIN_TIMEOUT_H", "6")))
    docker_url: str = field(default_factory=lambda: _env("NEWS_SIGNALS_DOCKER_URL"))  # "" = DOCKER_HOST or the socket
    docker_conn_id: str = field(default_factory=lambda: _env("NEWS_SIGNALS_DOCKER_CONN_ID"))  # a registry login
    docker_host_home: str = field(default_factory=lambda: _env("NEWS_SIGNALS_DOCKER_HOST_HOME"))  # home as the host sees it
    trainer_secret_env: tuple[str, ...] = field(  # worker variables passed to the container, never logged
        default_factory=lambda: _env_list("NEWS_SIGNALS_TRAINER_SECRET_ENV", "")
    )
    # tools/docker_build.py: the Debian mirror the image build uses
    debian_mirror: str = field(default_factory=lambda: _env("NEWS_SIGNALS_DEBIAN_MIRROR", "http://deb.debian.org/debian"))

    @classmethod
    def from_env(cls) -> Settings:
        return cls()
