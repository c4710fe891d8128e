"""The data behind the model-history page: registry versions, their metrics and gate decisions.

Reads through ``news_signals.registry.get_registry`` (local files or Hopsworks) and flattens each
``ModelVersion`` into a row the page and its JSON endpoint can show without knowing the
registry's or the gate's internals. Tolerant of partial records (a version without gate.json, a
Hopsworks version with flat metrics), because a history page that crashes on one odd version is
no use during an incident.

Headline numbers are the held-out human labels' (``metrics["heldout"]``, written by the retrain's
register stage): the version's macro-F1, the keyword labeller's on the same rows, and the paired
interval of the difference. The snapshot test split's macro-F1 is agreement with the bootstrap
labels and is shown only as that, never beside the keyword baseline.

``History.promotions`` is the registry's own log of production moves (``ModelRegistry.promotions()``:
local ``promotions.json``, or the Hopsworks production tag's ``history``), oldest first, reduced to
the recorded fields (:data:`MOVE_FIELDS`) so nothing else a tag may carry reaches the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from news_signals.core.taxonomy import CATEGORIES
from news_signals.retrain.gate import Rule  # a gate rule as gate.json records it

log = logging.getLogger(__name__)


@dataclass
class VersionRow:
    """One registered version as the page shows it."""

    version: int
    created_at: str
    is_production: bool
    macro_f1: float | None  # on the held-out human labels
    keywords_macro_f1: float | None  # the keyword labeller on the same held-out rows
    interval: tuple[float, float] | None  # paired bootstrap interval of (version - keywords)
    heldout_rows: int | None
    agreement_macro_f1: float | None  # snapshot test split: agreement with the bootstrap labels
    decision: str  # "promote", "keep" or "unknown" (no gate.json)
    forced: bool
    reason: str
    rules: list[Rule] = field(default_factory=list)
    per_category: dict[str, dict[str, float | None]] = field(default_factory=dict)  # cat -> {precision, recall, f1}
    latency_p95_ms: float | None = None
    path: str | None = None
    description: str = ""

    @property
    def failed_rules(self) -> list[str]:
        return [r.name for r in self.rules if not r.passed]


# What a production move records (``ModelRegistry.promotions()``); nothing else is passed on.
MOVE_FIELDS = ("version", "previous", "action", "by", "reason", "promoted_at")


@dataclass
class History:
    model_name: str
    backend: str
    rows: list[VersionRow]
    error: str | None = None  # the registry could not be read: what went wrong
    promotions: list[dict[str, Any]] = field(default_factory=list)  # production moves, oldest first
    promotions_error: str | None = None  # versions were read but the promotion log was not

    @property
    def production(self) -> VersionRow | None:
        return next((r for r in self.rows if r.is_production), None)

    def to_dict(self) -> dict[str, Any]:
        prod = self.production
        return {
            "model_name": self.model_name,
            "backend": self.backend,
            "error": self.error,
            "production_version": prod.version if prod else None,
            "versions": [{**asdict(r), "failed_rules": r.failed_rules} for r in self.rows],
            "promotions": [dict(m) for m in self.promotions],
            "promotions_error": self.promotions_error,
        }


def load_history(
    model_name: str | None = None, registry_factory: Callable[[str | None], Any] | None = None
) -> History:
    """Read every version from the configured registry; a registry failure becomes ``History.error``."""
    from news_signals.core.config import Settings

    name = model_name or Settings().model_name
    backend = "?"
    try:
        if registry_factory is None:
            from news_signals.registry import get_registry, registry_backend

            backend = registry_backend()
            registry_factory = get_registry
        registry = registry_factory(name)
        backend = type(registry).__name__ if backend == "?" else backend
        versions = registry.history()
    except Exception as exc:  # registry down or misconfigured: show it on the page, don't 500
        log.warning("model history for %s unavailable: %s: %s", name, type(exc).__name__, exc)
        return History(name, backend, [], error=f"{type(exc).__name__}: {exc}")
    moves: list[dict[str, Any]] = []
    moves_error = None
    try:
        moves = moves_from_records(registry.promotions())
    except Exception as exc:  # the versions are still worth showing without the log
        log.warning("promotion log of %s unavailable: %s: %s", name, type(exc).__name__, exc)
        moves_error = f"{type(exc).__name__}: {exc}"
    return History(name, backend, rows_from_versions(versions), promotions=moves, promotions_error=moves_error)


def moves_from_records(records: Iterable[Any]) -> list[dict[str, Any]]:
    """The registry's production moves → dicts with :data:`MOVE_FIELDS` only, in the registry's order.

    Records written before ``by``/``action`` existed read as ``by=""``, ``action="promote"``; a record
    that is not a mapping or has no version is skipped (logged), not fatal.
    """
    out = []
    for rec in records or []:
        if not isinstance(rec, Mapping) or _int(rec.get("version")) is None:
            log.warning("skipping a malformed promotion record: %r", rec)
            continue
        out.append({
            "version": _int(rec["version"]),
            "previous": _int(rec.get("previous")),
            "action": str(rec.get("action") or "promote"),
            "by": str(rec.get("by") or ""),
            "reason": str(rec.get("reason") or ""),
            "promoted_at": str(rec.get("promoted_at") or ""),
        })
    return out


def _int(x: Any) -> int | None:
    if isinstance(x, bool):
        return None
    try:
        return int(x)
    except (TypeError, ValueError):
        return None


def rows_from_versions(versions: Iterable[Any]) -> list[VersionRow]:
    """``ModelVersion`` objects (or dicts with the same keys) → rows, oldest version first."""
    rows = [_row(v if isinstance(v, Mapping) else vars(v)) for v in versions]
    return sorted(rows, key=lambda r: r.version)


def _row(v: Mapping[str, Any]) -> VersionRow:
    metrics = dict(v.get("metrics") or {})
    gate = v.get("gate") or None
    rules = [_rule(r) for r in (gate or {}).get("rules") or [] if isinstance(r, Mapping)]
    if gate is None:
        decision = "unknown"
    elif "decision" in gate:
        decision = str(gate["decision"])
    else:
        decision = "promote" if gate.get("promote") else "keep"
    human = metrics.get("heldout") if isinstance(metrics.get("heldout"), Mapping) else {}
    iv = (human.get("intervals") or {}).get("candidate-keywords") or {}
    low, high = _num(iv.get("low")), _num(iv.get("high"))
    return VersionRow(
        version=int(v["version"]),
        created_at=str(v.get("created_at") or ""),
        is_production=bool(v.get("is_production")),
        macro_f1=_num(human.get("macro_f1")),
        keywords_macro_f1=_num(human.get("keywords_macro_f1")),
        interval=(low, high) if low is not None and high is not None else None,
        heldout_rows=int(human["rows"]) if _num(human.get("rows")) is not None else None,
        agreement_macro_f1=_num(metrics.get("macro_f1")),
        decision=decision,
        forced=bool((gate or {}).get("forced")),
        reason=str((gate or {}).get("reason") or ""),
        rules=rules,
        per_category=per_category(human) if human.get("per_category") else {},
        latency_p95_ms=_num((metrics.get("speed") or {}).get("latency_ms_p95_batch1"))
        or _num((metrics.get("latency_ms") or {}).get("p95"))
        or _num(metrics.get("latency_p95_ms")),
        path=v.get("path"),
        description=str(v.get("description") or ""),
    )


def per_category(human: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per-category held-out F1 (``metrics["heldout"]["per_category"]``: category -> F1)."""
    nested = human.get("per_category") or {}
    return {c: {"precision": None, "recall": None, "f1": _num(nested.get(c))} for c in CATEGORIES if c in nested}


def load_learning_curve(storage: Any = None) -> dict[str, Any] | None:
    """``reports/learning_curve.json`` (``news_signals.ops.learning_curve``), or None before the first one."""
    from news_signals.core.storage import Storage
    from news_signals.ops.learning_curve import REPORT

    storage = storage or Storage()
    path = storage.path(*REPORT)
    try:
        return storage.read_json(path) if storage.fs.exists(path) else None
    except Exception as exc:  # a broken report must not take the page down
        log.warning("learning curve %s unreadable: %s", path, exc)
        return None


def _rule(r: Mapping[str, Any]) -> Rule:
    return Rule(
        name=str(r.get("name", "?")),
        passed=bool(r.get("passed")),
        value=_num(r.get("value")),
        threshold=_num(r.get("threshold")),
        detail=str(r.get("detail") or ""),
    )


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return None if x != x else float(x)  # NaN → None
