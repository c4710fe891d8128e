"""The data behind the model-history page: registry versions, their metrics and gate decisions.

Reads through ``news_signals.registry.get_registry`` (local files or Hopsworks) and flattens each
``ModelVersion`` into a row the page and its JSON endpoint can show without knowing the
registry's or the gate's internals. Tolerant of partial records (a version without gate.json, a
Hopsworks version with flat metrics), because a history page that crashes on one odd version is
no use during an incident.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from news_signals.core.taxonomy import CATEGORIES

log = logging.getLogger(__name__)


@dataclass
class RuleResult:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str = ""


@dataclass
class VersionRow:
    """One registered version as the page shows it."""

    version: int
    created_at: str
    is_production: bool
    macro_f1: float | None
    baseline_macro_f1: float | None  # the keyword labeller's macro-F1 the gate compared against
    decision: str  # "promote", "keep" or "unknown" (no gate.json)
    forced: bool
    reason: str
    rules: list[RuleResult] = field(default_factory=list)
    per_category: dict[str, dict[str, float | None]] = field(default_factory=dict)  # cat -> {precision, recall, f1}
    latency_p95_ms: float | None = None
    path: str | None = None
    description: str = ""

    @property
    def failed_rules(self) -> list[str]:
        return [r.name for r in self.rules if not r.passed]


@dataclass
class History:
    model_name: str
    backend: str
    rows: list[VersionRow]
    error: str | None = None  # the registry could not be read: what went wrong

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
    return History(name, backend, rows_from_versions(versions))


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
    return VersionRow(
        version=int(v["version"]),
        created_at=str(v.get("created_at") or ""),
        is_production=bool(v.get("is_production")),
        macro_f1=_num(metrics.get("macro_f1")),
        baseline_macro_f1=baseline_macro_f1(gate, metrics),
        decision=decision,
        forced=bool((gate or {}).get("forced")),
        reason=str((gate or {}).get("reason") or ""),
        rules=rules,
        per_category=per_category(metrics),
        latency_p95_ms=_num((metrics.get("speed") or {}).get("latency_ms_p95_batch1"))
        or _num((metrics.get("latency_ms") or {}).get("p95"))
        or _num(metrics.get("latency_p95_ms")),
        path=v.get("path"),
        description=str(v.get("description") or ""),
    )


def baseline_macro_f1(gate: Mapping[str, Any] | None, metrics: Mapping[str, Any]) -> float | None:
    """The keyword baseline's macro-F1 for this version, wherever the gate or evaluation put it."""
    for source in (gate or {}, metrics):
        for key in ("keyword_macro_f1", "baseline_macro_f1", "keywords_macro_f1"):
            if _num(source.get(key)) is not None:
                return _num(source.get(key))
        for key in ("keyword", "keywords", "baseline", "keyword_baseline"):
            sub = source.get(key)
            if isinstance(sub, Mapping) and _num(sub.get("macro_f1")) is not None:
                return _num(sub.get("macro_f1"))
    for rule in (gate or {}).get("rules") or []:  # gate.py: beats_keywords detail "keywords 0.4123 + margin 0.0"
        if isinstance(rule, Mapping) and rule.get("name") == "beats_keywords":
            m = re.search(r"keywords\s+([0-9.]+)", str(rule.get("detail") or ""))
            if m:
                return float(m.group(1))
            margin = _num(((gate or {}).get("thresholds") or {}).get("keyword_margin")) or 0.0
            if _num(rule.get("threshold")) is not None:
                return _num(rule.get("threshold")) - margin
    return None


def per_category(metrics: Mapping[str, Any]) -> dict[str, dict[str, float | None]]:
    """Per-category precision/recall/F1 from an evaluation report (nested) or flat ``f1_<cat>`` metrics."""
    nested = metrics.get("per_category")
    out: dict[str, dict[str, float | None]] = {}
    for cat in CATEGORIES:
        if isinstance(nested, Mapping) and isinstance(nested.get(cat), Mapping):
            src = nested[cat]
            out[cat] = {k: _num(src.get(k)) for k in ("precision", "recall", "f1")}
        elif _num(metrics.get(f"f1_{cat}")) is not None:
            out[cat] = {"precision": None, "recall": None, "f1": _num(metrics.get(f"f1_{cat}"))}
    return out


def _rule(r: Mapping[str, Any]) -> RuleResult:
    return RuleResult(
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
