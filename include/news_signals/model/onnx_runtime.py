"""ONNX Runtime sessions over the ONNX files an artifact carries (serving only loads them).

The files are built once, when the model is registered (``model.export``), and listed with
their sha256 in the artifact's manifest. A session is made from the exact bytes that were read
and hashed here, so a file changed after the artifact was verified is never run.
Outputs: ``scores`` and one ``probs_<category>`` softmax per category, in the manifest's order.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_SESSIONS: dict[tuple[str, int], OnnxModel] = {}  # (sha256 of the bytes, threads) -> session
_LOCK = threading.Lock()


class OnnxUnavailable(RuntimeError):
    """The ONNX backend cannot be used for this artifact (the message says why)."""


@dataclass
class OnnxModel:
    """An ONNX Runtime session; ``run`` returns scores and tag probabilities (an ``Engine``)."""

    session: Any
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
    # it) spinning threads steal CPU (measured: docs/MODEL.md, "Backends and the default").
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def load_session(path: Path, sha256: str, threads: int | None = None) -> OnnxModel:
    """A session (cached per process) for the file at ``path``, whose bytes must hash to ``sha256``.

    Raises ``OnnxUnavailable`` naming the reason (changed file, bad graph).
    """
    key = (sha256, int(threads or 0))
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        data = Path(path).read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise OnnxUnavailable(f"{path} changed after the artifact was verified (sha256 {actual[:12]}…)")
        try:
            session = make_session(data, threads)
        except Exception as exc:  # noqa: BLE001 - any failure is a reason to serve another way
            raise OnnxUnavailable(f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from exc
        outputs = [o.name for o in session.get_outputs()]
        model = OnnxModel(session, tuple(o.removeprefix("probs_") for o in outputs[1:]))
        _SESSIONS[key] = model
        return model


def clear_sessions() -> None:
    with _LOCK:
        _SESSIONS.clear()
