"""ONNX Runtime inference for a verified model artifact: export once, cache, reuse.

The exported graph is a **derived cache, not part of the artifact**: the artifact stays the
``save_pretrained`` + ``heads.safetensors`` + manifest directory of ARCHITECTURE.md. The
first ONNX use of an artifact exports its ``MultiHeadModel`` (dynamic batch and sequence
axes; outputs ``scores`` and one ``probs_<category>`` softmax per category, in the
manifest's category order), runs ONNX Runtime's transformer optimizer for BERT-type
encoders (fused Attention, EmbedLayerNormalization, SkipLayerNormalization, BiasGelu)
and stores the file at::

    <cache root>/onnx/<manifest sha256>/model.onnx        (+ model.json, the cache record)
    <cache root>/onnx/<manifest sha256>/model-int8.onnx   (optional, dynamic int8, see int8_check)
    <cache root>/onnx/<manifest sha256>/model-int8.check.json  (its verdict against fp32)
    <cache root>/onnx/<manifest sha256>/model-int8-mixed.onnx  (+ .check.json: int8 with the FFN
                                                                 down-projections kept in fp32)

``<cache root>`` is ``$NEWS_SIGNALS_HOME/cache`` for a local home (a remote ``s3://`` home
uses ``~/.cache/news_signals``: ONNX Runtime needs a local file). Files are written to a
temporary name and renamed, so a reader never sees half a file. A cached file is used only
if its record names the artifact's verified manifest hash, this recipe's version, this
ONNX Runtime version and the sha256 of the exact bytes that are loaded; anything else
(a foreign or tampered file, an artifact that changed, an upgrade) is exported again.

Export recipe (measured, see docs/MODEL.md): the TorchScript exporter with the encoder's
*eager* attention gives the graph ORT's BERT fusions recognise (6 fused Attention nodes
for MiniLM-L6); the dynamo exporter works too and is the fallback, but its SDPA graph
is not fused. Outputs equal the torch path within float rounding (~1e-6).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from news_signals.model.artifact import LoadedArtifact

log = logging.getLogger(__name__)

RECIPE_VERSION = 2  # bump when the export/optimize/quantize recipe changes: old cache entries are redone
KEEP_ENTRIES = 4  # artifacts whose ONNX files stay cached (least recently used ones are pruned)
# int8 recipes, fastest first: the classifier serves the first one that passes the int8 check.
#   int8        every encoder MatMul and fused Attention in int8 (the embeddings stay fp32: quantizing
#               the embedding table saves no time and moved 2-3 present tags in 100 more)
#   int8-mixed  the same but the FFN down-projections (intermediate -> hidden) stay fp32: they see
#               the largest, outlier-heavy activations (GELU outputs), the classic int8 trouble spot
#               in BERT-type encoders; about 1/3 of the FLOPs, so a smaller speed-up that keeps more tags
INT8_RECIPES = ("int8", "int8-mixed")
INT8_OP_TYPES = ("MatMul", "Attention")  # what the int8 recipes quantize (not the embeddings' Gather)
VARIANTS = ("fp32", *INT8_RECIPES)
OPSET = 17

_SESSIONS: dict[tuple[str, str, int], OnnxModel] = {}
_LOCK = threading.Lock()


class OnnxUnavailable(RuntimeError):
    """The ONNX backend cannot be built for this artifact (the message says why)."""


def cache_root() -> Path:
    """``$NEWS_SIGNALS_HOME/cache`` when the home is local, else ``~/.cache/news_signals``."""
    from news_signals.core.config import default_home

    home = default_home()
    if "://" in home and not home.startswith("file://"):
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base) / "news_signals"
    return Path(home.removeprefix("file://")) / "cache"


def cache_dir(manifest_sha256: str) -> Path:
    return cache_root() / "onnx" / manifest_sha256


def _file_names(variant: str) -> tuple[str, str]:
    stem = "model" if variant == "fp32" else f"model-{variant}"
    return f"{stem}.onnx", f"{stem}.json"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


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


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomic(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".tmp-{uuid.uuid4().hex}-{target.name}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def build_onnx(artifact: LoadedArtifact, variant: str = "fp32") -> Path:
    """Export and optimize (fp32), or quantize the cached fp32 file (int8 recipes), into the cache
    and write the cache record; returns the file."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown ONNX variant {variant!r}; choose one of {VARIANTS}")
    digest = artifact.manifest_sha256
    directory = cache_dir(digest)
    directory.mkdir(parents=True, exist_ok=True)
    onnx_name, record_name = _file_names(variant)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".export-", dir=directory) as tmp:
        if variant == "fp32":
            raw, final = Path(tmp) / "raw.onnx", Path(tmp) / "fused.onnx"
            info = export_onnx(artifact, raw)
            info["fused_operators"] = optimize_onnx(raw, final, artifact.model.encoder.config)
        else:  # quantize the verified fp32 file (exported first when the cache has none)
            data, fp32_record = cached_or_built(artifact, "fp32")
            source, final = Path(tmp) / "fp32.onnx", Path(tmp) / f"{variant}.onnx"
            source.write_bytes(data)
            info = {k: fp32_record[k] for k in ("exporter", "outputs", "categories", "fused_operators")
                    if k in fp32_record}
            info["fp32_onnx_sha256"] = fp32_record["onnx_sha256"]
            info["quantization"] = quantize_onnx(source, final, variant)
        data = final.read_bytes()
    record = {
        "recipe_version": RECIPE_VERSION,
        "variant": variant,
        "manifest_sha256": digest,
        "onnx_sha256": _sha256_bytes(data),
        "onnxruntime": _ort_version(),
        "artifact": str(artifact.path),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "export_seconds": round(time.perf_counter() - started, 2),
        **info,
    }
    write_atomic(directory / onnx_name, data)
    write_atomic(directory / record_name, json.dumps(record, indent=2, sort_keys=True).encode())
    log.info("exported %s to ONNX (%s, %s) in %.1fs: %s", artifact.path, variant, info["exporter"],
             record["export_seconds"], directory / onnx_name)
    _prune(directory)
    return directory / onnx_name


def _prune(keep: Path) -> None:
    """Drop the cached ONNX files of all but the ``KEEP_ENTRIES`` most recently used artifacts."""
    try:
        entries = sorted((p for p in keep.parent.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP_ENTRIES:]:
            if old != keep:
                shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:
        log.debug("could not prune the ONNX cache: %s", exc)


def read_cached(artifact: LoadedArtifact, variant: str = "fp32") -> tuple[bytes, dict[str, Any]] | None:
    """The cached ONNX bytes and record, or None (with the reason logged) when they may not be used."""
    directory = cache_dir(artifact.manifest_sha256)
    onnx_name, record_name = _file_names(variant)
    try:
        record = json.loads((directory / record_name).read_text(encoding="utf-8"))
        data = (directory / onnx_name).read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring the cached ONNX model in %s: %s", directory, exc)
        return None
    expected = {
        "recipe_version": RECIPE_VERSION,
        "variant": variant,
        "manifest_sha256": artifact.manifest_sha256,
        "onnxruntime": _ort_version(),
        "onnx_sha256": _sha256_bytes(data),
        "categories": list(artifact.manifest["categories"]),
    }
    wrong = [k for k, v in expected.items() if not isinstance(record, dict) or record.get(k) != v]
    if wrong:
        log.warning("ignoring the cached ONNX model %s: %s do not match this artifact; exporting again",
                    directory / onnx_name, ", ".join(wrong))
        return None
    return data, record


def cached_or_built(artifact: LoadedArtifact, variant: str) -> tuple[bytes, dict[str, Any]]:
    """The verified cached bytes and record of ``variant``, built into the cache first when missing."""
    cached = read_cached(artifact, variant)
    if cached is not None:
        os.utime(cache_dir(artifact.manifest_sha256))  # recently used: kept by _prune
        return cached
    build_onnx(artifact, variant)
    cached = read_cached(artifact, variant)
    if cached is None:
        raise OnnxUnavailable(f"the exported {variant} file did not verify (changed while it was written?)")
    return cached


@dataclass
class OnnxModel:
    """An ONNX Runtime session for one artifact; ``run`` returns scores and tag probabilities."""

    session: Any
    record: dict[str, Any]
    categories: tuple[str, ...]

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        out = self.session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})
        return out[0], out[1:]


def make_session(data: bytes, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or 0)  # 0: ORT's default (one per physical core)
    options.inter_op_num_threads = 1
    # No busy-waiting between operators: on a shared worker (Airflow, a training job beside
    # it) spinning threads steal CPU; measured as fast or faster under load.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def load_onnx(artifact: LoadedArtifact, threads: int | None = None, variant: str = "fp32") -> OnnxModel:
    """The session for ``artifact`` (cached per process), exporting it first when the cache has none.

    Raises ``OnnxUnavailable`` naming the reason (no onnxruntime, no verified manifest hash,
    export failed, cache not writable, the session cannot be created).
    """
    if not artifact.manifest_sha256:
        raise OnnxUnavailable("the artifact has no verified manifest hash (load it with load_artifact)")
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
    key = (artifact.manifest_sha256, variant, int(threads or 0))
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        try:
            data, record = cached_or_built(artifact, variant)
            model = OnnxModel(make_session(data, threads), record, tuple(record["categories"]))
        except OnnxUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to use torch instead
            raise OnnxUnavailable(f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from exc
        _SESSIONS[key] = model
        return model


def drop_session(artifact: LoadedArtifact, threads: int | None, variant: str) -> None:
    """Forget one cached session (an int8 recipe that was refused: its memory is not kept)."""
    with _LOCK:
        _SESSIONS.pop((artifact.manifest_sha256, variant, int(threads or 0)), None)


def clear_sessions() -> None:
    with _LOCK:
        _SESSIONS.clear()
