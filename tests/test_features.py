"""Model pickup and keyword fallback of the feature pipeline, on a real tiny model in a LocalRegistry."""

from __future__ import annotations

import posixpath

import pytest
from _feature_helpers import (
    LogCapture,
    TinyClassifier,
    artifact_variant,
    make_partition,
    register_and_promote,
    tiny_artifact,
    write_partition,
)
from news_signals.core.config import Settings
from news_signals.core.storage import Storage
from news_signals.features.pipeline import (
    PartitionMissing,
    classify_rows,
    parse_day,
    resolve_model,
    run_dates,
    run_feature_pipeline,
)
from news_signals.features.store import HEADLINE_SPEC, VIBE_SPEC
from news_signals.features.store.local import LocalFeatureStore
from news_signals.labelling.classifiers import ModelUnavailable

DAY = "2024-05-01"


@pytest.fixture()
def storage(ns_home) -> Storage:
    return Storage(str(ns_home))


def _run(storage: Storage, **kwargs) -> tuple[dict, LocalFeatureStore]:
    store = LocalFeatureStore(storage)
    return run_feature_pipeline(DAY, storage=storage, store=store, **kwargs), store


def test_no_promoted_model_falls_back_to_keywords_with_reason(storage):
    write_partition(storage, DAY)
    with LogCapture("news_signals.features.pipeline") as logs:
        summary, store = _run(storage)
    assert summary["fell_back"] and summary["classifier"] == "keywords"
    assert "promoted" in summary["reason"]
    assert any("falling back to keywords" in m and "promoted" in m for m in logs.warnings())
    rows = store.read(HEADLINE_SPEC)
    assert len(rows) == 8 and set(rows["classifier"]) == {"keywords"}
    fire = rows.set_index("title").loc["Fire destroys warehouse in Gothenburg harbour"]
    assert (
        fire["emergencies_tag"] == "fire" and fire["emergencies_score"] < 0
    )  # the real keyword labeller ran
    assert summary["headline_rows"] == 8 and summary["vibe_rows"] == len(store.read(VIBE_SPEC)) == 3


def test_require_model_turns_fallback_into_failure(storage):
    write_partition(storage, DAY)
    with pytest.raises(ModelUnavailable, match="require_model"):
        _run(storage, require_model=True)
    assert not storage.fs.exists(storage.features_dir(HEADLINE_SPEC.name))  # nothing half-written


def test_promoted_model_is_used_and_named_in_every_row(storage, tmp_path):
    write_partition(storage, DAY)
    version = register_and_promote(storage, tiny_artifact())
    summary, store = _run(storage, batch_size=3)
    name = f"model:{Settings().model_name}@{version}"
    assert summary["classifier"] == name and not summary["fell_back"]
    assert set(store.read(HEADLINE_SPEC)["classifier"]) == {name}
    assert set(store.read(VIBE_SPEC)["classifier"]) == {name}


def test_new_promotion_is_picked_up_by_the_next_run(storage, tmp_path):
    write_partition(storage, DAY)
    v1 = register_and_promote(storage, tiny_artifact())
    first, store = _run(storage)
    v2 = register_and_promote(storage, artifact_variant(tiny_artifact(), tmp_path / "v2", note="retrained"))
    assert v2 == v1 + 1
    second, _ = _run(storage)
    assert first["classifier"].endswith(f"@{v1}") and second["classifier"].endswith(f"@{v2}")
    rows = store.read(HEADLINE_SPEC)
    assert len(rows) == 8 and set(rows["classifier"]) == {second["classifier"]}  # replaced, not duplicated


def test_pinned_version_overrides_production(storage, tmp_path):
    write_partition(storage, DAY)
    v1 = register_and_promote(storage, tiny_artifact())
    register_and_promote(storage, artifact_variant(tiny_artifact(), tmp_path / "v2", note="newer"))
    summary, _ = _run(storage, choice=str(v1))
    assert summary["classifier"].endswith(f"@{v1}")
    unknown, _ = _run(storage, choice="99")
    assert unknown["fell_back"] and "99" in unknown["reason"]


def test_tampered_artifact_falls_back_or_fails(storage):
    write_partition(storage, DAY)
    version = register_and_promote(storage, tiny_artifact())
    weights = posixpath.join(storage.registry_dir(Settings().model_name), str(version), "model.safetensors")
    with storage.fs.open(weights, "ab") as fh:
        fh.write(b"tampered")
    with LogCapture("news_signals.features.pipeline") as logs:
        summary, store = _run(storage)
    assert summary["fell_back"] and "model.safetensors" in summary["reason"]
    assert any("model.safetensors" in m for m in logs.warnings())
    assert set(store.read(HEADLINE_SPEC)["classifier"]) == {"keywords"}
    with pytest.raises(ModelUnavailable, match="model.safetensors"):
        resolve_model("auto", require_model=True, storage=storage)


def test_taxonomy_mismatch_falls_back(storage, tmp_path):
    bad = artifact_variant(tiny_artifact(), tmp_path / "bad", vocab_drop="crime")
    register_and_promote(storage, bad)
    clf, choice = resolve_model("auto", storage=storage)
    assert clf.name == "keywords" and choice.fell_back and "crime" in choice.reason


def test_missing_partition_names_the_date_and_the_fix(storage):
    with pytest.raises(PartitionMissing) as err:
        _run(storage)
    assert DAY in str(err.value) and "gdelt_daily_ingest" in str(err.value)


def test_bad_classifier_choice_is_rejected(storage):
    with pytest.raises(ValueError, match="auto"):
        resolve_model("latest", storage=storage)


def test_classify_rows_batches_and_keeps_the_schema():
    clf = TinyClassifier()
    rows = classify_rows(make_partition(DAY, 10), clf, batch_size=4)
    assert clf.calls == [4, 4, 2]
    assert list(rows.columns) == list(HEADLINE_SPEC.columns)
    assert rows.loc[rows["title"].str.startswith("Fire"), "emergencies_tag"].eq("fire").all()
    assert str(rows["seendate"].dt.tz) == "UTC"


def test_run_dates_precedence():
    assert run_dates("2024-05-03", [{"date": "2024-05-01"}], "2024-05-09") == ["2024-05-03"]
    assert run_dates(None, [{"date": "2024-05-02"}, {"dates": ["2024-05-01", "2024-05-02"]}, None]) == [
        "2024-05-01",
        "2024-05-02",
    ]
    assert run_dates(None, [], "2024-05-09T00:00:00+00:00") == ["2024-05-09"]
    with pytest.raises(ValueError, match="date"):
        run_dates(None, [], None)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_day("May 1st")


def test_cli_features_command(storage, capsys):
    import json

    from news_signals.cli import main

    assert main(["features", "--date", "2024-05-02", "--store", "local"]) == 2
    assert "2024-05-02" in capsys.readouterr().err

    write_partition(storage, DAY)
    assert main(["features", "--all", "--classifier", "keywords", "--store", "local"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classifier"] == "keywords" and summary["days"] == {
        DAY: {"headline_rows": 8, "vibe_rows": 3}
    }
    assert main(["features", "--date", DAY, "--require-model", "--store", "local"]) == 3
    assert "require_model" in capsys.readouterr().err
