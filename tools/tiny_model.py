"""Small, fast building blocks for tests: a tiny BERT, a labelled snapshot, a tiny artifact.

Other engineers' DAG tests need *a* real model artifact without minutes of training:
``build_tiny_artifact(out_dir)`` builds one in seconds (a 2-layer, 32-wide BERT with a
WordPiece tokenizer trained locally on the texts, trained for one short epoch on a
synthetic snapshot whose labels are known by construction). It goes through the real
trainer and the real artifact writer, so it loads with ``ModelClassifier.from_dir``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from news_signals.core.taxonomy import (
    CATEGORIES,
    Signals,
    confidence_column,
    empty_signals,
    score_column,
    tag_column,
)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# (category, tag, score, template) — {p} is a place; known labels by construction.
_TEMPLATES: tuple[tuple[str, str, float, str], ...] = (
    ("emergencies", "fire", -0.8, "Large fire destroys warehouse in {p}"),
    ("emergencies", "earthquake", -0.9, "Earthquake shakes {p}, buildings damaged"),
    ("emergencies", "evacuation", -0.6, "Residents of {p} ordered to evacuate after gas leak"),
    ("crime", "robbery", -0.7, "Armed robbery at a jewellery shop in {p}"),
    ("crime", "police", -0.3, "Police arrest two suspects in {p}"),
    ("crime", "theft", -0.4, "Bicycle theft wave hits {p}"),
    ("festivals", "concert", 0.7, "Thousands enjoy open-air concert in {p}"),
    ("festivals", "parade", 0.6, "Colourful parade fills the streets of {p}"),
    ("transportation", "delay", -0.4, "Train delays in {p} after signal failure"),
    ("transportation", "closure", -0.5, "Motorway near {p} closed for repairs"),
    ("transportation", "traffic", -0.3, "Heavy traffic expected around {p} this weekend"),
    ("weather_temp", "heatwave", -0.5, "Heatwave brings record temperatures to {p}"),
    ("weather_temp", "cold", -0.4, "Bitter cold grips {p} overnight"),
    ("weather_wet", "flood", -0.8, "Floods cut off roads in {p}"),
    ("weather_wet", "snow", -0.3, "Heavy snow falls on {p}"),
    ("weather_wet", "storm", -0.6, "Storm topples trees across {p}"),
    ("sports", "football", 0.4, "{p} football club wins derby"),
    ("sports", "hockey", 0.4, "Hockey team from {p} reaches the final"),
    ("sports", "championship", 0.8, "{p} athletes celebrate championship title"),
    ("economics", "market", 0.3, "Stock market in {p} rallies on strong earnings"),
    ("economics", "employment", -0.5, "Factory in {p} cuts 300 jobs"),
    ("economics", "inflation", -0.4, "Inflation squeezes households in {p}"),
    ("politics", "election", 0.1, "Voters in {p} head to the polls in local election"),
    ("politics", "protest", -0.3, "Protesters march against new law in {p}"),
    ("politics", "government", 0.0, "Government announces new budget for {p}"),
    ("", "", 0.0, "Museum in {p} opens a new exhibition of old maps"),
    ("", "", 0.0, "Recipe of the week: a simple soup from {p}"),
)
_PLACES = ("Stockholm", "Malmo", "Uppsala", "Lund", "Oslo", "Helsinki", "Gothenburg", "Umea", "Kiruna", "Visby")


def synthetic_rows(n_per_template: int = 4, seed: int = 0) -> list[dict[str, Any]]:
    """Headlines with known signals (one category each, or none), shuffled deterministically."""
    rng = random.Random(seed)
    rows = []
    for cat, tag, score, template in _TEMPLATES:
        for place in rng.sample(_PLACES, k=min(n_per_template, len(_PLACES))):
            sig = empty_signals()
            if cat:
                sig[cat] = {"score": score, "tag": tag}
            rows.append({"text": template.format(p=place), "signals": sig})
    rng.shuffle(rows)
    return rows


def signals_frame(texts: Sequence[str], signals: Sequence[Signals], start_date: str = "2026-01-01"):
    """A snapshot-shaped DataFrame: article_id, text, date, signal + confidence columns, primary_category."""
    import hashlib

    import pandas as pd
    from news_signals.model.evaluate import primary_category

    records = []
    for text, sig in zip(texts, signals, strict=True):
        row: dict[str, Any] = {
            "article_id": hashlib.sha256(text.encode()).hexdigest()[:16],
            "text": text,
            "date": start_date,
        }
        for c in CATEGORIES:
            row[score_column(c)] = float(sig[c]["score"])
            row[tag_column(c)] = str(sig[c]["tag"])
            row[confidence_column(c)] = float(sig[c].get("confidence", 1.0))
        primary = primary_category(sig)
        row["primary_category"] = CATEGORIES[primary] if primary is not None else "none"
        records.append(row)
    return pd.DataFrame.from_records(records)


def write_snapshot(df, out_dir: str | Path, *, snapshot_id: str | None = None, fractions=(0.7, 0.15), seed: int = 0) -> Path:
    """Split rows into train/val/test parquet files plus a manifest (shuffled with ``seed``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = df.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    n = len(df)
    n_train, n_val = int(n * fractions[0]), max(1, int(n * fractions[1]))
    parts = {"train": df.iloc[:n_train], "val": df.iloc[n_train : n_train + n_val], "test": df.iloc[n_train + n_val :]}
    for name, part in parts.items():
        if part.empty:
            raise ValueError(f"too few rows ({n}) for a {name} split; give at least 10 texts")
        part.reset_index(drop=True).to_parquet(out_dir / f"{name}.parquet", index=False)
    manifest = {"id": snapshot_id or out_dir.name, "counts": {k: len(v) for k, v in parts.items()}, "source": "testing"}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return out_dir


def make_snapshot_from_texts(
    texts: Sequence[str], out_dir: str | Path, labeller: Any = None, *, snapshot_id: str | None = None, seed: int = 0
) -> Path:
    """Label ``texts`` with ``labeller`` (default: the keyword labeller) and write a snapshot."""
    if labeller is None:
        from news_signals.labelling.keywords import KeywordLabeller

        labeller = KeywordLabeller()
    texts = [t for t in dict.fromkeys(t.strip() for t in texts) if t]
    signals = labeller.classify_texts(texts)
    return write_snapshot(signals_frame(texts, signals), out_dir, snapshot_id=snapshot_id, seed=seed)


def make_synthetic_snapshot(out_dir: str | Path, n_per_template: int = 4, seed: int = 0) -> Path:
    rows = synthetic_rows(n_per_template, seed)
    df = signals_frame([r["text"] for r in rows], [r["signals"] for r in rows])
    return write_snapshot(df, out_dir, snapshot_id=f"synthetic-{seed}", seed=seed)


def build_tiny_base_model(
    out_dir: str | Path, texts: Sequence[str] | None = None, *, hidden: int = 32, layers: int = 2, vocab_size: int = 600
) -> Path:
    """A randomly initialised BERT (hidden 32, 2 layers) + WordPiece tokenizer trained on ``texts``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    texts = list(texts) if texts else [r["text"] for r in synthetic_rows(len(_PLACES))]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS))
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    tok.decoder = decoders.WordPiece()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


def build_tiny_artifact(out_dir: str | Path, snapshot_dir: str | Path | None = None, *, epochs: int = 6) -> Path:
    """A real (tiny) model artifact in seconds: tiny BERT + synthetic or given snapshot + the real trainer."""
    import tempfile

    from news_signals.model.snapshot_io import read_split
    from news_signals.model.train import TrainConfig, train

    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="tiny-model-") as tmp:
        snap = Path(snapshot_dir) if snapshot_dir else make_synthetic_snapshot(Path(tmp) / "snapshot")
        texts = list(read_split(snap, "train")["text"])
        base = build_tiny_base_model(Path(tmp) / "base", texts)
        # full path: a randomly initialised tiny encoder has no lower layers worth freezing
        config = TrainConfig(epochs=epochs, batch_size=16, lr=1e-3, head_lr_multiplier=5.0, patience=epochs,
                             log_every=0, model_name="tiny", train_path="full")
        return train(snap, str(base), out_dir, config)


