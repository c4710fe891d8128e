"""bf16 serving on a tiny real artifact: the bf16 check is built at registration beside the ONNX files
(listed, hashed), and ``auto`` serves bf16 only where the check passed, the CPU has bf16 instructions
and bf16 is not switched off; everywhere else the ONNX path, saying why."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from news_signals.model import bf16, int8_check
from news_signals.model.artifact import (
    BF16_CHECK,
    INT8_CHECK,
    ONNX_FP32,
    add_serving_files,
    load_artifact,
    verify_artifact,
)
from news_signals.model.export import prepare_for_serving
from news_signals.model.inference import ModelClassifier, clear_cache
from news_signals.model.int8_check import Int8Tolerance

from tools.tiny_model import build_tiny_artifact

torch.set_num_threads(1)

LENIENT = Int8Tolerance(min_tag_agreement=0.0, min_present_tag_agreement=0.0, max_score_diff=2.0, max_score_mae=2.0)
STRICT = Int8Tolerance(min_tag_agreement=1.0, min_present_tag_agreement=1.0, max_score_diff=0.0, max_score_mae=-1.0)
TEXTS = ["Large fire destroys warehouse in Lund", "Floods cut off roads in Visby after the storm",
         "Hockey team from Oslo reaches the final", "Snow", ""]


@pytest.fixture(scope="module")
def check_texts() -> list[str]:
    return int8_check.verification_texts(n=150)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> Path:
    return build_tiny_artifact(tmp_path_factory.mktemp("bf16-art") / "model", epochs=2)


@pytest.fixture(autouse=True)
def fresh(ns_home):
    clear_cache()
    yield ns_home
    clear_cache()


def served(plain: Path, dst: Path, check_texts: list[str], monkeypatch, tolerance: Int8Tolerance) -> Path:
    """A copy of ``plain`` registered under ``tolerance``."""
    monkeypatch.setattr(int8_check, "TOLERANCE", tolerance)
    shutil.copytree(plain, dst)
    prepare_for_serving(dst, texts=check_texts)
    return dst


def cpu(monkeypatch, flag: str) -> None:
    import news_signals.model.inference as inference

    monkeypatch.setattr(inference, "native_bf16", lambda: flag)


@pytest.mark.parametrize(
    ("machine", "cpuinfo", "flag"),
    [
        ("x86_64", "processor : 0\nflags : fpu sse avx2 avx512f avx512bw amx_bf16 amx_tile\n", "amx_bf16"),
        ("x86_64", "flags : fpu avx2 avx512f avx512_bf16\n", "avx512_bf16"),
        ("x86_64", "flags : fpu avx2 avx512f avx512bw avx512_vnni\n", ""),  # AVX-512 without BF16: emulated
        ("x86_64", "flags : fpu avx2 bf16\n", ""),  # the Arm feature name means nothing on x86
        ("aarch64", "Features : fp asimd sve bf16 i8mm\n", "bf16"),
        ("aarch64", "Features : fp asimd\n", ""),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, machine, cpuinfo, flag):
    info = tmp_path / "cpuinfo"
    info.write_text(cpuinfo, encoding="utf-8")
    assert bf16._cpu_flag(info, machine) == flag
    assert bf16._cpu_flag(tmp_path / "missing", machine) == ""


def test_registration_lists_the_bf16_check_and_auto_serves_bf16_where_it_may(plain, check_texts, tmp_path, monkeypatch):
    art = served(plain, tmp_path / "lenient", check_texts, monkeypatch, LENIENT)
    manifest = verify_artifact(art)
    assert {BF16_CHECK, INT8_CHECK, ONNX_FP32} <= set(manifest["files"])  # listed, so hashed and verified
    report = json.loads((art / BF16_CHECK).read_text())
    assert report["passed"] and report["report"]["texts"] == len(check_texts) and report["tolerance"] == LENIENT.as_dict()

    cpu(monkeypatch, "amx_bf16")
    clf = ModelClassifier.from_dir(art)
    assert (clf.backend, clf.precision) == ("torch", "bf16")
    assert "torch bf16 (amx_bf16 on this CPU; within the tolerance at registration" in clf.backend_reason
    fp32 = ModelClassifier.from_dir(art, backend="torch")
    got, ref = clf.predict(TEXTS), fp32.predict(TEXTS)  # real autocast: close to fp32, not equal
    assert 0 < float(np.abs(got.scores - ref.scores).max()) < 0.05

    off = ModelClassifier.from_dir(art, bf16=False)
    assert (off.backend, off.precision) == ("onnx", "int8") and "bf16 not served: switched off" in off.backend_reason
    assert ModelClassifier.from_dir(art, backend="onnx").backend == "onnx"  # asking for ONNX gets ONNX

    cpu(monkeypatch, "")  # a CPU that would emulate bf16: slower than fp32, so never served there
    no_instr = ModelClassifier.from_dir(art)
    assert no_instr.precision == "int8" and "this CPU has no bf16 instructions" in no_instr.backend_reason


def test_a_model_outside_the_tolerance_is_never_served_in_bf16(plain, check_texts, tmp_path, monkeypatch):
    art = served(plain, tmp_path / "strict", check_texts, monkeypatch, STRICT)
    report = json.loads((art / BF16_CHECK).read_text())
    assert not report["passed"] and any("score" in f for f in report["failures"])
    cpu(monkeypatch, "amx_bf16")
    clf = ModelClassifier.from_dir(art)
    assert clf.precision == "fp32" and "bf16 not served: rejected at registration" in clf.backend_reason


def test_the_worker_wide_switch_and_the_cli_flag(plain, check_texts, tmp_path, monkeypatch, capsys):
    from news_signals.cli import main
    from news_signals.labelling.classifiers import model_classifier

    art = served(plain, tmp_path / "lenient", check_texts, monkeypatch, LENIENT)
    cpu(monkeypatch, "avx512_bf16")
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps({"title": t}) + "\n" for t in TEXTS if t), encoding="utf-8")

    def classify(out: str, *flags: str) -> str:
        argv = ["classify", "--method", "model", "--model-dir", str(art), "--input", str(inp),
                "--output", str(tmp_path / out), *flags]
        assert main(argv) == 0
        return capsys.readouterr().err

    assert "torch bf16 (avx512_bf16" in classify("bf16.jsonl")
    assert "bf16 not served: switched off" in classify("fp32.jsonl", "--no-bf16")
    monkeypatch.setenv("NEWS_SIGNALS_BF16", "0")  # e.g. for the feature pipeline's workers
    assert model_classifier(art).precision == "int8"  # the next choice: the (leniently) checked int8 graph
    assert "torch bf16" in classify("flag.jsonl", "--bf16")  # the flag wins over the variable


def test_an_artifact_checked_before_bf16_gets_only_its_bf16_check(plain, check_texts, tmp_path, monkeypatch):
    art = served(plain, tmp_path / "old", check_texts, monkeypatch, LENIENT)
    kept = {n: (art / n).read_bytes() for n in (ONNX_FP32, INT8_CHECK)}
    add_serving_files(art, kept)  # as registered before the bf16 check existed: no bf16_check.json
    assert BF16_CHECK not in verify_artifact(art)["files"]
    verdict = prepare_for_serving(art, texts=check_texts)
    manifest = verify_artifact(art)
    assert verdict["bf16"]["passed"] and BF16_CHECK in manifest["files"]
    assert all((art / n).read_bytes() == b for n, b in kept.items())  # the ONNX graph was not rebuilt
    # a second call finds everything current and changes nothing
    before = manifest["files"]
    prepare_for_serving(art, texts=check_texts)
    assert verify_artifact(art)["files"] == before


def test_the_check_refuses_when_the_bf16_model_cannot_run(plain, check_texts, monkeypatch):
    def broken(self, *a, **k):
        raise RuntimeError("no bf16 kernel")

    monkeypatch.setattr(bf16.Bf16Engine, "run", broken)
    report = bf16.run_check(load_artifact(plain), check_texts[:10], None)
    assert not report["passed"] and "could not run (RuntimeError: no bf16 kernel)" in report["failures"][0]
    assert not bf16.run_check(load_artifact(plain), [], None)["passed"]


def test_a_model_that_blends_keywords_registers_and_serves_the_blend(plain, check_texts, tmp_path, monkeypatch):
    """The bf16 and int8 checks decode as serving does: with the keyword strengths the blend needs
    (the 2026-12-06 demo's first blended model failed registration before they did)."""
    from news_signals.core.taxonomy import CATEGORIES

    blended = tmp_path / "blended-src"
    shutil.copytree(plain, blended)
    manifest_file = blended / "news_signals.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["presence_thresholds"] = {**manifest["presence_thresholds"], "transportation": 0.5}
    manifest["presence_keyword_blend"] = {"transportation": 0.5}
    manifest_file.write_text(json.dumps(manifest))
    art = served(blended, tmp_path / "blended", check_texts, monkeypatch, LENIENT)
    assert json.loads((art / BF16_CHECK).read_text())["passed"]
    int8 = json.loads((art / INT8_CHECK).read_text())
    assert int8["recipes"] and not any("could not run" in " ".join(r.get("failures", [])) for r in int8["recipes"].values())
    clf = ModelClassifier.from_dir(art, backend="torch", bf16=False)
    pred = clf.predict(TEXTS)
    assert pred.keyword_strength is not None and pred.keyword_strength.shape == (len(TEXTS), len(CATEGORIES))
    _, presence = clf.classify_with_presence(TEXTS)
    j = CATEGORIES.index("transportation")
    assert presence[:, j] == pytest.approx(0.5 * pred.presence()[:, j] + 0.5 * pred.keyword_strength[:, j], abs=1e-5)
