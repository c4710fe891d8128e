"""The one ONNX export path, and int8 and bf16 built and checked once, when a model is registered.

``prepare_for_serving(directory)`` runs in the retrain DAG's register step (before
``registry.register``, so the registry's fingerprint covers what it adds) and writes into the
artifact, listed with their sha256 in the manifest (``model.artifact.SERVING_FILES``):

    onnx/model.onnx        the fp32 graph: exported once (TorchScript exporter, encoder switched
                           to eager attention; the dynamo exporter is the fallback, unfused), fused
                           by ONNX Runtime's transformer optimizer (Attention, EmbedLayerNormalization,
                           SkipLayerNormalization, BiasGelu), checked against torch on the check texts
    onnx/model-int8.onnx   the fastest recipe of ``INT8_RECIPES`` that passes the int8 check (absent
                           when none does, or when the check could not run)
    int8_check.json        the check: every recipe's report and misses, the texts it ran on, the
                           tolerance, which recipe is served (``served``; null: fp32)
    bf16_check.json        the bf16 model against fp32 on the same texts and tolerance (``passed``):
                           served on CPUs with bf16 instructions (``model.bf16``); no file of its own

Serving (``model.inference``) only loads these files: no export, no quantization, no verdict
cache. An artifact without them (older, or an export that failed) is served by torch, or by
fp32 ONNX when int8 was refused, and ``backend_reason`` says which and why.

int8 is ONNX Runtime's dynamic int8 (per-channel weights, activations quantized per call) of
the encoder's MatMul and fused Attention nodes; the embeddings stay fp32 (quantizing the table
saved no time and flipped present tags). Recipes, fastest first:
  int8        every encoder MatMul and fused Attention
  int8-mixed  the same with the FFN down-projections (intermediate -> hidden) kept fp32: they read
              the GELU outputs, the largest and most outlier-heavy activations, the classic int8
              trouble spot of BERT-type encoders (about 1/3 of the FLOPs)
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from news_signals.model.onnx_runtime import OnnxModel, OnnxUnavailable, make_session

if TYPE_CHECKING:
    from news_signals.model.artifact import LoadedArtifact
    from news_signals.retrain.heldout import HeldoutSet

log = logging.getLogger(__name__)

INT8_RECIPES = ("int8", "int8-mixed")
INT8_OP_TYPES = ("MatMul", "Attention")  # what the int8 recipes quantize (not the embeddings' Gather)
OPSET = 17
# texts for the fp32-vs-torch comparison when the check's texts cannot be read
SAMPLE_TEXTS = ("Large fire destroys warehouse in the city centre", "Storm floods roads", "Team wins the final", "")
ONNX_TOLERANCE = 1e-3  # max |difference| of scores and tag probabilities, fp32 ONNX vs torch (rounding only)


# ---- export -------------------------------------------------------------------------------------
def _export_wrapper(model: Any) -> Any:
    import torch

    class Exported(torch.nn.Module):
        """``MultiHeadModel`` with tuple outputs: scores, then softmax(tag logits) per category."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask)
            return (out.scores, *(torch.softmax(out.tag_logits[c], dim=-1) for c in self.inner.categories))

    return Exported(model).eval()


def export_onnx(artifact: LoadedArtifact, path: Path) -> dict[str, Any]:
    """Export ``artifact.model`` (a CPU copy, eager attention) to ``path``; returns how it was done."""
    import torch

    model = copy.deepcopy(artifact.model).float().cpu().eval()
    encoder = model.encoder
    if hasattr(encoder, "set_attn_implementation"):
        try:  # the eager attention graph is the one ORT's attention fusion recognises
            encoder.set_attn_implementation("eager")
        except Exception as exc:  # noqa: BLE001 - an encoder without it exports as it is
            log.info("keeping the encoder's attention implementation for export: %s", exc)
    wrapper = _export_wrapper(model)
    categories = list(model.categories)
    outputs = ["scores", *(f"probs_{c}" for c in categories)]
    # A padded batch of two, so the traced graph takes the attention-mask path.
    enc = artifact.tokenizer(["news signals export example", "news"], padding=True, return_tensors="pt")
    args = (enc["input_ids"], enc["attention_mask"])
    errors = []
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation chatter; the result is checked by tests
        try:
            torch.onnx.export(
                wrapper, args, str(path), dynamo=False, opset_version=OPSET,
                input_names=["input_ids", "attention_mask"], output_names=outputs,
                dynamic_axes={"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
                              **{o: {0: "batch"} for o in outputs}},
            )
            return {"exporter": "torchscript", "outputs": outputs, "categories": categories}
        except Exception as exc:  # noqa: BLE001 - try the other exporter, then report both
            errors.append(f"torchscript exporter: {exc}")
        try:
            batch = torch.export.Dim("batch", min=1, max=65536)
            seq = torch.export.Dim("sequence", min=1, max=int(getattr(encoder.config, "max_position_embeddings", 512)))
            program = torch.onnx.export(
                wrapper, args, None, dynamo=True, external_data=False, opset_version=max(OPSET, 18),
                input_names=["input_ids", "attention_mask"], output_names=outputs,
                dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            )
            program.save(str(path))
            return {"exporter": "dynamo", "outputs": outputs, "categories": categories}
        except Exception as exc:  # noqa: BLE001
            errors.append(f"dynamo exporter: {exc}")
    raise OnnxUnavailable("ONNX export failed (" + "; ".join(" ".join(e.split())[:300] for e in errors) + ")")


def optimize_onnx(src: Path, dst: Path, config: Any) -> dict[str, int]:
    """ORT's transformer fusions for BERT-like encoders; copies the file unchanged otherwise."""
    model_type = str(getattr(config, "model_type", ""))
    if model_type not in ("bert", "distilbert", "roberta", "xlm-roberta", "electra"):
        shutil.copyfile(src, dst)
        return {}
    from onnxruntime.transformers.optimizer import optimize_model

    quiet = _quiet_ort_transformers_loggers()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = optimize_model(
                str(src), model_type="bert", num_heads=int(config.num_attention_heads),
                hidden_size=int(config.hidden_size), opt_level=0,
            )
        stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(dst))
        return stats
    except Exception as exc:  # noqa: BLE001 - the unfused graph is still correct, only slower
        log.warning("ONNX Runtime transformer optimizer failed (%s); using the unfused graph", exc)
        shutil.copyfile(src, dst)
        return {}
    finally:
        for logger, level in quiet:
            logger.setLevel(level)


def _quiet_ort_transformers_loggers() -> list[tuple[logging.Logger, int]]:
    """ORT's optimizer logs every fusion at INFO from top-level module loggers (``fusion_base``,
    ``onnx_model``...); raise them to WARNING while it runs. Returns what to restore."""
    import sys

    import onnxruntime.transformers as ort_transformers

    folder = str(Path(ort_transformers.__file__).parent)
    changed = []
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", "") or "").startswith(folder):
            logger = logging.getLogger(name)
            changed.append((logger, logger.level))
            logger.setLevel(logging.WARNING)
    return changed


def ffn_down_projections(model: Any) -> list[str]:
    """Names of the MatMul nodes whose weight maps a wider space onto a narrower one (rows > columns):
    in a transformer encoder exactly the FFN down-projections (intermediate -> hidden), whatever
    the family names its modules."""
    weights = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2:
            dims = weights.get(node.input[1], ())
            if len(dims) == 2 and dims[0] > dims[1]:
                names.append(node.name)
    return names


def quantize_onnx(src: Path, dst: Path, recipe: str = "int8") -> dict[str, Any]:
    """Dynamic int8 (per-channel weights, activations quantized per call) of the encoder's MatMul and
    fused Attention nodes, minus what ``recipe`` keeps in fp32 (see ``INT8_RECIPES``); returns
    what was kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if recipe not in INT8_RECIPES:
        raise ValueError(f"unknown int8 recipe {recipe!r}; choose one of {INT8_RECIPES}")
    keep_fp32 = ffn_down_projections(onnx.load(str(src))) if recipe == "int8-mixed" else []
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.ERROR))  # the quantizer logs ~60 lines per model to the root logger (INFO and a
    # pre-processing hint at WARNING that does not apply to this graph)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=list(INT8_OP_TYPES), nodes_to_exclude=keep_fp32,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.setLevel(level)
    return {"recipe": recipe, "op_types": list(INT8_OP_TYPES), "fp32_nodes": keep_fp32}




# ---- build and check at registration -------------------------------------------------------------
def prepare_for_serving(
    directory: str | Path,
    *,
    heldout: HeldoutSet | None = None,
    threads: int | None = None,
    texts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Build the ONNX files, the int8 check and the bf16 check into the artifact in ``directory`` (idempotent).

    ``heldout``: the held-out human labels; their texts join the checks and the int8 (bf16)
    model's human macro-F1 must stay within the tolerance of fp32's. ``texts`` replaces the
    checks' corpus texts (tests). Returns the int8 check (``int8_check.json``) with the bf16
    verdict under ``bf16``. An export that fails is logged and leaves the artifact without ONNX
    files (served by torch); a broken artifact raises ``ArtifactError``.
    """
    from news_signals.model import bf16, int8_check
    from news_signals.model.artifact import (
        BF16_CHECK,
        INT8_CHECK,
        ONNX_FP32,
        ONNX_INT8,
        add_serving_files,
        load_artifact,
    )

    directory = Path(directory)
    art = load_artifact(directory)
    existing, existing_bf16 = _current_check(art), _current_bf16_check(art)
    if existing is not None and existing_bf16 is not None:
        log.info("%s already carries its ONNX files and checks (int8 served: %s; bf16 %s)", directory,
                 existing.get("served") or "fp32", "passed" if existing_bf16.get("passed") else "refused")
        return {**existing, "bf16": _bf16_verdict(existing_bf16)}
    started = time.perf_counter()
    try:
        check_texts, human, texts_error = *_check_texts(art, heldout, texts), None
    except Exception as exc:  # noqa: BLE001 - no check, no int8 nor bf16; the fp32 graph is still served
        check_texts, human, texts_error = [], None, f"{type(exc).__name__}: {exc}"
    bf16_report = existing_bf16 or bf16.run_check(art, check_texts, human, threads)
    bf16_file = {BF16_CHECK: json.dumps(bf16_report, indent=2, sort_keys=True).encode()}
    if existing is not None:  # an artifact checked before bf16 existed: add its bf16 check only
        add_serving_files(directory, {**_listed_serving_bytes(art), **bf16_file})
        return {**existing, "bf16": _bf16_verdict(bf16_report)}
    with tempfile.TemporaryDirectory(prefix=".serving-") as tmp:
        try:
            fp32_path, info = build_fp32(art, Path(tmp))
            fp32 = OnnxModel(make_session(fp32_path.read_bytes(), threads), tuple(art.manifest["categories"]))
            fp32_diff = _onnx_vs_torch(art, fp32, check_texts[:256] or SAMPLE_TEXTS)
        except OnnxUnavailable as exc:
            log.warning("%s: no ONNX files built (%s); the model will be served by torch", directory, exc)
            add_serving_files(directory, bf16_file)
            return {"served": None, "onnx": False, "reason": str(exc), "bf16": _bf16_verdict(bf16_report)}
        if fp32_diff > ONNX_TOLERANCE:
            reason = f"the fp32 ONNX graph differs from torch by {fp32_diff:.2e} (> {ONNX_TOLERANCE:g})"
            log.warning("%s: %s; no ONNX files built, the model will be served by torch", directory, reason)
            add_serving_files(directory, bf16_file)
            return {"served": None, "onnx": False, "reason": reason, "bf16": _bf16_verdict(bf16_report)}
        report = int8_check.run_check(art, fp32, check_texts, human, lambda recipe: _quantized(fp32_path, recipe, threads))
        if texts_error:
            report["reason"] = f"the int8 check could not run ({texts_error})"
        report.update(fp32={**info, "max_diff_vs_torch": fp32_diff}, build_seconds=round(time.perf_counter() - started, 1))
        files: dict[str, bytes] = {ONNX_FP32: fp32_path.read_bytes(), **bf16_file}
        if report["served"]:
            files[ONNX_INT8] = (Path(tmp) / f"{report['served']}.onnx").read_bytes()
        files[INT8_CHECK] = json.dumps(report, indent=2, sort_keys=True).encode()
        add_serving_files(directory, files)
    log.info("%s: ONNX files built in %.1fs; int8 %s; bf16 %s", directory, time.perf_counter() - started,
             f"served ({report['served']})" if report["served"] else f"refused ({report.get('reason', '')})",
             "passed" if bf16_report["passed"] else f"refused ({'; '.join(bf16_report.get('failures') or [])})")
    return {**report, "bf16": _bf16_verdict(bf16_report)}


def _bf16_verdict(report: dict[str, Any]) -> dict[str, Any]:
    """What the register step logs of the bf16 check: passed, and what it missed."""
    return {"passed": bool(report.get("passed")), "failures": list(report.get("failures") or [])}


def _listed_serving_bytes(art: LoadedArtifact) -> dict[str, bytes]:
    """The serving files the artifact lists now (kept when one more is added)."""
    from news_signals.model.artifact import SERVING_FILES

    return {name: path.read_bytes() for name in SERVING_FILES if (path := art.listed(name)) is not None}


def _current_bf16_check(art: LoadedArtifact) -> dict[str, Any] | None:
    """The artifact's bf16 check when it is listed and made by this check version and tolerance."""
    from news_signals.model import bf16, int8_check
    from news_signals.model.artifact import BF16_CHECK

    path = art.listed(BF16_CHECK)
    if path is None:
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    same = report.get("check_version") == bf16.BF16_CHECK_VERSION and report.get("tolerance") == int8_check.TOLERANCE.as_dict()
    return report if same else None


def _current_check(art: LoadedArtifact) -> dict[str, Any] | None:
    """The artifact's int8 check when it is listed and made by this check version and tolerance."""
    from news_signals.model import int8_check
    from news_signals.model.artifact import INT8_CHECK, ONNX_FP32

    path = art.listed(INT8_CHECK)
    if path is None or art.listed(ONNX_FP32) is None:
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    same = report.get("check_version") == int8_check.CHECK_VERSION and report.get("tolerance") == int8_check.TOLERANCE.as_dict()
    return report if same else None


def build_fp32(art: LoadedArtifact, tmp: Path) -> tuple[Path, dict[str, Any]]:
    """Export and fuse the fp32 graph into ``tmp``; returns the file and how it was made."""
    import onnxruntime

    raw, fused = tmp / "raw.onnx", tmp / "fp32.onnx"
    started = time.perf_counter()
    try:
        info = export_onnx(art, raw)
        info["fused_operators"] = optimize_onnx(raw, fused, art.model.encoder.config)
    except OnnxUnavailable:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure means: serve with torch
        raise OnnxUnavailable(f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from exc
    raw.unlink(missing_ok=True)
    info.update(onnxruntime=onnxruntime.__version__, export_seconds=round(time.perf_counter() - started, 1))
    return fused, info


def _quantized(fp32_path: Path, recipe: str, threads: int | None) -> tuple[OnnxModel, dict[str, Any]]:
    """The ``recipe`` int8 graph beside ``fp32_path`` (``<recipe>.onnx``) and its session."""
    import onnx

    target = fp32_path.with_name(f"{recipe}.onnx")
    info = quantize_onnx(fp32_path, target, recipe)
    categories = tuple(o.name.removeprefix("probs_") for o in onnx.load(str(target)).graph.output[1:])
    return OnnxModel(make_session(target.read_bytes(), threads), categories), info


def _check_texts(
    art: LoadedArtifact, heldout: HeldoutSet | None, texts: Sequence[str] | None
) -> tuple[list[str], Any]:
    """The check's texts (corpus headlines, then the held-out texts the model serves) and the held-out
    part as (row positions, HeldoutSet) or None."""
    from news_signals.model import int8_check

    languages = sorted(art.manifest.get("languages") or [])
    corpus = list(texts) if texts is not None else int8_check.verification_texts(languages)
    if heldout is None or not len(heldout):
        return corpus, None
    from news_signals.model.routing import LanguageRouter

    served = [i for i, other in enumerate(LanguageRouter(languages).other_language(heldout.texts)) if not other]
    start = len(corpus)
    return corpus + [heldout.texts[i] for i in served], (list(range(start, start + len(served))), served, heldout)


def _onnx_vs_torch(art: LoadedArtifact, onnx_model: OnnxModel, texts: Sequence[str]) -> float:
    """Max |difference| of scores and tag probabilities between the fp32 graph and the torch model."""
    import numpy as np
    import torch

    from news_signals.model.predictor import Predictor, TorchEngine

    kw = {"max_length": art.max_length, "categories": art.manifest["categories"],
          "vocabularies": art.manifest["vocabularies"]}
    ref = Predictor(TorchEngine(art.model, torch.device("cpu")), art.tokenizer, **kw).predict(texts)
    got = Predictor(onnx_model, art.tokenizer, **kw).predict(texts)
    return max(float(np.abs(ref.scores - got.scores).max(initial=0.0)),
               *(float(np.abs(ref.tag_probs[c] - got.tag_probs[c]).max(initial=0.0)) for c in ref.tag_probs))
