"""A simulated annotator for the demo: answers a labelling queue from the disaster messages' labels.

Nobody labels news for the demo, so an oracle stands in for the annotation team. It knows only
the public human labels of the disaster-response messages' ``train`` split (never ``validation`` /
``test``), for four categories (emergencies, weather_wet, weather_temp, transportation); every
other category it leaves unknown. Queue rows whose text it does not know are skipped (JSONL) or
cancelled (Label Studio), as a real annotator would skip an article outside their brief.

    python -m tools.oracle_annotator seed --parts heldout,calibration --out seed.jsonl
    python -m tools.oracle_annotator answer --queue queue.jsonl --out answers.jsonl [--format label-studio]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES
from news_signals.core.text import normalise_title
from news_signals.labels.sources import disaster_label_rows

ORACLE = "oracle@news-signals.demo"


@cache
def answer_key() -> dict[str, dict[str, str | None]]:
    """Normalised text → the oracle's labels for it."""
    return {normalise_title(r.text): r.labels for r in disaster_label_rows("all")}


def seed(out: Path, parts: Iterable[str] = ("heldout", "calibration")) -> int:
    """Parts of the development split as annotator JSONL: by default the held-out part (the gate's
    evaluation set) and the calibration part (a random sample the trainer tunes thresholds on)."""
    rows = [
        {"article_id": r.article_id, "text": r.text, "labels": _known(r.labels), "annotator": r.annotator}
        for part in parts
        for r in disaster_label_rows(part)
    ]
    _write_jsonl(out, rows)
    return len(rows)


def _known(labels: dict[str, str | None]) -> dict[str, str]:
    return {c: v for c, v in labels.items() if v is not None}


def answer(queue: Path, out: Path, fmt: str = "jsonl") -> dict[str, int]:
    """Label the queue's rows the oracle knows; returns answered / skipped counts."""
    key = answer_key()
    if fmt == "jsonl":
        tasks = [json.loads(line) for line in queue.read_text().splitlines() if line.strip()]
        rows = []
        for t in tasks:
            labels = key.get(normalise_title(t["text"]))
            if labels is not None:
                rows.append({"article_id": t["article_id"], "text": t["text"], "labels": _known(labels),
                             "annotator": ORACLE})
        _write_jsonl(out, rows)
        return {"answered": len(rows), "skipped": len(tasks) - len(rows)}
    if fmt == "label-studio":
        tasks = json.loads(queue.read_text())
        answered = 0
        for i, task in enumerate(tasks, start=1):
            labels = key.get(normalise_title(task["data"]["text"]))
            task.setdefault("id", i)
            task["annotations"] = [_annotation(i, labels)]
            answered += labels is not None
        out.write_text(json.dumps(tasks, indent=1))
        return {"answered": answered, "skipped": len(tasks) - answered}
    raise ValueError(f"format {fmt!r}: choose jsonl or label-studio")


def _annotation(task_id: int, labels: dict[str, str | None] | None) -> dict[str, Any]:
    """One Label Studio annotation as its JSON export writes it (cancelled when the oracle cannot tell)."""
    result = []
    for c in CATEGORIES:
        value = (labels or {}).get(c)
        if value is None:
            continue
        result.append(
            {
                "from_name": c,
                "to_name": "text",
                "type": "choices",
                "value": {"choices": [value if value != ABSENT else "none"]},
                "origin": "manual",
            }
        )
    return {
        "id": task_id,
        "completed_by": {"id": 1, "email": ORACLE},
        "was_cancelled": labels is None,
        "result": result,
        "lead_time": 1.0,
    }


def _write_jsonl(out: Path, rows: Iterable[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.oracle_annotator", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    seeder = sub.add_parser("seed", help="parts of the development split (labels.split) as JSONL")
    seeder.add_argument("--out", type=Path, required=True)
    seeder.add_argument("--parts", default="heldout,calibration", help="comma-separated: heldout, calibration, training")
    ans = sub.add_parser("answer", help="answer an exported labelling queue")
    ans.add_argument("--queue", type=Path, required=True)
    ans.add_argument("--out", type=Path, required=True)
    ans.add_argument("--format", choices=("jsonl", "label-studio"), default="jsonl")
    args = parser.parse_args(argv)
    if args.cmd == "seed":
        parts = [p.strip() for p in args.parts.split(",") if p.strip()]
        print(json.dumps({"rows": seed(args.out, parts), "parts": parts, "out": str(args.out)}))
    else:
        print(json.dumps(answer(args.queue, args.out, args.format)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
