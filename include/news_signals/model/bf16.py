"""bf16 serving: the model under bfloat16 autocast, on CPUs that multiply bf16 in hardware.

Why: where the CPU has AMX or AVX-512 BF16, oneDNN runs bf16 matmuls several times faster than
fp32 (docs/MODEL.md, "bf16 on CPUs with bf16 instructions"), and bf16 keeps fp32's exponent, so
unlike dynamic int8 it needs no calibration and moves no activation outliers. It is still checked
once, at registration, against the fp32 model with the int8 tolerance
(``int8_check.TOLERANCE``: the product's tags and scores), and the check is stored in the
artifact (``bf16_check.json``). Serving picks bf16 only where the check passed *and* the serving
CPU has the instructions: emulated bf16 (AVX2, AVX-512 without BF16) is slower than fp32, so
those machines keep the ONNX Runtime path. The check itself does not depend on the CPU (bf16
rounding is the same everywhere) and runs on any machine.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from news_signals.model.predictor import TorchEngine

if TYPE_CHECKING:
    from news_signals.model.artifact import LoadedArtifact

log = logging.getLogger(__name__)

BF16_CHECK_VERSION = 1  # bump when the texts or the measures change: artifacts are checked again at registration
# CPU flags (Linux /proc/cpuinfo) of bf16 arithmetic in hardware: x86 AMX / AVX-512 BF16, Arm's BF16 extension.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


@lru_cache(maxsize=1)
def native_bf16() -> str:
    """The CPU flag that makes bf16 fast here (e.g. ``amx_bf16``), or "" when bf16 would be emulated.

    oneDNN's own test (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is true on every AVX-512
    CPU, with or without BF16 instructions, so the flags are read as well.
    """
    try:
        import torch

        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return ""
    except (AttributeError, RuntimeError, ImportError):  # a build without oneDNN
        return ""
    return _cpu_flag(Path("/proc/cpuinfo"), platform.machine())


def _cpu_flag(cpuinfo: Path, machine: str) -> str:
    """The first of ``NATIVE_BF16_FLAGS`` in ``cpuinfo``'s flags (x86) or features (Arm), else ""."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    wanted = NATIVE_BF16_FLAGS if machine.lower() in ("aarch64", "arm64") else NATIVE_BF16_FLAGS[:2]
    return next((f for f in wanted if f in flags), "")


class Bf16Engine(TorchEngine):
    """The loaded model under ``torch.autocast(bfloat16)`` and ``torch.inference_mode`` (outputs in fp32).

    Autocast, not a bf16 copy of the weights: matmuls run in bf16 while LayerNorm, softmax and
    the pooling stay fp32, which flipped 2.5x fewer present tags than bf16 weights on the same
    texts (docs/MODEL.md), and the fp32 model is shared with the other backends, uncopied.
    """

    def run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
        import torch

        with torch.autocast(self.device.type, dtype=torch.bfloat16):
            return super().run(input_ids, attention_mask)


def run_check(
    art: LoadedArtifact,
    texts: Sequence[str],
    human: tuple[list[int], list[int], Any] | None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The bf16 model against the fp32 model on ``texts`` through the real predictor and decoder.

    ``human`` as in ``int8_check.run_check``. Returns the report stored as ``bf16_check.json``;
    ``passed`` says whether serving may use bf16.
    """
    import torch

    from news_signals.model import int8_check
    from news_signals.model.decoder import Decoder
    from news_signals.model.predictor import Predictor

    started = time.perf_counter()
    report: dict[str, Any] = {
        "check_version": BF16_CHECK_VERSION,
        "tolerance": int8_check.TOLERANCE.as_dict(),
        "texts": {"total": len(texts), "heldout": len(human[0]) if human else 0},
        "native_bf16_at_check": native_bf16(),
        "passed": False,
    }
    if not texts:
        report["failures"] = ["no texts to check bf16 on"]
        return report
    decoder = Decoder.from_manifest(art.manifest)
    kw = {"max_length": art.max_length, "categories": art.manifest["categories"],
          "vocabularies": art.manifest["vocabularies"]}
    device = torch.device("cpu")
    try:
        fp32 = Predictor(TorchEngine(art.model, device, threads), art.tokenizer, **kw).predict(texts)
        bf16 = Predictor(Bf16Engine(art.model, device, threads), art.tokenizer, **kw).predict(texts)
        reference = decoder.to_signals(decoder.attach_keywords(fp32, texts))
        got = decoder.to_signals(decoder.attach_keywords(bf16, texts))
    except Exception as exc:  # noqa: BLE001 - an unchecked bf16 model is never served
        report["failures"] = [f"the bf16 check could not run ({type(exc).__name__}: {exc})"]
        return report
    result = int8_check.compare_signals(reference, got)
    if human:
        result["heldout"] = int8_check.compare_signals([reference[i] for i in human[0]], [got[i] for i in human[0]])
        result["human_macro_f1"] = {"fp32": int8_check.human_f1(reference, human), "bf16": int8_check.human_f1(got, human)}
    missed = int8_check.failures(result)
    report.update(report=int8_check.rounded(result), failures=missed, passed=not missed,
                  seconds=round(time.perf_counter() - started, 1))
    log.info("bf16 check of %s: %s (%s)", art.path.name, int8_check.summary(result), "; ".join(missed) or "within tolerance")
    return report
