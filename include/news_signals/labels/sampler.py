"""Active learning: which unlabelled recent articles an annotator's hour is best spent on.

Candidates are the articles of the last ``lookback_days`` daily partitions that nobody has
labelled yet (by ``article_id`` and by normalised text, so a syndicated copy is not asked again).
Per article and category an *informativeness* is

    disagreement (the production model vs the labellers: 1 when they disagree on presence,
                  0.5 when they agree on presence but not on the tag)
  + uncertainty  (1 - |2 p - 1| for the model's presence probability p: 1 at p = 0.5; a labeller
                  that reports a confidence c in [0.5, 1], as the hybrid does, adds 2 (1 - c);
                  the larger counts)

The labellers are the partition's bootstrap labels (the keyword labeller's ``<category>_tag``)
and, when its encoder loads, the hybrid labeller. Without a promoted model the production
classifier is the keyword labeller itself (said in the log and in every row's ``classifier``),
and only the hybrid's disagreement and the labellers' confidence remain.

A labelling project has a scope: the categories its annotators label and the languages they read
(``categories`` / ``languages``; default every category and language). Out-of-scope articles are
never queued and out-of-scope categories add nothing to an article's informativeness, so no
question is spent where the answer cannot come (an English-only team asked about Swedish news).

Selection: first a quota per (category, language) bucket, taken round-robin over the buckets in
order of their best candidate, so rare categories and the smaller language are asked about too;
then the rest by global priority (the article's best informativeness). Ties are broken by a
seeded hash of the article id, never by dict or set order: the same seed gives the same list.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from news_signals.core.dates import parse_day
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import ABSENT, CATEGORIES, Signals, score_column, tag_column
from news_signals.core.text import article_text, normalise_title

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)

QUEUE_DIR = "queue"
DEFAULT_QUOTA_SHARE = 0.5  # share of the queue reserved for the per-(category, language) quotas
ELIGIBLE_PRESENCE = 0.25  # a category is asked about when some labeller says present or p reaches this
_ROUND = 4  # priorities equal to this many decimals count as ties (broken by the seeded hash)


def tiebreak(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def candidate_frame(
    storage: Storage, lookback_days: int, end_date: str | None
) -> tuple[pd.DataFrame, list[str]]:
    """Unlabelled articles of the window's partitions (one row per article, stable order) and the dates read."""
    import pandas as pd

    from news_signals.labels.store import LabelStore

    if lookback_days < 1:
        raise ValueError(f"lookback_days={lookback_days}: give at least 1 day")
    dates = storage.partition_dates()
    if end_date is not None:
        end_date = parse_day(end_date, "end_date")
        dates = [d for d in dates if d <= end_date]
    if not dates:
        return pd.DataFrame(columns=["article_id", "text", "title", "language", "date"]), []
    end = date.fromisoformat(end_date or dates[-1])
    start = (end - timedelta(days=lookback_days - 1)).isoformat()
    window = [d for d in dates if d >= start]
    frames = []
    for d in window:
        df = storage.read_parquet(storage.partition_file(d))
        df["date"] = d
        frames.append(df)
    raw = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if raw.empty:
        return pd.DataFrame(columns=["article_id", "text", "title", "language", "date"]), window
    description = raw["description"] if "description" in raw else pd.Series([None] * len(raw))
    raw["title"] = raw["title"].fillna("").astype(str)
    raw["text"] = [article_text(t, d) for t, d in zip(raw["title"], description, strict=True)]
    raw["language"] = raw.get("language", pd.Series([""] * len(raw))).fillna("").astype(str)
    raw["_norm"] = raw["text"].map(normalise_title)
    raw = raw[raw["_norm"] != ""].sort_values(["date", "article_id"], kind="stable")
    raw = raw.drop_duplicates("article_id").drop_duplicates("_norm")
    store = LabelStore(storage)
    ids, texts = store.labelled_ids(), store.labelled_texts()
    fresh = raw[~raw["article_id"].astype(str).isin(ids) & ~raw["_norm"].isin(texts)]
    log.info(
        "labelling candidates: %d articles in %d partitions (%s..%s), %d already labelled",
        len(fresh), len(window), window[0], window[-1], len(raw) - len(fresh),
    )
    return fresh.reset_index(drop=True), window


def model_opinion(classifier: Any, texts: Sequence[str]) -> tuple[list[Signals], np.ndarray]:
    """The production classifier's signals and P(present) per category ([n, 9], CATEGORIES order).

    A model exposes ``classify_with_presence``; for any other classifier P(present) comes from its
    ``confidence`` (present: confidence, absent: 1 - confidence) or is 1 / 0 without one.
    """
    import numpy as np

    with_presence = getattr(classifier, "classify_with_presence", None)
    if callable(with_presence):
        signals, presence = with_presence(list(texts))
        cats = list(getattr(classifier, "categories", CATEGORIES))
        order = [cats.index(c) for c in CATEGORIES]
        return signals, np.asarray(presence, dtype=float)[:, order]
    signals = classifier.classify_texts(list(texts))
    presence = np.zeros((len(signals), len(CATEGORIES)))
    for i, sig in enumerate(signals):
        for j, c in enumerate(CATEGORIES):
            present = sig[c]["tag"] != ABSENT
            conf = sig[c].get("confidence")
            presence[i, j] = (conf if present else 1.0 - conf) if conf is not None else float(present)
    return signals, presence


def hybrid_opinion(texts: Sequence[str]) -> tuple[list[Signals] | None, str]:
    """The hybrid labeller's signals, or None with the reason when its encoder cannot be used."""
    try:
        from news_signals.labelling.hybrid import HybridLabeller

        hybrid = HybridLabeller()
        return hybrid.classify_texts(list(texts)), hybrid.name
    except Exception as exc:  # noqa: BLE001 - a second opinion is optional; say why it is missing
        log.warning("hybrid labeller unavailable for active learning (%s: %s); keywords only", type(exc).__name__, exc)
        return None, f"unavailable ({exc})"


def informativeness(
    model: Sequence[Signals], presence: np.ndarray, labellers: dict[str, list[Signals]]
) -> tuple[np.ndarray, np.ndarray, list[list[str]]]:
    """([n, 9] informativeness, [n, 9] eligible, per row and category the reason text)."""
    import numpy as np

    n = len(model)
    info = np.zeros((n, len(CATEGORIES)))
    eligible = np.zeros((n, len(CATEGORIES)), dtype=bool)
    reasons: list[list[str]] = [["" for _ in CATEGORIES] for _ in range(n)]
    for i in range(n):
        for j, c in enumerate(CATEGORIES):
            p = float(presence[i, j])
            m_tag = model[i][c]["tag"]
            tags = {name: sigs[i][c]["tag"] for name, sigs in labellers.items()}
            present = {m_tag != ABSENT, *(t != ABSENT for t in tags.values())}
            if len(present) > 1:
                disagree = 1.0
            elif m_tag != ABSENT and any(t != m_tag for t in tags.values()):
                disagree = 0.5
            else:
                disagree = 0.0
            uncertainty = 1.0 - abs(2.0 * p - 1.0)
            for sigs in labellers.values():
                conf = sigs[i][c].get("confidence")
                if conf is not None:
                    uncertainty = max(uncertainty, min(1.0, max(0.0, 2.0 * (1.0 - float(conf)))))
            info[i, j] = disagree + uncertainty
            eligible[i, j] = True in present or p >= ELIGIBLE_PRESENCE
            said = ", ".join(f"{name} {_tag(t)}" for name, t in tags.items())
            reasons[i][j] = f"{c}: model {_tag(m_tag)} (p={p:.2f}), {said}"
    return info, eligible, reasons


def _tag(tag: str) -> str:
    return tag if tag != ABSENT else "absent"


def select_for_labelling(
    n: int,
    *,
    seed: int = 13,
    lookback_days: int = 30,
    end_date: str | None = None,
    storage: Storage | None = None,
    classifier: Any = None,
    use_hybrid: bool = True,
    quota_share: float = DEFAULT_QUOTA_SHARE,
    categories: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` most informative unlabelled recent articles, with the model's predictions and why each was picked.

    ``categories`` / ``languages`` restrict the queue to the project's scope (None: everything).
    """
    if n < 0:
        raise ValueError(f"n={n}: give the number of articles to queue (>= 0)")
    if not 0.0 <= quota_share <= 1.0:
        raise ValueError(f"quota_share={quota_share} must be in [0, 1]")
    in_scope = scope_categories(categories)
    storage = storage or Storage()
    cands, _ = candidate_frame(storage, lookback_days, end_date)
    if languages:
        cands = in_languages(cands, languages)
    if n == 0 or cands.empty:
        return []
    if classifier is None:
        from news_signals.labelling.classifiers import resolve_classifier

        resolution = resolve_classifier("auto")
        classifier = resolution.classifier
        log.info("active learning with %s (%s)", classifier.name, resolution.reason)
        if resolution.fell_back:
            log.warning("no production model: the keyword labeller stands in for it; disagreement comes from the hybrid only")
    texts = cands["text"].tolist()
    signals, presence = model_opinion(classifier, texts)
    labellers = {"bootstrap": _bootstrap_signals(cands)}
    if use_hybrid:
        hybrid, _ = hybrid_opinion(texts)
        if hybrid is not None:
            labellers["hybrid"] = hybrid
    info, eligible, reasons = informativeness(signals, presence, labellers)
    scoped = [j for j, c in enumerate(CATEGORIES) if c in in_scope]  # first wins ties, as argmax did
    out_of_scope = [j for j, c in enumerate(CATEGORIES) if c not in in_scope]
    info[:, out_of_scope], eligible[:, out_of_scope] = 0.0, False
    order = _choose(cands, info, eligible, n, seed, quota_share)
    out = []
    for i, bucket in order:
        j = CATEGORIES.index(bucket[0]) if bucket else max(scoped, key=lambda k, i=i: info[i, k])
        row = cands.iloc[i]
        out.append(
            {
                "article_id": str(row["article_id"]),
                "text": str(row["text"]),
                "title": str(row["title"]),
                "language": str(row["language"]),
                "date": str(row["date"]),
                "predictions": {c: _prediction(signals[i][c], float(presence[i, k])) for k, c in enumerate(CATEGORIES)},
                "reason": (f"quota {bucket[0]}/{bucket[1] or 'unknown language'}: " if bucket else "priority: ")
                + reasons[i][j],
                "priority": round(float(info[i].max()), _ROUND),
                "category": CATEGORIES[j],
                "classifier": classifier.name,
            }
        )
    return out


def comma_list(value: str | Sequence[str] | None) -> list[str]:
    """``"a, b"`` or ``["a", "b"]`` as a list of non-empty names (None or "" is the empty list)."""
    items = value.split(",") if isinstance(value, str) else list(value or [])
    return [v.strip() for v in items if v.strip()]


def scope_categories(categories: Sequence[str] | None) -> list[str]:
    """The project's categories, checked against the taxonomy (None or empty: all of them)."""
    if not categories:
        return list(CATEGORIES)
    unknown = [c for c in categories if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"categories {unknown} are not in the taxonomy; choose from {', '.join(CATEGORIES)}")
    return [c for c in CATEGORIES if c in categories]


def in_languages(cands: pd.DataFrame, languages: Sequence[str]) -> pd.DataFrame:
    """Candidates whose GDELT ``language`` is one of ``languages`` (GDELT names or codes: English, en, eng)."""
    from news_signals.daily.gdelt import LANGUAGES

    wanted = {LANGUAGES.get(lang.strip().lower(), lang.strip()).lower() for lang in languages if lang.strip()}
    keep = cands["language"].str.lower().isin(wanted)
    log.info("labelling scope: %d of %d candidates in languages %s", int(keep.sum()), len(cands), sorted(wanted))
    return cands[keep].reset_index(drop=True)


def _prediction(signal: Any, p_present: float) -> dict[str, Any]:
    """tag, score and confidence (the classifier's own, else from P(present)) of one category."""
    tag = signal["tag"]
    confidence = signal.get("confidence", p_present if tag != ABSENT else 1.0 - p_present)
    return {"tag": tag, "score": float(signal["score"]), "confidence": round(float(confidence), _ROUND)}


def _bootstrap_signals(cands: pd.DataFrame) -> list[Signals]:
    """The partition's own labels (the keyword labeller's, written at ingest)."""
    out: list[Signals] = []
    for rec in cands.to_dict("records"):
        sig: Signals = {}
        for c in CATEGORIES:
            tag = rec.get(tag_column(c)) or ABSENT
            score = rec.get(score_column(c))
            sig[c] = {"tag": str(tag), "score": 0.0 if score is None or score != score else float(score)}
        out.append(sig)
    return out


def _choose(
    cands: pd.DataFrame, info: np.ndarray, eligible: np.ndarray, n: int, seed: int, quota_share: float
) -> list[tuple[int, tuple[str, str] | None]]:
    """Row indices in queue order, each with the (category, language) bucket that picked it (None: by priority)."""
    ids = cands["article_id"].astype(str).tolist()
    langs = cands["language"].str.lower().tolist()
    ties = [tiebreak(seed, a) for a in ids]
    buckets: dict[tuple[str, str], list[int]] = {}
    for i in range(len(ids)):
        for j, c in enumerate(CATEGORIES):
            if eligible[i, j] and info[i, j] > 0:
                buckets.setdefault((c, langs[i]), []).append(i)
    for key, members in buckets.items():
        j = CATEGORIES.index(key[0])
        members.sort(key=lambda i, j=j: (-round(float(info[i, j]), _ROUND), ties[i]))
    ranked = sorted(
        buckets,
        key=lambda k: (-round(float(info[buckets[k][0], CATEGORIES.index(k[0])]), _ROUND), tiebreak(seed, "|".join(k))),
    )
    per_bucket = max(1, math.floor(n * quota_share / len(ranked))) if ranked and quota_share > 0 else 0
    chosen: list[tuple[int, tuple[str, str] | None]] = []
    taken: set[int] = set()
    cursor = dict.fromkeys(ranked, 0)
    for _ in range(per_bucket):
        for key in ranked:
            if len(chosen) >= n:
                break
            members = buckets[key]
            while cursor[key] < len(members) and members[cursor[key]] in taken:
                cursor[key] += 1
            if cursor[key] < len(members):
                i = members[cursor[key]]
                chosen.append((i, key))
                taken.add(i)
    rest = sorted(
        (i for i in range(len(ids)) if i not in taken),
        key=lambda i: (-round(float(info[i].max()), _ROUND), ties[i]),
    )
    for i in rest[: max(0, n - len(chosen))]:
        chosen.append((i, None))
    return chosen


def summarise(rows: Sequence[dict[str, Any]], path: str) -> dict[str, Any]:
    per_category: dict[str, int] = {}
    per_language: dict[str, int] = {}
    for r in rows:
        per_category[r["category"]] = per_category.get(r["category"], 0) + 1
        per_language[r["language"]] = per_language.get(r["language"], 0) + 1
    return {
        "rows": len(rows),
        "path": path,
        "per_category": dict(sorted(per_category.items())),
        "per_language": dict(sorted(per_language.items())),
        "classifier": rows[0]["classifier"] if rows else None,
    }


def render_queue(rows: Sequence[dict[str, Any]], fmt: str) -> str:
    """The queue as a file's text in ``fmt`` (JSONL rows or Label Studio tasks with pre-annotations)."""
    import json

    from news_signals.labels.formats import FORMATS, label_studio_tasks, queue_jsonl

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if fmt == "jsonl":
        return queue_jsonl(rows)
    version = rows[0]["classifier"] if rows else "none"
    return json.dumps(label_studio_tasks(rows, version), ensure_ascii=False, indent=1) + "\n"


def export_queue(n: int, out: str, fmt: str = "jsonl", **kw: Any) -> dict[str, Any]:
    """Select ``n`` articles (``select_for_labelling`` keywords in ``kw``) and write the queue to ``out`` atomically."""
    from news_signals.labels.formats import FORMATS, write_text_atomic

    if fmt not in FORMATS:  # before any classifying
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    rows = select_for_labelling(n, **kw)
    if not rows:
        log.warning("labelling queue is empty: no unlabelled articles in the window")
    write_text_atomic(out, render_queue(rows, fmt))
    return summarise(rows, out)


def export_queue_stage(params: dict[str, Any], logical_date: Any, storage: Storage | None = None) -> dict[str, Any]:
    """The monthly_retrain task: write ``labels/queue/<date>.jsonl`` and ``<date>.label-studio.json``.

    Params: ``label_queue_size`` (default 100), ``label_queue_seed`` (13), ``lookback_days`` (30),
    ``label_queue_categories`` / ``label_queue_languages`` (comma lists, empty = all); the window
    ends on the logical date, like the snapshot's.
    """
    from news_signals.labels.store import LABELS_DIR

    storage = storage or Storage()
    day = parse_day(logical_date, "logical_date")
    scope = {k: comma_list(params.get(f"label_queue_{k}")) for k in ("categories", "languages")}
    rows = select_for_labelling(
        int(params.get("label_queue_size", 100)),
        seed=int(params.get("label_queue_seed", 13)),
        lookback_days=int(params.get("lookback_days", 30)),
        end_date=day,
        storage=storage,
        use_hybrid=bool(params.get("label_queue_hybrid", True)),
        **scope,
    )
    base = storage.path(LABELS_DIR, QUEUE_DIR, day)
    jsonl = storage.url(storage.write_bytes(f"{base}.jsonl", render_queue(rows, "jsonl").encode()))
    studio = storage.url(storage.write_bytes(f"{base}.label-studio.json", render_queue(rows, "label-studio").encode()))
    summary = summarise(rows, jsonl)
    summary["label_studio_path"] = studio
    summary["requested"] = int(params.get("label_queue_size", 100))
    summary["scope"] = {k: v or "all" for k, v in scope.items()}
    log.info("labelling queue for %s: %d articles -> %s and %s", day, len(rows), jsonl, studio)
    return summary
