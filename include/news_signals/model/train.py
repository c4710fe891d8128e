"""Fine-tune the multi-head model on a snapshot and write the artifact.

What the replaced trainer lacked, and this one does: the cosine schedule's warm-up is
really stepped every batch (``get_cosine_schedule_with_warmup``), gradients are clipped,
model selection is by validation **macro-F1** (not loss) with early stopping, headlines are
truncated at 64 tokens (not 512) and padded per batch, and each example's loss counts by
the labeller's confidence (``confidence_mode``: ``weight`` multiplies each category's loss
by its confidence, ``filter`` drops category labels below ``filter_threshold``, ``none``
treats all labels alike). Rare tags get class weights (inverse frequency ** 0.5).

Restarts resume: after every epoch the model, optimizer, scheduler, history and early
stopping state go to ``out_dir/checkpoints/last/state.pt`` (our own file, read back with
``weights_only=True``) and the best weights to ``checkpoints/best/model.safetensors``.
The finished artifact replaces ``out_dir`` in one rename.

Two training paths (``train_path``; docs/MODEL.md "Training speed"): ``fast`` (the default) freezes
the embeddings and the lower ``frozen_layers`` blocks, runs them once per text and caches their
output, then trains the top blocks and heads on the cache in length-bucketed batches, so a CPU
worker affords more data per retrain at the same held-out quality (``bench/bench_train.py``);
``full`` back-propagates through the whole encoder every step (an encoder without BERT-style
``encoder.layer`` blocks always trains this way). ``precision``
``auto`` trains under CUDA autocast (bf16, or fp16 + GradScaler on older GPUs), under bf16
autocast on CPUs that compute it natively (AVX-512 BF16 or AMX) and in fp32 on other CPUs. The
manifest's ``metrics.training`` says which path and precision ran and at what examples/s.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from news_signals.core.storage import atomic_path
from news_signals.core.taxonomy import (
    CATEGORIES,
    confidence_column,
    human_column,
    score_column,
    tag_column,
    tag_vocabulary,
)

log = logging.getLogger(__name__)

CONFIDENCE_MODES = ("weight", "filter", "none")
TRAIN_PATHS = ("fast", "full")
PRECISIONS = ("auto", "fp32", "bf16")
BUCKET_BATCHES = 32  # length buckets span this many batches: little padding, order still shuffled
KNOWN_LANGUAGES = ("en", "sv")  # what the keyword labeller's language detector tells apart


@dataclass
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4
    head_lr_multiplier: float = 100.0  # fresh heads need a far higher rate than the encoder (docs/MODEL.md)
    weight_decay: float = 0.01
    max_length: int = 64  # 98% of replay-corpus texts fit in 64 MiniLM tokens (p50 31, p99 70)
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    patience: int = 2
    seed: int = 13
    sample: int | None = None
    confidence_mode: str = "weight"
    filter_threshold: float = 0.5
    mse_weight: float = 1.0
    ce_weight: float = 1.0
    class_weight_power: float = 0.5
    dropout: float = 0.1
    threads: int | None = None
    log_every: int = 20
    model_name: str = "news_signals"
    eval_test: bool = True
    languages: tuple[str, ...] = ()  # train (and later serve) only these languages; () = all
    train_path: str = "fast"  # fast: cached frozen lower layers + bucketing (docs/MODEL.md); full: the whole encoder every step
    frozen_layers: int = 4  # fast path: blocks run once and cached (MiniLM-L6: the top 2 train)
    precision: str = "auto"  # auto: CUDA autocast (bf16, fp16 on old GPUs); on CPU bf16 autocast where native, else fp32

    def __post_init__(self) -> None:
        if self.confidence_mode not in CONFIDENCE_MODES:
            raise ValueError(f"confidence_mode {self.confidence_mode!r}: choose one of {CONFIDENCE_MODES}")
        if self.train_path not in TRAIN_PATHS:
            raise ValueError(f"train_path {self.train_path!r}: choose one of {TRAIN_PATHS}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose one of {PRECISIONS}")
        if int(self.frozen_layers) < 0:
            raise ValueError(f"frozen_layers must be 0 or more, got {self.frozen_layers}")
        for name in ("epochs", "batch_size", "max_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        self.languages = tuple(self.languages or ())
        unknown = sorted(set(self.languages) - set(KNOWN_LANGUAGES))
        if unknown:
            raise ValueError(f"languages {unknown} cannot be detected; choose from {list(KNOWN_LANGUAGES)} (or none = all)")
        if self.sample is not None and self.sample < 1:
            raise ValueError(f"sample must be a positive number of rows, got {self.sample}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# ---- data ------------------------------------------------------------------------------------------
@dataclass
class Encoded:
    """A split tokenized once (no padding) with its targets and per-category loss weights."""

    input_ids: list[list[int]]
    scores: Any  # float tensor [n, C]
    tags: Any  # long tensor [n, C]
    weights: Any  # float tensor [n, C]

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_split(df: Any, tokenizer: Any, config: TrainConfig) -> Encoded:
    import numpy as np
    import torch

    enc = tokenizer(list(df["text"]), truncation=True, max_length=config.max_length, padding=False)
    scores = np.zeros((len(df), len(CATEGORIES)), dtype=np.float32)
    tags = np.zeros((len(df), len(CATEGORIES)), dtype=np.int64)
    conf = np.ones((len(df), len(CATEGORIES)), dtype=np.float32)
    for j, c in enumerate(CATEGORIES):
        index = {t: k for k, t in enumerate(tag_vocabulary(c))}
        tags[:, j] = [index[t] for t in df[tag_column(c)]]
        scores[:, j] = np.where(tags[:, j] == 0, 0.0, df[score_column(c)].to_numpy(dtype=np.float32))
        conf[:, j] = df[confidence_column(c)].to_numpy(dtype=np.float32)
    if config.confidence_mode == "none":
        weights = np.ones_like(conf)
    elif config.confidence_mode == "filter":
        weights = (conf >= config.filter_threshold).astype(np.float32)
    else:
        weights = conf
    return Encoded(list(enc["input_ids"]), torch.from_numpy(scores), torch.from_numpy(tags), torch.from_numpy(weights))


def class_weights(data: Encoded, power: float) -> dict[str, Any]:
    """Per category, (n / (k * count)) ** power over the tags that carry weight; unseen tags get the max."""
    import torch

    out = {}
    for j, c in enumerate(CATEGORIES):
        k = len(tag_vocabulary(c))
        counts = torch.bincount(data.tags[:, j], weights=data.weights[:, j], minlength=k).float()
        total = counts.sum().clamp(min=1.0)
        w = (total / (k * counts.clamp(min=1.0))) ** power
        out[c] = w.clamp(max=float(w[counts > 0].max()) if (counts > 0).any() else 1.0)
    return out


def collate(data: Encoded, idx: Sequence[int], pad_id: int) -> dict[str, Any]:
    """Dynamic padding: the batch is as wide as its longest text."""
    import torch

    width = max(len(data.input_ids[i]) for i in idx)
    ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    for row, i in enumerate(idx):
        seq = data.input_ids[i]
        ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    sel = torch.as_tensor(list(idx))
    return {"input_ids": ids, "attention_mask": mask, "scores": data.scores[sel], "tags": data.tags[sel], "weights": data.weights[sel]}


# ---- the loop ------------------------------------------------------------------------------------
def cpu_has_native_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively here (AVX-512 BF16 or AMX); emulated bf16 is slower than fp32."""
    from news_signals.model.bf16 import native_bf16

    return bool(native_bf16())


def _device_and_autocast(precision: str = "auto"):
    """(device, autocast context factory, autocast dtype or None) for ``precision`` on this machine."""
    import contextlib

    import torch

    if torch.cuda.is_available():
        if precision == "fp32":
            return torch.device("cuda"), contextlib.nullcontext, None
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.device("cuda"), (lambda: torch.autocast("cuda", dtype=dtype)), dtype
    # auto: bf16 where the CPU has bf16 instructions (same held-out human quality, measured in
    # docs/MODEL.md); emulated bf16 is slower than fp32, so other CPUs train in fp32 unless asked.
    if precision == "bf16" or (precision == "auto" and cpu_has_native_bf16()):
        return torch.device("cpu"), (lambda: torch.autocast("cpu", dtype=torch.bfloat16)), torch.bfloat16
    return torch.device("cpu"), contextlib.nullcontext, None


def _precision_name(dtype: Any) -> str:
    """``fp32`` (no autocast), ``bf16`` or ``fp16``: the autocast dtype as the manifest names it."""
    return "fp32" if dtype is None else {"bfloat16": "bf16", "float16": "fp16"}[str(dtype).removeprefix("torch.")]


# ---- the fast path: frozen lower layers cached once ---------------------------------------------------
@dataclass
class HiddenCache:
    """Per text, the output of the frozen lower layers (unpadded ``[len, hidden]``), on the CPU."""

    hidden: list[Any]
    start_layer: int

    def batch(self, idx: Sequence[int], device: Any) -> tuple[Any, Any]:
        """The texts' cached states padded to the batch's longest, and their attention mask."""
        import torch

        width = max(self.hidden[i].shape[0] for i in idx)
        first = self.hidden[idx[0]]
        out = torch.zeros((len(idx), width, first.shape[1]), dtype=first.dtype)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            n = self.hidden[i].shape[0]
            out[row, :n] = self.hidden[i]
            mask[row, :n] = 1
        return out.to(device), mask.to(device)


def frozen_layer_count(model: Any, requested: int) -> int:
    """How many lower blocks the fast path freezes: ``requested``, at most all but the top one."""
    layers = model.encoder_layers()
    if layers is None:
        raise ValueError(
            f"train_path 'fast' needs a BERT-family encoder (encoder.layer blocks); "
            f"{type(model.encoder).__name__} has none: use train_path 'full'"
        )
    k = min(int(requested), max(len(layers) - 1, 0))
    if k != requested:
        log.info("frozen_layers %d capped at %d: the encoder has %d blocks and at least one must train", requested, k, len(layers))
    return k


def freeze_lower(model: Any, n_layers: int) -> None:
    """No gradients for the embeddings and the first ``n_layers`` blocks (their output is cached)."""
    for p in model.encoder.embeddings.parameters():
        p.requires_grad_(False)
    for layer in model.encoder_layers()[:n_layers]:
        for p in layer.parameters():
            p.requires_grad_(False)


def build_hidden_cache(model: Any, data: Encoded, pad_id: int, n_layers: int, device: Any, autocast: Any, amp_dtype: Any, batch_size: int = 64) -> HiddenCache:
    """Run the frozen layers once per text (eval mode, length-sorted batches) and keep their output."""
    import torch

    was_training = model.training
    model.eval()
    store_dtype = amp_dtype if amp_dtype is not None else torch.float32  # bf16 halves the cache's memory
    hidden: list[Any] = [None] * len(data)
    order = sorted(range(len(data)), key=lambda i: len(data.input_ids[i]))
    with torch.no_grad(), autocast():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = collate(data, idx, pad_id)
            mask = batch["attention_mask"].to(device)
            out = model.lower_hidden(batch["input_ids"].to(device), mask, n_layers).to(store_dtype).cpu()
            for row, i in enumerate(idx):
                hidden[i] = out[row, : len(data.input_ids[i])].clone()
    model.train(was_training)
    return HiddenCache(hidden, n_layers)


def bucketed_batches(lengths: Sequence[int], batch_size: int, generator: Any) -> list[list[int]]:
    """A shuffled epoch in batches of similar length: shuffle, sort within buckets, shuffle the batches."""
    import torch

    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * BUCKET_BATCHES
    batches: list[list[int]] = []
    for start in range(0, len(order), span):
        bucket = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches += [bucket[j : j + batch_size] for j in range(0, len(bucket), batch_size)]
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[p] for p in perm]


def _prepare_out_dir(out_dir: Path) -> None:
    from news_signals.model.artifact import MANIFEST

    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a directory for the model artifact")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        known = (out_dir / MANIFEST).exists() or (out_dir / "checkpoints").exists()
        if not known:
            raise ValueError(
                f"--out {out_dir} exists and is not a model artifact or checkpoint directory; "
                "choose a new or empty directory (it is replaced when training finishes)"
            )


def train(
    snapshot_dir: str | Path,
    base_model: str,
    out_dir: str | Path,
    config: TrainConfig | None = None,
) -> Path:
    """Train on ``snapshot_dir`` from ``base_model``; write the artifact to ``out_dir`` and return it."""
    import torch
    from transformers import get_cosine_schedule_with_warmup

    from news_signals.model.artifact import LoadedArtifact, save_artifact
    from news_signals.model.evaluate import score_predictions
    from news_signals.model.inference import ModelClassifier
    from news_signals.model.modeling import MultiHeadModel, load_encoder, multihead_loss
    from news_signals.model.snapshot_io import read_split, snapshot_id, truth_signals

    config = config or TrainConfig()
    snapshot_dir, out_dir = Path(snapshot_dir), Path(out_dir)
    _prepare_out_dir(out_dir)
    splits = {s: read_split(snapshot_dir, s) for s in (("train", "val", "test") if config.eval_test else ("train", "val"))}
    snap_id = snapshot_id(snapshot_dir)
    if config.languages:  # before sampling, so --sample N means N rows the model is for
        splits = {s: _only_languages(df, s, config.languages) for s, df in splits.items()}
    if config.sample:
        small = max(20, config.sample // 4)
        splits = {
            s: df.sample(n=min(len(df), config.sample if s == "train" else small), random_state=config.seed)
            .reset_index(drop=True)
            for s, df in splits.items()
        }
    if config.threads:
        torch.set_num_threads(int(config.threads))
    random.seed(config.seed)
    torch.manual_seed(config.seed)

    encoder, tokenizer = load_encoder(base_model)
    model = MultiHeadModel(encoder, dropout=config.dropout)
    device, autocast, amp_dtype = _device_and_autocast(config.precision)
    model.to(device)
    fast = config.train_path == "fast"
    if fast and model.encoder_layers() is None:
        log.warning("train_path fast needs encoder.layer blocks, which %s has not: training the full encoder",
                    type(model.encoder).__name__)
        fast = False
    n_frozen = frozen_layer_count(model, config.frozen_layers) if fast else 0
    if fast:
        freeze_lower(model, n_frozen)
    path_name = f"{_precision_name(amp_dtype)}+" + (f"cached-lower-{n_frozen}+bucketed" if fast else "full")
    data = {s: encode_split(df, tokenizer, config) for s, df in splits.items()}
    if config.confidence_mode != "none":
        kept = float(data["train"].weights.mean())
        log.info("confidence mode %s: mean training weight %.3f", config.confidence_mode, kept)
    cw = {c: w.to(device) for c, w in class_weights(data["train"], config.class_weight_power).items()}
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    head_params = [p for n, p in model.named_parameters() if not n.startswith("encoder.")]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": config.lr},
            {"params": head_params, "lr": config.lr * config.head_lr_multiplier},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = math.ceil(len(data["train"]) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None

    ckpt_dir = out_dir / "checkpoints"
    last_file, best_file = ckpt_dir / "last" / "state.pt", ckpt_dir / "best" / "model.safetensors"
    run_key = {"snapshot": snap_id, "base_model": base_model, **asdict(config)}
    run_key.pop("threads"), run_key.pop("log_every")
    state = {"epoch": 0, "history": [], "best_f1": -1.0, "best_epoch": 0, "bad_epochs": 0}
    if last_file.is_file():
        saved = torch.load(last_file, map_location="cpu", weights_only=True)  # our own checkpoint
        if saved.get("run_key") == run_key:
            model.load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            state = {k: saved[k] for k in state}
            torch.set_rng_state(saved["rng"])  # dropout continues exactly as without the restart
            log.info("resuming from %s after epoch %d", last_file, state["epoch"])
        else:
            log.warning("ignoring checkpoint %s: it belongs to a different snapshot, base model or config", last_file)
            shutil.rmtree(ckpt_dir, ignore_errors=True)

    def evaluate_split(
        split: str, thresholds: dict[str, float] | None = None, raw: bool = False, blend: dict[str, float] | None = None
    ) -> Any:
        """Metrics through the same code path as `news_signals evaluate` (plus loss for the curve)."""
        manifest = {
            "categories": list(CATEGORIES),
            "vocabularies": {c: list(v) for c, v in model.vocabularies.items()},
            "max_length": config.max_length,
            "presence_thresholds": thresholds or {},
            "presence_keyword_blend": blend or {},
        }
        clf = ModelClassifier(LoadedArtifact(model, tokenizer, manifest, out_dir), batch_size=64, device=str(device))
        pred = clf.predict(list(splits[split]["text"]))
        if raw:
            return pred
        metrics = score_predictions(truth_signals(splits[split]), clf.to_signals(pred), clf.decoder.presence(pred))
        d = data[split]
        mse = float(((torch.from_numpy(pred.scores) - d.scores) ** 2).mean())
        ce = 0.0
        for j, c in enumerate(CATEGORIES):
            p = torch.from_numpy(pred.tag_probs[c]).clamp(min=1e-7)
            ce += float(-torch.log(p.gather(1, d.tags[:, j : j + 1])).mean())
        metrics["loss"] = config.mse_weight * mse + config.ce_weight * ce / len(CATEGORIES)
        return metrics

    log.info(
        "training %s on %d texts (val %d) for up to %d epochs, batch %d, %d steps, device %s",
        base_model, len(data["train"]), len(data["val"]), config.epochs, config.batch_size, total_steps, device,
    )
    train_start = time.perf_counter()
    examples_seen, loop_seconds = 0, 0.0
    cache = None
    if fast and state["epoch"] < config.epochs and state["bad_epochs"] < config.patience:
        t_cache = time.perf_counter()
        cache = build_hidden_cache(model, data["train"], pad_id, n_frozen, device, autocast, amp_dtype)
        loop_seconds += time.perf_counter() - t_cache
        log.info("cached the frozen lower %d layers for %d texts in %.1f s", n_frozen, len(data["train"]), loop_seconds)
    lengths = [len(ids) for ids in data["train"].input_ids]
    for epoch in range(state["epoch"] + 1, config.epochs + 1):
        if state["bad_epochs"] >= config.patience:
            break
        model.train()
        gen = torch.Generator().manual_seed(config.seed * 1000 + epoch)
        if cache is not None:
            epoch_batches = bucketed_batches(lengths, config.batch_size, gen)
        else:
            order = torch.randperm(len(data["train"]), generator=gen).tolist()
            epoch_batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        t0, seen, loss_sum, mse_sum, ce_sum = time.perf_counter(), 0, 0.0, 0.0, 0.0
        for step, idx in enumerate(epoch_batches):
            if cache is not None:
                hidden, mask = cache.batch(idx, device)
                sel = torch.as_tensor(idx)
                d = data["train"]
                batch = {"scores": d.scores[sel].to(device), "tags": d.tags[sel].to(device), "weights": d.weights[sel].to(device)}
                with autocast():
                    out = model.forward_from_hidden(hidden, mask, cache.start_layer)
            else:
                batch = {k: v.to(device) for k, v in collate(data["train"], idx, pad_id).items()}
                with autocast():
                    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            loss, parts = multihead_loss(
                out, batch["scores"], batch["tags"], batch["weights"], categories=CATEGORIES,
                class_weights=cw, mse_weight=config.mse_weight, ce_weight=config.ce_weight,
            )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
                optimizer.step()
            scheduler.step()
            seen += len(idx)
            loss_sum += float(loss.detach()) * len(idx)
            mse_sum += parts["mse"] * len(idx)
            ce_sum += parts["ce"] * len(idx)
            if config.log_every and (step + 1) % config.log_every == 0:
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                log.info(
                    "epoch %d step %d/%d loss %.4f lr %.2e %.1f examples/s",
                    epoch, step + 1, steps_per_epoch, loss_sum / seen, scheduler.get_last_lr()[0], rate,
                )
        train_seconds = time.perf_counter() - t0
        examples_seen += seen
        loop_seconds += train_seconds
        val = evaluate_split("val")
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_mse": mse_sum / seen,
            "train_ce": ce_sum / seen,
            "val_loss": val["loss"],
            "val_macro_f1": val["macro_f1"],
            "val_tag_accuracy": val["tag_accuracy"],
            "val_score_mae": val["score_mae"],
            "lr_end": scheduler.get_last_lr()[0],
            "train_seconds": train_seconds,
            "train_examples_per_s": seen / max(train_seconds, 1e-9),
        }
        state["history"].append(record)
        improved = val["macro_f1"] > state["best_f1"]
        if improved:
            state.update(best_f1=val["macro_f1"], best_epoch=epoch, bad_epochs=0)
            _save_weights(model, best_file)
        else:
            state["bad_epochs"] += 1
        state["epoch"] = epoch
        log.info(
            "epoch %d: train loss %.4f, val loss %.4f, val macro-F1 %.4f%s (%.1f examples/s)",
            epoch, record["train_loss"], record["val_loss"], record["val_macro_f1"],
            " (best)" if improved else f" (no gain {state['bad_epochs']}/{config.patience})",
            record["train_examples_per_s"],
        )
        with atomic_path(last_file) as tmp:
            torch.save(
                {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "run_key": run_key, "rng": torch.get_rng_state(), **state},
                tmp,
            )
        if state["bad_epochs"] >= config.patience:
            log.info("early stopping: no val macro-F1 gain for %d epochs", config.patience)
            break

    if best_file.is_file():
        _load_weights(model, best_file)
    model.eval()
    thresholds, threshold_sources, blend = _tune_thresholds(evaluate_split, splits["val"])
    metrics: dict[str, Any] = {
        "best_epoch": state["best_epoch"],
        "val_macro_f1": state["best_f1"],
        "presence_thresholds_tuned_on": threshold_sources,
        "presence_keyword_blend": blend,
    }
    val = evaluate_split("val", thresholds, blend=blend)
    metrics["val"] = {k: v for k, v in val.items() if k != "counts"}
    if "test" in splits:
        test = evaluate_split("test", thresholds, blend=blend)
        metrics["test"] = {k: v for k, v in test.items() if k != "counts"}
        metrics["test_macro_f1"] = test["macro_f1"]
    elapsed = time.perf_counter() - train_start
    metrics["train_examples_per_s"] = examples_seen / elapsed if examples_seen and elapsed > 0 else None
    metrics["n_train"], metrics["n_val"] = len(data["train"]), len(data["val"])
    metrics["training"] = {
        "path": path_name,
        "device": str(device),
        # examples trained / seconds in the training loop, the lower-layer cache included
        "examples_per_s": examples_seen / loop_seconds if examples_seen and loop_seconds > 0 else None,
        "loop_seconds": loop_seconds,
        "examples": examples_seen,
    }
    log.info("training path %s: %s examples/s", path_name, metrics["training"]["examples_per_s"])

    extra = {"history.json": _history_json(state["history"]), "training_curve.png": _curve_png(state["history"])}
    save_artifact(
        model.cpu(), tokenizer, out_dir,
        model_name=config.model_name, base_model=base_model, max_length=config.max_length,
        snapshot_id=snap_id, metrics=metrics, extra_files=extra, train_config=asdict(config),
        presence_thresholds=thresholds, languages=list(config.languages), presence_keyword_blend=blend,
    )
    return out_dir


def _only_languages(df: Any, split: str, languages: Sequence[str]) -> Any:
    """Rows the keyword labeller's detector places in ``languages`` (or cannot place at all)."""
    from news_signals.labelling.keywords import KeywordLabeller, served_language

    kw = KeywordLabeller()
    keep = [served_language(kw.analyse(t).lang_lean, languages) for t in df["text"]]
    out = df[keep].reset_index(drop=True)
    log.info("%s split: %d of %d rows in languages %s (or undetected)", split, len(out), len(df), list(languages))
    if out.empty:
        raise ValueError(
            f"the {split} split has no rows in languages {list(languages)}; "
            "train for other languages (--languages) or build a snapshot with such texts"
        )
    return out


def _tune_thresholds(evaluate_split: Any, val: Any) -> tuple[dict[str, float], dict[str, str], dict[str, float]]:
    """Per-category P(present) thresholds that maximise validation F1, on human labels where the
    validation split has enough of them (see thresholds.py); what each was tuned on; and, where it
    helps on those human rows, the keyword labeller's weight blended into P(present) (model.decoder)."""
    import numpy as np

    from news_signals.model.decoder import keyword_strength
    from news_signals.model.thresholds import tune_keyword_blend, tune_presence_thresholds_human_first

    pred = evaluate_split("val", raw=True)
    gold = np.stack([(val[tag_column(c)] != "").to_numpy() for c in CATEGORIES], axis=1)
    human = np.stack([val[human_column(c)].to_numpy(dtype=bool) for c in CATEGORIES], axis=1)
    presence = pred.presence()
    thresholds, sources = tune_presence_thresholds_human_first(presence, gold, human, CATEGORIES)
    keyword = keyword_strength(list(val["text"]), CATEGORIES)
    thresholds, blend = tune_keyword_blend(presence, keyword, gold, human, CATEGORIES, thresholds, sources)
    for c in CATEGORIES:
        if c in thresholds:
            how = f", keyword blend {blend[c]:.1f}" if c in blend else ""
            log.info("presence threshold %s %.2f, tuned on %s%s", c, thresholds[c], sources[c], how)
    if not thresholds:
        log.info("presence thresholds: none tuned on %d validation rows (too few positives)", len(val))
    return thresholds, sources, blend


def _save_weights(model: Any, path: Path) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, tmp)


def _load_weights(model: Any, path: Path) -> None:
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)))


def _history_json(history: list[dict[str, Any]]) -> bytes:
    import json

    return json.dumps(history, indent=2).encode()


def _curve_png(history: list[dict[str, Any]]) -> bytes:
    """Loss (train, val) and val macro-F1 per epoch as a PNG (matplotlib Agg, no display)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.2))
    ax1, ax2 = fig.subplots(1, 2)
    epochs = [h["epoch"] for h in history]
    ax1.plot(epochs, [h["train_loss"] for h in history], "o-", label="train loss")
    ax1.plot(epochs, [h["val_loss"] for h in history], "s-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.legend()
    ax2.plot(epochs, [h["val_macro_f1"] for h in history], "o-", color="tab:green")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val macro-F1")
    ax2.set_ylim(0, 1)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()
