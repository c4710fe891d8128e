"""The storage layout of docs/CONTRACTS.md on any fsspec filesystem, with atomic writes.

Local paths and ``s3://…`` URLs go through the same code: a write goes to a temporary
name beside the target and is then renamed, so readers never see half a file.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import date
from typing import TYPE_CHECKING, Any

import fsspec

from news_signals.core.config import default_home

if TYPE_CHECKING:
    import pandas as pd

PARTITION_FILE = "part-0.parquet"
TMP_PREFIX = ".tmp-"  # temporary names start with this; listings skip them


@contextmanager
def atomic_path(target: str | os.PathLike[str], fs: Any = None) -> Iterator[str]:
    """Yield a temporary path beside ``target``; rename it over ``target`` on success only.

    The one write-to-temp-then-rename of the package: ``fs`` is any fsspec filesystem (default:
    local files), so a reader never sees half a file and a failure leaves nothing behind.
    """
    fs = fs or fsspec.filesystem("file")
    target = os.fspath(target)
    parent = posixpath.dirname(target)
    fs.makedirs(parent, exist_ok=True)
    tmp = posixpath.join(parent, f"{TMP_PREFIX}{uuid.uuid4().hex}-{posixpath.basename(target)}")
    try:
        yield tmp
        fs.mv(tmp, target)
    finally:
        if fs.exists(tmp):
            fs.rm(tmp, recursive=True)


def atomic_write(target: str | os.PathLike[str], data: bytes | str, fs: Any = None) -> str:
    """Write ``data`` (str as UTF-8) to ``target`` atomically; returns the target path."""
    fs = fs or fsspec.filesystem("file")
    with atomic_path(target, fs) as tmp, fs.open(tmp, "wb") as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)
    return os.fspath(target)


class Storage:
    """Paths and atomic I/O under one root (``$NEWS_SIGNALS_HOME``)."""

    def __init__(self, root: str | None = None) -> None:
        self.root = (root or default_home()).rstrip("/")
        self.fs, self._root_path = fsspec.core.url_to_fs(self.root)

    # ---- layout -------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return posixpath.join(self._root_path, *parts)

    def url(self, path: str) -> str:
        """A path as the user would type it (with the protocol for remote stores)."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return path if protocol in ("file", "local") else f"{protocol}://{path}"

    def partition_dir(self, day: date | str, area: str = "articles") -> str:
        return self.path(area, f"date={_iso(day)}")

    def partition_file(self, day: date | str) -> str:
        return posixpath.join(self.partition_dir(day), PARTITION_FILE)

    def quarantine_dir(self, day: date | str) -> str:
        return self.partition_dir(day, area="quarantine")

    def snapshot_dir(self, snapshot_id: str) -> str:
        return self.path("snapshots", snapshot_id)

    def registry_dir(self, model_name: str) -> str:
        return self.path("registry", model_name)

    def features_dir(self, group: str) -> str:
        return self.path("features", group)

    def partition_dates(self, area: str = "articles") -> list[str]:
        """ISO dates of the complete partitions present, oldest first."""
        base = self.path(area)
        if not self.fs.exists(base):
            return []
        out = []
        for entry in self.fs.ls(base, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name.startswith("date=") and self.fs.exists(posixpath.join(entry, PARTITION_FILE)):
                out.append(name.removeprefix("date="))
        return sorted(out)

    # ---- atomic writes -----------------------------------------------------------------
    def atomic_path(self, target: str) -> AbstractContextManager[str]:
        """:func:`atomic_path` on this storage's filesystem."""
        return atomic_path(target, self.fs)

    def write_bytes(self, target: str, data: bytes) -> str:
        return atomic_write(target, data, self.fs)

    def write_json(self, target: str, obj: Any) -> str:
        return self.write_bytes(target, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, target: str) -> Any:
        with self.fs.open(target, "rb") as fh:
            return json.loads(fh.read())

    def write_parquet(self, target: str, df: pd.DataFrame) -> str:
        with self.atomic_path(target) as tmp, self.fs.open(tmp, "wb") as fh:
            df.to_parquet(fh, index=False)
        return target

    def read_parquet(self, target: str) -> pd.DataFrame:
        """Read the whole file into an Arrow buffer first.

        Handing pyarrow a Python file object leaves its I/O threads tied to that object, and at
        interpreter exit they can abort the process ("terminate called without an active
        exception", apache/arrow#34314, #50482) after the work is done. Our files are small
        enough to read whole.
        """
        import pandas as pd
        import pyarrow as pa

        return pd.read_parquet(pa.BufferReader(self.fs.cat_file(target)))

    def replace_partition(self, day: date | str, df: pd.DataFrame, area: str = "articles") -> str:
        """Write a day's partition atomically and drop any other file a previous run left there."""
        target = posixpath.join(self.partition_dir(day, area), PARTITION_FILE)
        self.write_parquet(target, df)
        for entry in self.fs.ls(posixpath.dirname(target), detail=False):
            if posixpath.basename(entry) != PARTITION_FILE:
                self.fs.rm(entry, recursive=True)
        return target


def _iso(day: date | str) -> str:
    return day if isinstance(day, str) else day.isoformat()
