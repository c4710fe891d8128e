"""The retrain DAG tests' home: four daily partitions from the replay corpus and a tiny base model."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest


def retrain_home(root: Path, end: date, threads: int = 2):
    """Yield {storage, base, root} with NEWS_SIGNALS_HOME (and a local trainer/registry) set for the module."""
    import pandas as pd
    import torch
    from news_signals.core.storage import Storage
    from test_snapshot import write_daily_partitions

    from tools.tiny_model import build_tiny_base_model

    torch.set_num_threads(threads)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEWS_SIGNALS_HOME", str(root / "home"))
        mp.setenv("NEWS_SIGNALS_TRAINER_BACKEND", "local")
        mp.setenv("NEWS_SIGNALS_REGISTRY", "local")
        storage = Storage()
        write_daily_partitions(storage, end, days=4, per_day=150)
        days = storage.partition_dates()
        texts = pd.concat(storage.read_parquet(storage.partition_file(d)) for d in days)["title"]
        base = build_tiny_base_model(root / "tiny_base", list(texts))
        yield {"storage": storage, "base": str(base), "root": root}
