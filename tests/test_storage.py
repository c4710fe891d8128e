"""Daily partitions: atomic (a failed write leaves nothing half-written) and idempotent (a re-run replaces)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from news_signals.core.storage import PARTITION_FILE, Storage

DAY = "2026-11-03"


def frame(n: int, offset: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "article_id": [f"{i + offset:016x}" for i in range(n)],
            "title": [f"title {i + offset}" for i in range(n)],
            "seendate": pd.date_range(f"{DAY}T01:00", periods=n, freq="h", tz="UTC"),
        }
    )


@pytest.fixture(params=["local", "memory"])
def storage(request, tmp_path) -> Iterator[Storage]:
    """The same code on the local disk and on an fsspec in-memory filesystem (stands in for s3://)."""
    if request.param == "local":
        yield Storage(str(tmp_path / "root"))
        return
    root = f"memory://ns-{tmp_path.name}"
    yield Storage(root)
    store = Storage(root)
    if store.fs.exists(store.path()):
        store.fs.rm(store.path(), recursive=True)


def files_under(storage: Storage, area: str = "articles") -> list[str]:
    base = storage.path(area)
    return (
        sorted(p.removeprefix(base + "/") for p in storage.fs.find(base)) if storage.fs.exists(base) else []
    )


def test_rerunning_a_day_replaces_its_partition_exactly(storage):
    storage.replace_partition(DAY, frame(5))
    # a stray file from an older layout or an interrupted tool must not survive a re-run
    storage.write_bytes(storage.partition_dir(DAY) + "/part-1.parquet", b"old")
    target = storage.replace_partition(DAY, frame(3, offset=100))
    assert files_under(storage) == [f"date={DAY}/{PARTITION_FILE}"]
    got = storage.read_parquet(target)
    pd.testing.assert_frame_equal(got, frame(3, offset=100))
    # and once more with the same data: identical result
    storage.replace_partition(DAY, frame(3, offset=100))
    pd.testing.assert_frame_equal(storage.read_parquet(target), got)


def test_a_write_failing_midway_leaves_the_old_partition_and_no_temp_files(storage, monkeypatch):
    storage.replace_partition(DAY, frame(4))
    before = storage.read_parquet(storage.partition_file(DAY))

    def half_write(self, fh, **kwargs):  # write some bytes, then die like a full disk would
        fh.write(b"PAR1 half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_write)
    with pytest.raises(OSError, match="No space left"):
        storage.replace_partition(DAY, frame(10, offset=50))
    monkeypatch.undo()

    assert files_under(storage) == [f"date={DAY}/{PARTITION_FILE}"]  # no .tmp-* left behind
    pd.testing.assert_frame_equal(storage.read_parquet(storage.partition_file(DAY)), before)


def test_a_failed_first_write_leaves_no_partition(storage, monkeypatch):
    def broken(self, fh, **kwargs):
        fh.write(b"PAR1")
        raise RuntimeError("killed")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", broken)
    with pytest.raises(RuntimeError):
        storage.replace_partition(DAY, frame(2))
    monkeypatch.undo()
    assert storage.partition_dates() == []
    assert not any(name.endswith(PARTITION_FILE) for name in files_under(storage))


def test_backfill_over_several_days_lists_every_complete_partition(storage):
    days = [f"2026-11-0{d}" for d in range(1, 8)]
    for i, day in enumerate(days):
        storage.replace_partition(day, frame(i + 1))
    storage.fs.makedirs(storage.partition_dir("2026-11-09"), exist_ok=True)  # an empty folder is no partition
    assert storage.partition_dates() == days
    assert [len(storage.read_parquet(storage.partition_file(d))) for d in days] == list(range(1, 8))


def test_layout_paths_follow_the_architecture(tmp_path):
    storage = Storage(str(tmp_path))
    assert storage.partition_file(DAY) == f"{tmp_path}/articles/date={DAY}/{PARTITION_FILE}"
    assert storage.quarantine_dir(DAY) == f"{tmp_path}/quarantine/date={DAY}"
    assert (
        Storage("memory://bucket/x")
        .url(Storage("memory://bucket/x").path("articles"))
        .startswith("memory://")
    )


def test_atomic_write_leaves_nothing_on_failure_and_replaces_on_success(tmp_path):
    from news_signals.core.storage import atomic_path, atomic_write

    target = tmp_path / "sub" / "x.json"
    assert atomic_write(target, "one") == str(target) and target.read_text() == "one"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        with open(tmp, "w") as fh:
            fh.write("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "one" and sorted(p.name for p in target.parent.iterdir()) == ["x.json"]
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
