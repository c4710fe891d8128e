"""The promotion gate: a retrained model reaches production only when every rule holds.

Quality is judged on the **held-out human labels** (``retrain.heldout``): the snapshot's test split
is labelled by the bootstrap labeller, so a score there is agreement with that labeller, and it is
used only when no held-out human labels exist yet (the table says so). Rules (thresholds in
:class:`GateThresholds`, overridable per run):

1. ``macro_f1_floor``      candidate macro-F1 >= ``min_macro_f1``
2. ``beats_keywords``      candidate macro-F1 >= keyword labeller macro-F1 + ``keyword_margin``
                           (with the paired bootstrap interval of the difference, for the record)
3. ``vs_production``       (only when a production model exists) the lower bound of the paired
                           bootstrap interval of candidate minus production > ``min_interval_low``
                           (on held-out human labels; on the test split, the point gain >= ``min_gain``),
                           OR candidate >= production - ``tolerance`` AND its p95 latency is at least
                           ``min_latency_gain`` (a fraction) lower and, when measured, its batch
                           throughput as much higher: an equally good but clearly faster model is
                           worth promoting (one timing alone moves that much under load). A candidate whose files are the production
                           model's own (a re-run) always fails this rule.
4. ``latency_budget``      candidate p95 latency (ms for one text) <= ``latency_p95_budget_ms``
5. ``f1_floor:<category>`` optional per-category F1 floors
6. ``gold_floor``          optional: macro-F1 on the human-labelled gold file >= ``gold_min_macro_f1``

Categories with too few held-out rows are listed as reported, not gated. Latencies come from the
same evaluation run, so candidate and production are timed on the same machine. ``force_promote``
with a non-empty reason promotes regardless; the failed rules and the reason are recorded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from news_signals.core.taxonomy import CATEGORIES


@dataclass
class GateThresholds:
    min_macro_f1: float = 0.30
    keyword_margin: float = 0.0
    min_gain: float = 0.005
    tolerance: float = 0.005
    min_latency_gain: float = 0.10
    min_interval_low: float = 0.0  # vs_production: lower bound of the candidate-minus-production interval
    latency_p95_budget_ms: float = 1000.0
    per_category_floors: dict[str, float] = field(default_factory=dict)
    gold_min_macro_f1: float | None = None

    @classmethod
    def from_mapping(
        cls, overrides: dict[str, Any] | None = None, base: GateThresholds | None = None
    ) -> GateThresholds:
        """Defaults (or ``base``) with ``overrides`` applied; unknown keys and bad values are named."""
        values = asdict(base or cls())
        known = {f.name for f in fields(cls)}
        for key, value in (overrides or {}).items():
            if key not in known:
                raise ValueError(f"unknown gate threshold {key!r}; known thresholds: {sorted(known)}")
            if value is None and key != "gold_min_macro_f1":
                continue  # "not set for this run": keep the default
            values[key] = value
        floors = values["per_category_floors"] or {}
        bad = [c for c in floors if c not in CATEGORIES]
        if bad:
            raise ValueError(f"per_category_floors names unknown categories {bad}; use {list(CATEGORIES)}")
        values["per_category_floors"] = {c: float(v) for c, v in floors.items()}
        for key in (
            "min_macro_f1",
            "keyword_margin",
            "min_gain",
            "tolerance",
            "min_latency_gain",
            "min_interval_low",
            "latency_p95_budget_ms",
        ):
            try:
                values[key] = float(values[key])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"gate threshold {key} must be a number, got {values[key]!r}") from exc
        if values["gold_min_macro_f1"] is not None:
            values["gold_min_macro_f1"] = float(values["gold_min_macro_f1"])
        if values["tolerance"] < 0 or values["latency_p95_budget_ms"] <= 0:
            raise ValueError("gate tolerance must be >= 0 and latency_p95_budget_ms > 0")
        return cls(**values)


@dataclass
class Rule:
    name: str
    passed: bool
    value: float | None
    threshold: float | None
    detail: str = ""


@dataclass
class GateDecision:
    promote: bool
    rules: list[Rule]
    thresholds: GateThresholds
    forced: bool = False
    reason: str = ""
    candidate: str = ""
    production: str | None = None
    evidence: str = "test split (agreement with bootstrap labels)"
    heldout: dict[str, Any] | None = None  # per-category rows and F1, intervals (when human labels exist)
    decided_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def decision(self) -> str:
        return "promote" if self.promote else "keep"

    @property
    def failed(self) -> list[str]:
        return [r.name for r in self.rules if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["decision"] = self.decision
        out["failed_rules"] = self.failed
        return out

    def table(self) -> str:
        """A fixed-width table for the task log."""
        head = f"{'rule':<28} {'value':>10} {'threshold':>10}  {'result':<6} detail"
        lines = [head, "-" * len(head)]
        for r in self.rules:
            lines.append(
                f"{r.name:<28} {_fmt(r.value):>10} {_fmt(r.threshold):>10}  {'PASS' if r.passed else 'FAIL':<6} {r.detail}"
            )
        verdict = self.decision.upper() + (f" (FORCED: {self.reason})" if self.forced else "")
        lines.append(
            f"decision: {verdict}  candidate={self.candidate} production={self.production or 'none'}"
        )
        lines.append(f"judged on: {self.evidence}")
        if self.heldout:
            lines += ["", heldout_table(self.heldout)]
        return "\n".join(lines)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _interval(iv: dict[str, Any] | None) -> str:
    if not iv or iv.get("delta") is None:
        return "no interval"
    return f"{iv['delta']:+.4f} [{iv['low']:+.4f}, {iv['high']:+.4f}] ({int(iv['confidence'] * 100)}% paired bootstrap)"


def heldout_table(heldout: dict[str, Any]) -> str:
    """Per-category F1 on the held-out human labels, rows per category, and which are gated."""
    reports = heldout.get("reports") or {}
    names = [n for n in ("candidate", "production", "keywords", "llm") if n in reports]
    head = f"{'held-out human labels':<16} {'rows':>6} {'present':>7} " + " ".join(f"{n:>10}" for n in names) + "  gated"
    lines = [head, "-" * len(head)]
    for c, n in (heldout.get("rows_per_category") or {}).items():
        if not n.get("known"):
            continue
        f1s = " ".join(f"{_fmt((reports[x]['categories'].get(c) or {}).get('f1')):>10}" for x in names)
        gated = "yes" if c in heldout.get("gated_categories", []) else "no (too few rows)"
        lines.append(f"{c:<16} {n['known']:>6} {n['present']:>7} {f1s}  {gated}")
    macro = " ".join(f"{_fmt(reports[x].get('macro_f1')):>10}" for x in names)
    lines.append(f"{'macro-F1':<16} {heldout.get('rows', 0):>6} {'':>7} {macro}")
    for key, iv in (heldout.get("intervals") or {}).items():
        lines.append(f"{key}: {_interval(iv)}")
    return "\n".join(lines)


def _macro(report: dict[str, Any] | None, who: str) -> float:
    if not report or not isinstance(report.get("macro_f1"), int | float) or math.isnan(report["macro_f1"]):
        raise ValueError(f"the {who} evaluation report has no numeric macro_f1; run evaluate first")
    return float(report["macro_f1"])


def _throughput(report: dict[str, Any] | None) -> float | None:
    value = ((report or {}).get("speed") or {}).get("throughput_texts_per_s_batch64")
    return float(value) if isinstance(value, int | float) and value > 0 else None


def _clearly_faster(candidate: dict[str, Any], production: dict[str, Any], gain: float) -> bool:
    """p95 latency lower by ``gain``, and batch throughput higher by as much when both were measured.

    Two models of the same size differ in a p95 of 50 single-text timings by 20% from load alone;
    throughput over a batch is far steadier, so a real speed-up shows in both and noise in one.
    """
    cand_p95, prod_p95 = _p95(candidate), _p95(production)
    if cand_p95 is None or prod_p95 is None or cand_p95 > prod_p95 * (1 - gain):
        return False
    cand_tp, prod_tp = _throughput(candidate), _throughput(production)
    return cand_tp is None or prod_tp is None or cand_tp * (1 - gain) >= prod_tp


def _p95(report: dict[str, Any] | None) -> float | None:
    """p95 latency in ms: evaluate()'s ``speed.latency_ms_p95_batch1`` (or ``latency_ms.p95``)."""
    report = report or {}
    value = (report.get("speed") or {}).get("latency_ms_p95_batch1")
    if value is None:
        value = (report.get("latency_ms") or {}).get("p95")
    return float(value) if isinstance(value, int | float) else None


def decide(
    candidate: dict[str, Any],
    keyword: dict[str, Any],
    production: dict[str, Any] | None = None,
    thresholds: GateThresholds | None = None,
    *,
    heldout: dict[str, Any] | None = None,
    gold: dict[str, Any] | None = None,
    force_promote: bool = False,
    reason: str = "",
    candidate_ref: str = "candidate",
    production_ref: str | None = None,
    same_as_production: bool = False,
) -> GateDecision:
    """Apply every rule to evaluate() reports (and the held-out human reports); ``force_promote`` needs a reason."""
    t = thresholds or GateThresholds()
    if force_promote and not (reason or "").strip():
        raise ValueError("force_promote needs a reason (Param 'reason'): it is recorded in gate.json")
    cand_p95 = _p95(candidate)
    human = _usable_heldout(heldout)
    if human:
        reports = human["reports"]
        cand = _macro(reports["candidate"], "candidate (held-out human labels)")
        kw = _macro(reports["keywords"], "keyword baseline (held-out human labels)")
        prod = _macro(reports["production"], "production (held-out human labels)") if production else None
        intervals = human.get("intervals") or {}
        gated = ", ".join(human["gated_categories"])
        evidence = f"held-out human labels ({human['rows']} rows; gated categories: {gated})"
    else:
        cand, kw = _macro(candidate, "candidate"), _macro(keyword, "keyword baseline")
        prod = _macro(production, "production") if production is not None else None
        intervals = {}
        evidence = "snapshot test split: agreement with bootstrap labels (no held-out human labels yet; import some)"
    rules = [
        Rule("macro_f1_floor", cand >= t.min_macro_f1, cand, t.min_macro_f1),
        Rule(
            "beats_keywords",
            cand >= kw + t.keyword_margin,
            cand,
            kw + t.keyword_margin,
            f"keywords {kw:.4f} + margin {t.keyword_margin}; candidate-keywords "
            + _interval(intervals.get("candidate-keywords")),
        ),
    ]
    if production is not None and prod is not None:
        prod_p95 = _p95(production)
        iv = intervals.get("candidate-production")
        if human and iv and iv.get("low") is not None:
            gain_ok = iv["low"] > t.min_interval_low
            gain_detail = f"candidate-production {_interval(iv)}; needs lower bound > {t.min_interval_low}"
            value, threshold = iv["low"], t.min_interval_low
        else:
            gain_ok = cand >= prod + t.min_gain
            gain_detail = f"gain {cand - prod:+.4f} (min {t.min_gain})"
            value, threshold = cand, prod + t.min_gain
        faster = _clearly_faster(candidate, production, t.min_latency_gain)
        tie_ok = cand >= prod - t.tolerance and faster
        if same_as_production:
            ok, detail = False, "the candidate is the production model itself (same files)"
        elif gain_ok or not tie_ok:
            ok, detail = gain_ok, gain_detail
        else:
            ok, detail = (
                True,
                f"within {t.tolerance} of production and faster (p95 {cand_p95:.1f} vs {prod_p95:.1f} ms, "
                f"needs {t.min_latency_gain:.0%} faster)",
            )
        rules.append(Rule("vs_production", ok, value, threshold, detail))
    else:
        rules.append(Rule("vs_production", True, cand, None, "no production model yet (first model)"))
    rules.append(
        Rule(
            "latency_budget",
            cand_p95 is not None and cand_p95 <= t.latency_p95_budget_ms,
            cand_p95,
            t.latency_p95_budget_ms,
            "p95 ms" if cand_p95 is not None else "latency was not measured",
        )
    )
    per_cat = human["reports"]["candidate"]["categories"] if human else (candidate.get("per_category") or {})
    for cat, floor in sorted(t.per_category_floors.items()):
        f1 = (per_cat.get(cat) or {}).get("f1")
        rules.append(Rule(f"f1_floor:{cat}", f1 is not None and float(f1) >= floor, f1, floor))
    if t.gold_min_macro_f1 is not None:
        gold_f1 = (gold or {}).get("macro_f1")
        rules.append(
            Rule(
                "gold_floor",
                gold_f1 is not None and float(gold_f1) >= t.gold_min_macro_f1,
                gold_f1,
                t.gold_min_macro_f1,
                "human-labelled gold file" if gold else "no gold evaluation given",
            )
        )
    passed = all(r.passed for r in rules)
    return GateDecision(
        promote=passed or force_promote,
        rules=rules,
        thresholds=t,
        forced=force_promote,
        reason=reason.strip()
        if force_promote
        else (
            "all rules passed" if passed else "failed: " + ", ".join(r.name for r in rules if not r.passed)
        ),
        candidate=candidate_ref,
        production=production_ref,
        evidence=evidence,
        heldout=human,
    )


def _usable_heldout(heldout: dict[str, Any] | None) -> dict[str, Any] | None:
    """The held-out reports when they exist and at least one category has enough rows to gate."""
    if not heldout or not heldout.get("gated_categories"):
        return None
    reports = heldout.get("reports") or {}
    return heldout if "candidate" in reports and "keywords" in reports else None
