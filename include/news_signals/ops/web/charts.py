"""Server-side SVG charts for the model-history page (matplotlib; no JavaScript, no CDN).

Text stays text (``svg.fonttype = none``) so the charts are small, searchable and testable.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from news_signals.ops.history import VersionRow

PROMOTE = "#2e7d32"
KEEP = "#c62828"
UNKNOWN = "#757575"
MODEL = "#1565c0"
BASELINE = "#ef6c00"


def _svg(fig) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "news-signals"}):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and DOCTYPE: the SVG goes inline in HTML
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)  # RDF block with a timestamp
    return re.sub(r'(<svg[^>]*?) width="[^"]*" height="[^"]*"', r'\1 width="100%"', svg, count=1)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    fig.patch.set_alpha(0)
    return fig


def macro_f1_chart(rows: Sequence[VersionRow]) -> str:
    """Held-out human macro-F1 of each version and of keywords on the same rows; points coloured by decision."""
    fig = _figure(7.5, 3.4)
    ax = fig.add_subplot()
    xs = list(range(len(rows)))
    labels = [f"v{r.version}" + (" (prod)" if r.is_production else "") for r in rows]
    model = [r.macro_f1 for r in rows]
    base = [r.keywords_macro_f1 for r in rows]
    ax.plot(
        [x for x, y in zip(xs, model, strict=True) if y is not None],
        [y for y in model if y is not None],
        color=MODEL,
        linewidth=2,
        label="held-out human macro-F1",
        zorder=2,
    )
    for x, r in zip(xs, rows, strict=True):
        if r.macro_f1 is None:
            continue
        color = {"promote": PROMOTE, "keep": KEEP}.get(r.decision, UNKNOWN)
        ax.scatter([x], [r.macro_f1], s=140 if r.is_production else 60, color=color,
                   marker="*" if r.is_production else "o", zorder=3, edgecolors="white", linewidths=0.8)
        ax.annotate(f"{r.macro_f1:.3f}", (x, r.macro_f1), textcoords="offset points", xytext=(0, 9),
                    ha="center", fontsize=8, color="#222")
    bx = [x for x, y in zip(xs, base, strict=True) if y is not None]
    if bx:
        ax.plot(bx, [y for y in base if y is not None], color=BASELINE, linestyle="--", marker="s",
                markersize=4, linewidth=1.5, label="keywords (same rows)", zorder=1)
    ax.scatter([], [], color=PROMOTE, label="gate: promote")
    ax.scatter([], [], color=KEEP, label="gate: keep")
    ax.set_xticks(xs, labels, fontsize=8)
    if len(xs) == 1:
        ax.set_xlim(-0.5, 0.5)
    values = [y for y in model + base if y is not None]
    top = min(1.0, max(values, default=1.0) + 0.12)
    ax.set_ylim(max(0.0, min(values, default=0.0) - 0.1), max(top, 0.1))
    ax.set_ylabel("macro-F1")
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, loc="lower right", frameon=False, ncol=2)
    return _svg(fig)


def learning_curve_chart(curve: dict) -> str:
    """Macro-F1 on the same held-out rows: keywords, hybrid, then each version (error bar: its interval vs keywords)."""
    fig = _figure(7.5, 3.2)
    ax = fig.add_subplot()
    names = list(curve["reports"])
    values = [curve["reports"][n]["macro_f1"] for n in names]
    points = {p["ref"]: p for p in curve.get("versions", [])}
    kw = curve["reports"].get("keywords", {}).get("macro_f1")
    colors = [MODEL if n in points else BASELINE for n in names]
    bars = ax.bar(range(len(names)), values, color=colors, width=0.6)
    for i, (n, bar) in enumerate(zip(names, bars, strict=True)):
        p = points.get(n)
        iv = (p or {}).get("vs_keywords") or {}
        if kw is not None and iv.get("low") is not None:
            ax.errorbar([i], [kw + iv["delta"]], yerr=[[iv["delta"] - iv["low"]], [iv["high"] - iv["delta"]]],
                        color="#222", capsize=4, linewidth=1)
        label = f"{bar.get_height():.3f}"
        ax.annotate(label, (i, bar.get_height()), textcoords="offset points", xytext=(0, 10), ha="center", fontsize=8)
    ticks = [n if n not in points else f"{n}\n{points[n].get('human_training_labels') or 0} human labels" for n in names]
    ax.set_xticks(range(len(names)), ticks, fontsize=7)
    ax.set_ylim(0, min(1.0, max(values, default=0.5) + 0.15))
    ax.set_ylabel("held-out human macro-F1")
    ax.grid(axis="y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return _svg(fig)


def per_category_chart(row: VersionRow) -> str:
    """Precision, recall and F1 per category for one version (the production model)."""
    cats = list(row.per_category)
    fig = _figure(7.5, 0.42 * max(len(cats), 1) + 0.9)
    ax = fig.add_subplot()
    h = 0.26
    ys = list(range(len(cats)))
    series = (("f1", MODEL, "F1"), ("precision", "#90caf9", "precision"), ("recall", "#b0bec5", "recall"))
    for i, (key, color, label) in enumerate(series):
        vals = [row.per_category[c].get(key) for c in cats]
        if all(v is None for v in vals):
            continue
        bars = ax.barh([y + (i - 1) * h for y in ys], [v or 0.0 for v in vals], height=h, color=color, label=label)
        if key == "f1":
            for bar, v in zip(bars, vals, strict=True):
                if v is not None:
                    ax.text(bar.get_width() + 0.01, bar.get_y() + h / 2, f"{v:.2f}", va="center", fontsize=8)
    ax.set_yticks(ys, [c.replace("_", " ") for c in cats], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.08)
    ax.set_xlabel(f"v{row.version}")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    ax.legend(fontsize=8, loc="lower right", frameon=False)
    return _svg(fig)
