"""The multi-head model on a tiny BERT (hidden 32, 2 layers, WordPiece trained here): trainer,
artifact (hashes, taxonomy), ModelClassifier, resume, errors. Seconds, real torch throughout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from news_signals.core.taxonomy import CATEGORIES, TAGS, check_signals
from news_signals.model.artifact import ArtifactError, load_artifact
from news_signals.model.inference import ModelClassifier, clear_cache
from news_signals.model.train import TrainConfig, train

from tools.tiny_model import build_tiny_base_model, make_synthetic_snapshot, synthetic_rows

torch.set_num_threads(1)

TEXTS = [
    "Large fire destroys warehouse in Lund",
    "Hockey team from Oslo reaches the final",
    "Floods cut off roads in Visby",
    "Museum opens a new exhibition",
    "",
]


def tiny_config(**kw) -> TrainConfig:
    base = dict(epochs=4, batch_size=16, lr=1e-3, head_lr_multiplier=5.0, patience=4, log_every=0, model_name="tiny")
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory) -> Path:
    return make_synthetic_snapshot(tmp_path_factory.mktemp("snap") / "snapshot")


@pytest.fixture(scope="module")
def base_model(tmp_path_factory, snapshot) -> Path:
    texts = list(pd.read_parquet(snapshot / "train.parquet")["text"])
    return build_tiny_base_model(tmp_path_factory.mktemp("base") / "tiny-bert", texts)


@pytest.fixture(scope="module")
def artifact(tmp_path_factory, snapshot, base_model) -> Path:
    return train(snapshot, str(base_model), tmp_path_factory.mktemp("art") / "model", tiny_config())


def test_training_loss_falls_and_records_history(artifact):
    history = json.loads((artifact / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert history[-1]["train_loss"] < 0.8 * history[0]["train_loss"]
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert (artifact / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (artifact / "checkpoints").exists()  # the finished artifact replaced the checkpoints
    manifest = json.loads((artifact / "news_signals.json").read_text())
    assert manifest["snapshot_id"] == "synthetic-0"
    assert manifest["max_length"] == 64
    assert manifest["vocabularies"]["weather_temp"] == ["", *TAGS["weather_temp"]]
    files = set(manifest["files"])
    assert {"config.json", "model.safetensors", "heads.safetensors", "tokenizer.json", "history.json"} <= files
    best = manifest["metrics"]["best_epoch"]
    assert manifest["metrics"]["val_macro_f1"] == max(h["val_macro_f1"] for h in history)
    assert history[best - 1]["val_macro_f1"] == manifest["metrics"]["val_macro_f1"]
    assert "test" in manifest["metrics"]


def test_warmup_is_applied(snapshot, base_model, tmp_path):
    """The learning rate rises during warm-up and decays after (the replaced trainer never stepped it)."""
    from transformers import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = get_cosine_schedule_with_warmup(opt, 10, 100)
    lrs = []
    for _ in range(100):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[5] == pytest.approx(0.5) and max(lrs) == pytest.approx(1.0) and lrs[-1] < 0.01


def test_classifier_contract_and_sidecar(artifact, tmp_path):
    clf = ModelClassifier.from_dir(artifact)
    assert clf.name == "model:tiny@local"
    out = clf.classify_texts(TEXTS)
    assert len(out) == len(TEXTS)
    for sig in out:
        check_signals(sig)
        for c in CATEGORIES:
            assert 0.0 <= sig[c]["confidence"] <= 1.0
            if sig[c]["tag"] == "":
                assert sig[c]["score"] == 0.0
    assert clf.classify_texts([]) == []
    top = clf.top_k(TEXTS[:2], k=3)
    assert [len(t) for t in top] == [3, 3] and top[0][0][1] >= top[0][1][1] >= top[0][2][1]
    registered = tmp_path / "v3"
    shutil.copytree(artifact, registered)
    (registered / "registry.json").write_text(json.dumps({"name": "news_signals", "version": 3}))
    assert ModelClassifier.from_dir(registered).name == "model:news_signals@3"


def test_loader_is_cached_per_dir_and_manifest(artifact):
    a = ModelClassifier.from_dir(artifact)
    b = ModelClassifier.from_dir(artifact, threads=1)
    assert a.artifact is b.artifact


def test_batching_does_not_change_outputs(artifact):
    """Length bucketing + dynamic padding: a text scores the same alone or in any batch."""
    clf = ModelClassifier.from_dir(artifact)
    together = clf.predict(TEXTS * 3, batch_size=4)
    for i, text in enumerate(TEXTS):
        alone = clf.predict([text])
        np.testing.assert_allclose(alone.scores[0], together.scores[i], atol=1e-5)
        for c in CATEGORIES:
            np.testing.assert_allclose(alone.tag_probs[c][0], together.tag_probs[c][i + len(TEXTS)], atol=1e-5)


def test_save_load_identical_in_fresh_process(artifact):
    clf = ModelClassifier.from_dir(artifact)
    here = clf.predict(TEXTS)
    code = (
        "import json, sys; from news_signals.model.inference import ModelClassifier;"
        "p = ModelClassifier.from_dir(sys.argv[1], threads=1).predict(json.loads(sys.argv[2]));"
        "print(json.dumps({'scores': p.scores.tolist(), 'probs': {c: v.tolist() for c, v in p.tag_probs.items()}}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(artifact), json.dumps(TEXTS)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert proc.returncode == 0, proc.stderr
    there = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(np.array(there["scores"]), here.scores, atol=1e-6)
    for c in CATEGORIES:
        np.testing.assert_allclose(np.array(there["probs"][c]), here.tag_probs[c], atol=1e-6)


def test_tampered_file_is_refused(artifact, tmp_path):
    for name in ("heads.safetensors", "model.safetensors", "tokenizer.json"):
        copy = tmp_path / name
        shutil.copytree(artifact, copy)
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / name).write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
            ModelClassifier.from_dir(copy)
    missing = tmp_path / "missing"
    shutil.copytree(artifact, missing)
    (missing / "config.json").unlink()
    with pytest.raises(ArtifactError, match="config.json.*missing"):
        load_artifact(missing)
    (tmp_path / "not-an-artifact").mkdir()
    with pytest.raises(ArtifactError, match="news_signals.json"):
        load_artifact(tmp_path / "not-an-artifact")


def test_taxonomy_mismatch_is_refused(artifact, tmp_path, monkeypatch):
    edited = tmp_path / "edited"
    shutil.copytree(artifact, edited)
    manifest = json.loads((edited / "news_signals.json").read_text())
    manifest["vocabularies"]["crime"] = ["", "theft", "fraud"]
    (edited / "news_signals.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="'crime'"):
        load_artifact(edited)
    # The package's taxonomy moved on (a new sports tag) after the model was trained.
    import news_signals.core.taxonomy as taxonomy

    monkeypatch.setitem(taxonomy.TAGS, "sports", (*TAGS["sports"], "tennis"))
    clear_cache()
    with pytest.raises(ArtifactError, match="'sports'"):
        ModelClassifier.from_dir(artifact)


@pytest.mark.parametrize("train_path", ["fast", "full"])
def test_resume_after_crash_matches_uninterrupted_run(snapshot, base_model, tmp_path, monkeypatch, train_path):
    import news_signals.model.modeling as modeling

    config = tiny_config(epochs=3, patience=3, eval_test=False, train_path=train_path)
    real_loss, calls = modeling.multihead_loss, {"n": 0, "crash_after": None}

    def counting_loss(*args, **kw):  # one call per training step, on either path
        calls["n"] += 1
        if calls["crash_after"] is not None and calls["n"] > calls["crash_after"]:
            raise RuntimeError("simulated crash")
        return real_loss(*args, **kw)

    monkeypatch.setattr(modeling, "multihead_loss", counting_loss)
    full = train(snapshot, str(base_model), tmp_path / "full", config)
    full_history = json.loads((full / "history.json").read_text())
    steps_per_epoch = calls["n"] // 3
    calls.update(n=0, crash_after=steps_per_epoch + 1)  # dies in the middle of epoch 2

    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(snapshot, str(base_model), out, config)
    assert (out / "checkpoints" / "last" / "state.pt").is_file()
    assert not (out / "news_signals.json").exists()  # no half artifact
    calls["crash_after"] = None
    train(snapshot, str(base_model), out, config)
    resumed = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    for a, b in zip(resumed, full_history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4)
        assert a["val_macro_f1"] == pytest.approx(b["val_macro_f1"], abs=1e-6)


def test_confidence_modes_weight_and_filter(snapshot, base_model):
    from news_signals.model.snapshot_io import read_split
    from news_signals.model.train import class_weights, encode_split
    from transformers import AutoTokenizer

    df = read_split(snapshot, "train")
    df.loc[:9, "crime_confidence"] = 0.2
    tok = AutoTokenizer.from_pretrained(base_model)
    j = CATEGORIES.index("crime")
    weighted = encode_split(df, tok, tiny_config(confidence_mode="weight"))
    filtered = encode_split(df, tok, tiny_config(confidence_mode="filter", filter_threshold=0.5))
    plain = encode_split(df, tok, tiny_config(confidence_mode="none"))
    assert weighted.weights[:10, j].tolist() == pytest.approx([0.2] * 10)
    assert filtered.weights[:10, j].tolist() == [0.0] * 10
    assert float(filtered.weights[10:, j].min()) == 1.0 and float(plain.weights.min()) == 1.0
    cw = class_weights(plain, 0.5)["crime"]
    assert cw[0] < cw[1:].min()  # "absent" is the common class: lowest weight


def test_snapshot_errors_are_clear(tmp_path, base_model, snapshot):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(tmp_path / "nope", str(base_model), tmp_path / "out", tiny_config())
    partial = tmp_path / "partial"
    shutil.copytree(snapshot, partial)
    (partial / "val.parquet").unlink()
    with pytest.raises(FileNotFoundError, match="no val split"):
        train(partial, str(base_model), tmp_path / "out", tiny_config())
    empty = tmp_path / "empty"
    shutil.copytree(snapshot, empty)
    pd.read_parquet(snapshot / "train.parquet").iloc[:0].to_parquet(empty / "train.parquet")
    with pytest.raises(ValueError, match="train.parquet is empty"):
        train(empty, str(base_model), tmp_path / "out", tiny_config())
    cols = tmp_path / "cols"
    shutil.copytree(snapshot, cols)
    pd.read_parquet(snapshot / "train.parquet").drop(columns=["sports_tag"]).to_parquet(cols / "train.parquet")
    with pytest.raises(ValueError, match="sports_tag"):
        train(cols, str(base_model), tmp_path / "out", tiny_config())
    bad_tag = tmp_path / "badtag"
    shutil.copytree(snapshot, bad_tag)
    df = pd.read_parquet(snapshot / "train.parquet")
    df.loc[0, "crime_tag"] = "fraud"
    df.to_parquet(bad_tag / "train.parquet")
    with pytest.raises(ValueError, match="crime_tag.*fraud"):
        train(bad_tag, str(base_model), tmp_path / "out", tiny_config())
    assert not (tmp_path / "out").exists()


def test_unloadable_base_model_is_named(snapshot, tmp_path):
    with pytest.raises(ValueError, match="cannot load base model 'no-such-org/no-such-model'.*save_pretrained"):
        train(snapshot, "no-such-org/no-such-model", tmp_path / "out", tiny_config())
    (tmp_path / "emptydir").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        train(snapshot, str(tmp_path / "emptydir"), tmp_path / "out", tiny_config())


def test_out_dir_that_is_not_an_artifact_is_protected(snapshot, base_model, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a model artifact"):
        train(snapshot, str(base_model), precious, tiny_config())
    assert (precious / "notes.txt").read_text() == "keep me"


def test_cli_train_evaluate_classify(snapshot, base_model, tmp_path, capsys):
    """train → evaluate (model and keywords side by side) → classify --method model, via the CLI entry point."""
    from news_signals.cli import main

    out = tmp_path / "cli-model"
    assert main(["train", "--snapshot", str(snapshot), "--base-model", str(base_model), "--out", str(out),
                 "--epochs", "2", "--lr", "1e-3", "--batch-size", "16", "--threads", "1", "--model-name", "cli"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["artifact"] == str(out)
    rep = tmp_path / "reports"
    assert main(["evaluate", "--snapshot", str(snapshot), "--model-dir", str(out), "--keywords", "--out", str(rep), "--no-latency"]) == 0
    printed = capsys.readouterr().out
    assert "macro_f1" in printed and "keywords" in printed
    report = json.loads((rep / "model" / "report.json").read_text())
    assert report["classifier"] == "model:cli@local" and report["n_examples"] == len(pd.read_parquet(snapshot / "test.parquet"))
    assert (rep / "keywords" / "examples.jsonl").is_file() and (rep / "comparison.txt").is_file()
    inp, outp = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    inp.write_text("\n".join(json.dumps({"title": r["text"], "id": i}) for i, r in enumerate(synthetic_rows(1)[:5])) + "\n")
    assert main(["classify", "--method", "model", "--model-dir", str(out), "--input", str(inp), "--output", str(outp)]) == 0
    rows = [json.loads(line) for line in outp.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(5)) and all(r["classifier"] == "model:cli@local" for r in rows)
    capsys.readouterr()
    assert main(["train", "--snapshot", str(tmp_path / "missing"), "--base-model", str(base_model), "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
