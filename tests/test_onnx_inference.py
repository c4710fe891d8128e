"""The ONNX Runtime backend on a tiny real artifact: the ONNX files and the int8 check are built once
at registration into the artifact, listed with their sha256; serving only loads them (same outputs as
torch, in input order; a changed file is refused); torch when the artifact has none."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from news_signals.core.taxonomy import CATEGORIES
from news_signals.model import export, int8_check
from news_signals.model.artifact import (
    BF16_CHECK,
    INT8_CHECK,
    ONNX_FP32,
    ONNX_INT8,
    ArtifactError,
    LoadedArtifact,
    load_artifact,
    manifest_hash,
    verify_artifact,
)
from news_signals.model.export import prepare_for_serving
from news_signals.model.inference import ModelClassifier, cached_artifact, clear_cache
from news_signals.model.int8_check import Int8Tolerance
from news_signals.model.onnx_runtime import OnnxUnavailable

from tools.tiny_model import build_tiny_artifact

torch.set_num_threads(1)

TOLERANCE = 1e-4  # max |difference| of scores and tag probabilities, ONNX vs torch (fp32)
LENIENT = Int8Tolerance(min_tag_agreement=0.0, min_present_tag_agreement=0.0, max_score_diff=2.0, max_score_mae=2.0)
STRICT = Int8Tolerance(min_tag_agreement=1.0, min_present_tag_agreement=1.0, max_score_diff=0.0, max_score_mae=-1.0)

TEXTS = [
    "Large fire destroys warehouse in Lund",
    "",
    "Floods cut off roads in Visby after the storm, and the heavy snow that followed closed the "
    "motorway near Malmo while police arrested two suspects in a robbery " * 4,  # > max_length: truncated
    "Hockey team from Oslo reaches the final",
    "Snow",
    "Large fire destroys warehouse in Lund",  # a duplicate lands in another bucket position
    "Government announces new budget for Umea; voters head to the polls",
    "Museum opens a new exhibition of old maps",
]


@pytest.fixture(scope="module")
def check_texts() -> list[str]:
    return int8_check.verification_texts(n=200)  # fewer than the real check's 1,000: seconds, not tens


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    """A trained tiny artifact as the trainer writes it: no ONNX files yet."""
    return build_tiny_artifact(tmp_path_factory.mktemp("onnx-art") / "model", epochs=2)


@pytest.fixture(scope="module")
def artifact(plain, check_texts, tmp_path_factory) -> Path:
    """The same artifact after registration built its serving files (default tolerance)."""
    out = tmp_path_factory.mktemp("onnx-served") / "model"
    shutil.copytree(plain, out)
    prepare_for_serving(out, texts=check_texts)
    return out


@pytest.fixture(autouse=True)
def fresh(ns_home, monkeypatch):
    """Each test: an empty NEWS_SIGNALS_HOME, no loaded models or sessions, and a CPU without bf16
    instructions, so ``auto`` is the ONNX path these tests are about on any CPU (bf16 serving:
    tests/test_bf16_serving.py)."""
    import news_signals.model.inference as inference

    monkeypatch.setattr(inference, "native_bf16", lambda: "")
    clear_cache()
    yield ns_home
    clear_cache()


def int8_part(report: dict) -> dict:
    """``prepare_for_serving``'s return without the bf16 verdict it adds: what int8_check.json holds."""
    return {k: v for k, v in report.items() if k != "bf16"}


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def max_diff(a, b) -> float:
    return max(
        float(np.abs(a.scores - b.scores).max()),
        *(float(np.abs(a.tag_probs[c] - b.tag_probs[c]).max()) for c in CATEGORIES),
    )


def exports(caplog) -> int:
    return sum("ONNX files built" in r.getMessage() for r in caplog.records)


def tree_state(root: Path) -> dict[str, tuple[int, int]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_ino, p.stat().st_mtime_ns) for p in root.rglob("*")}


def test_onnx_equals_torch_in_input_order(artifact):
    torch_clf = ModelClassifier.from_dir(artifact, backend="torch", batch_size=3)
    onnx_clf = ModelClassifier.from_dir(artifact, backend="onnx", batch_size=3, int8=False)
    assert (torch_clf.backend, onnx_clf.backend) == ("torch", "onnx")
    ref, got = torch_clf.predict(TEXTS), onnx_clf.predict(TEXTS)
    assert got.scores.shape == (len(TEXTS), len(CATEGORIES))
    assert max_diff(ref, got) <= TOLERANCE
    # Input order, not bucket order: each text alone gives its own row (batch of 1, no padding).
    for i in (0, 2, 4, 7):
        alone = onnx_clf.predict([TEXTS[i]])
        assert np.abs(alone.scores[0] - got.scores[i]).max() <= TOLERANCE
        assert all(np.abs(alone.tag_probs[c][0] - got.tag_probs[c][i]).max() <= TOLERANCE for c in CATEGORIES)
    assert np.array_equal(got.scores[0], got.scores[5])  # duplicates agree wherever they land
    tags = [[s[c]["tag"] for c in CATEGORIES] for s in onnx_clf.to_signals(got)]
    assert tags == [[s[c]["tag"] for c in CATEGORIES] for s in torch_clf.to_signals(ref)]
    # Other batch sizes (more padding, one batch) give the same outputs too.
    assert max_diff(ref, onnx_clf.predict(TEXTS, batch_size=64)) <= TOLERANCE
    assert onnx_clf.predict([]).scores.shape == (0, len(CATEGORIES))


def test_auto_is_onnx_on_cpu_and_torch_for_in_memory_models(artifact):
    clf = ModelClassifier.from_dir(artifact)
    assert clf.backend == "onnx" and "ONNX Runtime" in clf.backend_reason
    loaded = load_artifact(artifact)
    in_memory = LoadedArtifact(loaded.model, loaded.tokenizer, loaded.manifest, loaded.path)  # no verified hash
    assert ModelClassifier(in_memory).backend == "torch"
    with pytest.raises(OnnxUnavailable, match="manifest hash"):
        ModelClassifier(in_memory, backend="onnx")
    with pytest.raises(ValueError, match="unknown inference backend"):
        ModelClassifier.from_dir(artifact, backend="tensorrt")


def test_serving_files_are_built_once_listed_with_their_hashes_and_only_loaded(plain, check_texts, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="news_signals.model.export")
    art = copy_of(plain, tmp_path / "model")
    before = manifest_hash(art)
    report = prepare_for_serving(art, texts=check_texts)
    manifest = verify_artifact(art)  # every listed file, the new ones included, matches its sha256
    assert ONNX_FP32 in manifest["files"] and INT8_CHECK in manifest["files"]
    assert (ONNX_INT8 in manifest["files"]) == bool(report["served"]) == (art / ONNX_INT8).is_file()
    assert manifest_hash(art) != before  # the manifest hash, and so the registry's fingerprint, covers them
    assert json.loads((art / INT8_CHECK).read_text()) == int8_part(report)
    assert report["bf16"]["passed"] == json.loads((art / BF16_CHECK).read_text())["passed"]  # and the bf16 check
    assert report["fp32"]["max_diff_vs_torch"] <= TOLERANCE and report["fp32"]["exporter"] == "torchscript"
    assert report["fp32"]["fused_operators"].get("Attention") == 2  # ORT's BERT fusions recognised the graph
    assert list(report["recipes"])[0] == "int8" and report["texts"]["total"] == len(check_texts)
    assert exports(caplog) == 1
    assert not [p for p in art.rglob("*") if p.name.startswith(".")]  # no temporary files left behind
    state = tree_state(art)

    assert prepare_for_serving(art, texts=check_texts) == report  # registering again: nothing rebuilt
    assert exports(caplog) == 1 and tree_state(art) == state
    clf = ModelClassifier.from_dir(art)  # serving: loads the files, writes nothing anywhere
    assert clf.backend == "onnx" and clf.int8_check == int8_part(report)
    assert tree_state(art) == state and not (tmp_path / "ns_home" / "cache").exists()


def test_a_changed_serving_file_is_refused(artifact, tmp_path):
    art = copy_of(artifact, tmp_path / "model")
    ref = ModelClassifier.from_dir(art, backend="torch").predict(TEXTS)
    # 1. Changed before loading: the artifact's own hash check names the file.
    onnx_file = art / ONNX_FP32
    original = onnx_file.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    onnx_file.write_bytes(bytes(data))
    clear_cache()
    with pytest.raises(ArtifactError, match="onnx/model.onnx does not match its sha256"):
        ModelClassifier.from_dir(art)
    # 2. Changed after the artifact was verified: the session is made from the bytes read and hashed
    #    then, so the changed file is not run; auto serves torch and says why, onnx raises.
    onnx_file.write_bytes(original)
    clear_cache()
    loaded = cached_artifact(art)
    onnx_file.write_bytes(bytes(data))
    clf = ModelClassifier(loaded, int8=False)
    assert clf.backend == "torch" and "changed after the artifact was verified" in clf.backend_reason
    assert max_diff(ref, clf.predict(TEXTS)) <= TOLERANCE
    with pytest.raises(OnnxUnavailable, match="changed"):
        ModelClassifier(loaded, backend="onnx", int8=False)


def test_an_artifact_without_onnx_files_is_served_by_torch_and_says_why(plain, caplog):
    caplog.set_level(logging.WARNING)
    clf = ModelClassifier.from_dir(plain)
    assert clf.backend == "torch" and "ONNX backend is unavailable" in clf.backend_reason
    assert "carries no onnx/model.onnx" in clf.backend_reason and clf.int8_check is None
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "using torch" in r.getMessage()]
    assert warning and "registered" in warning[0]  # names the reason and where the files come from
    assert clf.predict(TEXTS).scores.shape == (len(TEXTS), len(CATEGORIES))
    assert not (plain / "onnx").exists()  # serving never exports
    clear_cache()
    with pytest.raises(OnnxUnavailable):  # asked for explicitly: an error, not a silent switch
        ModelClassifier.from_dir(plain, backend="onnx")


def test_a_failed_export_leaves_the_artifact_as_it_was(plain, check_texts, tmp_path, monkeypatch):
    art = copy_of(plain, tmp_path / "model")
    before = tree_state(art)

    def broken(*args, **kwargs):  # the exporters fail on an unsupported encoder like this
        raise OnnxUnavailable("ONNX export failed (torchscript exporter: unsupported operator)")

    monkeypatch.setattr(export, "export_onnx", broken)
    report = prepare_for_serving(art, texts=check_texts)
    assert report["onnx"] is False and "unsupported operator" in report["reason"]
    after = tree_state(art)  # no ONNX file: only the bf16 check (torch can serve bf16) and its manifest line
    assert set(after) - set(before) == {BF16_CHECK} and verify_artifact(art)["files"].keys() - set(
        verify_artifact(plain)["files"]) == {BF16_CHECK}
    assert {k: v for k, v in after.items() if k not in (BF16_CHECK, "news_signals.json")} == {
        k: v for k, v in before.items() if k != "news_signals.json"}
    assert ModelClassifier.from_dir(art).backend == "torch"


def test_int8_is_served_only_when_its_registration_check_passed(plain, check_texts, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(int8_check, "TOLERANCE", LENIENT)
    passed = copy_of(plain, tmp_path / "passed")
    with caplog.at_level(logging.INFO, logger="news_signals.model.int8_check"):
        report = prepare_for_serving(passed, texts=check_texts)
    assert report["served"] == "int8" and list(report["recipes"]) == ["int8"]  # the fastest passed: no other tried
    assert report["recipes"]["int8"]["failures"] == [] and report["recipes"]["int8"]["report"]["texts"] > 50
    assert sum("int8 check of" in r.getMessage() for r in caplog.records) == 1
    q = ModelClassifier.from_dir(passed)  # int8 is the default
    assert q.backend == "onnx" and q.int8_recipe == "int8" and "within the int8 tolerance" in q.backend_reason
    assert list(q.int8_checks) == ["int8"] and q.int8_check == int8_part(report)
    fp32 = ModelClassifier.from_dir(passed, int8=False)
    assert fp32.int8_recipe is None and "int8 switched off" in fp32.backend_reason
    ref = fp32.predict(TEXTS)
    assert max_diff(ModelClassifier.from_dir(passed, backend="torch").predict(TEXTS), ref) <= TOLERANCE
    assert 0 < max_diff(ref, q.predict(TEXTS)) < 0.5  # int8: close, not equal

    caplog.clear()  # a serving process reads the verdict, it does not measure it again
    clear_cache()
    with caplog.at_level(logging.INFO):
        again = ModelClassifier.from_dir(passed)
    assert again.int8_recipe == "int8" and not any("int8 check of" in r.getMessage() for r in caplog.records)

    monkeypatch.setattr(int8_check, "TOLERANCE", STRICT)  # a stricter tolerance at registration: refused
    refused_dir = copy_of(plain, tmp_path / "refused")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="news_signals.model.export"):
        refused_report = prepare_for_serving(refused_dir, texts=check_texts)
    assert refused_report["served"] is None and list(refused_report["recipes"]) == ["int8", "int8-mixed"]
    assert not (refused_dir / ONNX_INT8).exists() and ONNX_INT8 not in verify_artifact(refused_dir)["files"]
    assert any("int8 refused" in r.getMessage() for r in caplog.records)
    refused = ModelClassifier.from_dir(refused_dir)
    assert refused.backend == "onnx" and refused.int8_recipe is None
    assert "int8 rejected" in refused.backend_reason and "on average" in refused.backend_reason
    assert "int8-mixed:" in refused.backend_reason  # every recipe was tried
    assert max_diff(ref, refused.predict(TEXTS)) <= TOLERANCE  # exactly the fp32 outputs


def test_a_stored_check_of_an_older_check_version_is_redone(plain, check_texts, tmp_path, monkeypatch):
    art = copy_of(plain, tmp_path / "model")
    prepare_for_serving(art, texts=check_texts)
    monkeypatch.setattr(int8_check, "CHECK_VERSION", int8_check.CHECK_VERSION + 1)
    monkeypatch.setattr(int8_check, "TOLERANCE", LENIENT)
    report = prepare_for_serving(art, texts=check_texts)
    assert report["check_version"] == int8_check.CHECK_VERSION and report["served"] == "int8"
    assert verify_artifact(art)["files"][ONNX_INT8]


def test_int8_mixed_keeps_the_ffn_down_projections_in_fp32_and_is_served_when_only_it_passes(
    plain, check_texts, tmp_path, monkeypatch
):
    import onnx
    from news_signals.model.export import ffn_down_projections, quantize_onnx

    # The full recipe misses (whether keeping FFN down-projections in fp32 helps is a property of the
    # trained model, measured on MiniLM in docs/MODEL.md), the mixed one passes: the mixed one is stored.
    art = copy_of(plain, tmp_path / "model")
    verdicts = iter([[], ["forced miss for the full recipe"], []])  # the bf16 check runs first (passes)
    with monkeypatch.context() as patched:
        patched.setattr(int8_check, "failures", lambda report, tolerance=None: next(verdicts))
        report = prepare_for_serving(art, texts=check_texts)
    assert report["served"] == "int8-mixed" and list(report["recipes"]) == ["int8", "int8-mixed"]
    served = ModelClassifier.from_dir(art)
    assert served.int8_recipe == "int8-mixed" and "int8-mixed, within the int8 tolerance" in served.backend_reason
    ref = ModelClassifier.from_dir(art, int8=False).predict(TEXTS)
    assert 0 < max_diff(ref, served.predict(TEXTS)) < 0.5

    fp32_graph = onnx.load(str(art / ONNX_FP32))
    down = ffn_down_projections(fp32_graph)
    config = ModelClassifier.from_dir(art, backend="torch").model.encoder.config
    assert len(down) == config.num_hidden_layers  # one intermediate -> hidden MatMul per layer
    assert report["recipes"]["int8-mixed"]["quantization"]["fp32_nodes"] == down
    mixed_ops = {n.name: n.op_type for n in onnx.load(str(art / ONNX_INT8)).graph.node}
    quantize_onnx(art / ONNX_FP32, tmp_path / "full.onnx", "int8")
    full_ops = {n.op_type for n in onnx.load(str(tmp_path / "full.onnx")).graph.node}
    assert all(mixed_ops.get(name) == "MatMul" for name in down)  # still the float MatMul
    assert "MatMulInteger" in set(mixed_ops.values()) and "MatMulInteger" in full_ops  # the rest is int8
    assert "EmbedLayerNormalization" in {n.op_type for n in fp32_graph.graph.node}
    for ops in (set(mixed_ops.values()), full_ops):  # the embeddings stay fp32 in both recipes
        assert "EmbedLayerNormalization" in ops and "QEmbedLayerNormalization" not in ops


def test_int8_is_not_stored_when_its_check_cannot_run(plain, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise FileNotFoundError("corpus file missing")

    monkeypatch.setattr(int8_check, "verification_texts", broken)
    monkeypatch.setattr(int8_check, "TOLERANCE", LENIENT)  # it would pass, if it could run
    art = copy_of(plain, tmp_path / "model")
    report = prepare_for_serving(art)
    assert report["served"] is None and "corpus file missing" in report["reason"]
    clf = ModelClassifier.from_dir(art)
    assert clf.backend == "onnx" and clf.int8_recipe is None
    assert "int8 check could not run" in clf.backend_reason and "corpus file missing" in clf.backend_reason


def test_classify_cli_backends_write_the_same_signals(artifact, tmp_path, capsys):
    from news_signals.cli import main

    titles = [t for t in TEXTS if t]  # the contract needs a non-empty title
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"title": t, "id": i}) + "\n" for i, t in enumerate(titles)), encoding="utf-8")
    rows = {}
    for backend in ("torch", "onnx", "auto"):
        out = tmp_path / f"{backend}.jsonl"
        argv = ["classify", "--method", "model", "--model-dir", str(artifact), "--input", str(inp), "--output", str(out)]
        assert main([*argv, "--backend", backend]) == 0
        assert f"inference backend: {'onnx' if backend == 'auto' else backend}" in capsys.readouterr().err
        rows[backend] = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows["onnx"]] == list(range(len(titles)))
    served_int8 = json.loads((artifact / INT8_CHECK).read_text())["served"]
    for a, b in zip(rows["torch"], rows["onnx"], strict=True):
        for c in CATEGORIES:
            if not served_int8:  # int8, when this tiny model passes its check, is within the int8 tolerance instead
                assert a["signals"][c]["tag"] == b["signals"][c]["tag"]
                assert abs(a["signals"][c]["score"] - b["signals"][c]["score"]) <= TOLERANCE
    assert rows["auto"] == rows["onnx"]


def test_a_torch_quantized_model_stays_on_torch(artifact):
    assert ModelClassifier.from_dir(artifact, quantize=True, backend="torch").backend == "torch"
    quantized = cached_artifact(artifact, quantize=True)
    assert ModelClassifier(quantized).backend == "torch"  # not the fp32 ONNX file of the same artifact
    with pytest.raises(ValueError, match="fp32"):
        ModelClassifier(quantized, backend="onnx")


def test_classify_int8_is_the_default_and_the_flag_and_variable_switch_it_off(
    plain, check_texts, tmp_path, capsys, monkeypatch
):
    from news_signals.cli import main
    from news_signals.labelling.classifiers import model_classifier

    monkeypatch.setattr(int8_check, "TOLERANCE", LENIENT)
    passed = copy_of(plain, tmp_path / "passed")
    prepare_for_serving(passed, texts=check_texts)
    monkeypatch.setattr(int8_check, "TOLERANCE", STRICT)
    refused = copy_of(plain, tmp_path / "refused")
    prepare_for_serving(refused, texts=check_texts)
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"title": t}) + "\n" for t in TEXTS if t), encoding="utf-8")

    def classify(model: Path, out: str, *flags: str) -> str:
        argv = ["classify", "--method", "model", "--model-dir", str(model), "--input", str(inp),
                "--output", str(tmp_path / out), *flags]
        assert main(argv) == 0
        return capsys.readouterr().err

    assert "(int8, within the int8 tolerance" in classify(passed, "int8.jsonl")
    assert "int8 switched off" in classify(passed, "fp32.jsonl", "--no-int8")
    assert "int8 rejected at registration" in classify(refused, "refused.jsonl")
    assert classify(refused, "refused-fp32.jsonl", "--no-int8")
    # refused: the fp32 outputs
    assert (tmp_path / "refused.jsonl").read_text() == (tmp_path / "refused-fp32.jsonl").read_text()

    monkeypatch.setenv("NEWS_SIGNALS_INT8", "0")  # a worker-wide opt-out, e.g. for the feature pipeline
    assert model_classifier(passed).int8_recipe is None
    assert "int8 switched off" in classify(passed, "env.jsonl")
    assert "(int8, within" in classify(passed, "flag.jsonl", "--int8")  # the flag wins over the variable
    monkeypatch.setenv("NEWS_SIGNALS_INT8", "1")
    assert model_classifier(passed).int8_recipe == "int8"


def test_the_check_runs_on_the_held_out_human_texts_and_gates_on_their_macro_f1(plain, check_texts, tmp_path, monkeypatch):
    from news_signals.retrain.heldout import HeldoutSet, truth_matrix

    from tools.tiny_model import synthetic_rows

    rows = synthetic_rows(n_per_template=8, seed=3)  # headlines with known labels, as a person gave them
    held = HeldoutSet([f"a{i}" for i in range(len(rows))], [r["text"] for r in rows],
                      truth_matrix([{c: s["tag"] for c, s in r["signals"].items()} for r in rows]))
    assert held.gated_categories()[0]  # enough labelled rows for at least one category to count
    monkeypatch.setattr(int8_check, "TOLERANCE", LENIENT)
    art = copy_of(plain, tmp_path / "model")
    report = prepare_for_serving(art, heldout=held, texts=check_texts)
    assert report["texts"] == {"total": len(check_texts) + len(held), "heldout": len(held)}
    result = report["recipes"]["int8"]["report"]
    assert result["texts"] == len(check_texts) + len(held) and result["heldout"]["texts"] == len(held)
    human = result["human_macro_f1"]
    assert 0.0 <= human["fp32"] <= 1.0 and 0.0 <= human["int8"] <= 1.0
    # The same report with the human rule tightened beyond what int8 can do is refused, and says why.
    drop = human["fp32"] - human["int8"]
    worse = {**result, "human_macro_f1": {"fp32": human["fp32"], "int8": human["fp32"] - 0.05}}
    assert any("held-out human macro-F1 drops by 0.050" in m for m in int8_check.failures(worse, LENIENT))
    assert drop <= LENIENT.max_human_f1_drop or report["served"] is None


def test_the_registry_stores_and_fingerprints_the_serving_files(plain, artifact, tmp_path):
    from news_signals.core.storage import Storage
    from news_signals.registry.base import artifact_files, fingerprint
    from news_signals.registry.local import LocalRegistry

    registry = LocalRegistry("tiny", Storage(str(tmp_path / "home")))
    mv = registry.register(artifact, {"macro_f1": 0.5})
    assert mv.fingerprint == fingerprint(artifact_files(artifact)) != fingerprint(artifact_files(plain))
    downloaded = registry.download(mv.version)
    assert {ONNX_FP32, INT8_CHECK} <= set(verify_artifact(downloaded)["files"])
    clf = ModelClassifier.from_dir(downloaded)
    assert clf.backend == "onnx" and clf.name == f"model:tiny@{mv.version}"
    assert clf.int8_check == json.loads((artifact / INT8_CHECK).read_text())
