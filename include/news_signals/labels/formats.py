"""Files annotators use: JSON Lines and Label Studio (labelling config, task export, JSON export).

Reading turns a file into :class:`~news_signals.labels.store.LabelRow`\\ s, each with a ``ref``
("line 3", "task 17 annotation 2") that every error names; the values are passed on as found so
the Great Expectations suite (``labels/validation.py``) judges vocabulary and types in one place.
Structural problems (a line that is not JSON, a task without ``data.text``) are refused here,
with every bad row named. Writing (the labelling queue) is atomic: a temporary file renamed.

JSONL row: ``{"article_id"?: str, "text" | "title": str, "labels": {category: tag-or-""}}``;
a category missing from ``labels`` (or ``null``) is unknown.

Label Studio, as its JSON export writes it (checked against HumanSignal/label-studio, see
docs/LABELS.md): a list of tasks ``{"id", "data": {"text", "article_id"?...}, "annotations": [
{"id", "completed_by": int | {"id", "email", ...}, "was_cancelled": bool, "result": [{"from_name":
<category>, "to_name": "text", "type": "choices", "value": {"choices": [tag | "none"]}}]}]}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import fsspec

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS
from news_signals.labels.store import LabelError, LabelRow, text_article_id

FORMATS = ("jsonl", "label-studio")
NONE_CHOICE = "none"  # Label Studio's spelling of "absent" (a Choice value cannot be empty)
TO_NAME = "text"
CONFIG_FILE = "label_studio.xml"


@dataclass
class ReadResult:
    """Rows read from a file plus what was left out on purpose (cancelled annotations, ...)."""

    rows: list[LabelRow]
    skipped: dict[str, int] = field(default_factory=dict)


def read_labels(path: str, fmt: str = "jsonl") -> ReadResult:
    """Read a labels file in ``fmt`` (``jsonl`` or ``label-studio``)."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    with fsspec.open(path, "rb") as fh:
        raw = fh.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LabelError([f"{path} is not UTF-8 text ({exc}); save it as UTF-8"], what=f"{path}") from exc
    if fmt == "jsonl":
        return parse_jsonl(text, where=path)
    return parse_label_studio(text, where=path)


# ---- JSON Lines ----------------------------------------------------------------------------------
def parse_jsonl(text: str, where: str = "input") -> ReadResult:
    rows: list[LabelRow] = []
    problems: list[str] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        ref = f"line {n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{ref}: not JSON ({exc.msg} at column {exc.colno}); one JSON object per line")
            continue
        if not isinstance(obj, dict):
            problems.append(f"{ref}: a JSON {type(obj).__name__}, not an object; one object per line")
            continue
        row = _row(obj.get("article_id"), obj.get("text", obj.get("title")), obj.get("labels"), obj.get("annotator"),
                   ref, problems, has_text="text" in obj or "title" in obj)
        if row is not None:
            rows.append(row)
    if problems:
        raise LabelError(problems, what=where)
    return ReadResult(rows)


def _row(
    aid: Any, text: Any, labels: Any, annotator: Any, ref: str, problems: list[str], has_text: bool = True
) -> LabelRow | None:
    """A LabelRow from loose values, or None with the problem recorded (values are judged by GX)."""
    if not has_text:
        problems.append(f"{ref}: no \"text\" (or \"title\"); give the article's headline")
        return None
    if labels is None:
        problems.append(f"{ref}: no \"labels\" object; add {{category: tag or \"\"}} for the categories you labelled")
        return None
    if not isinstance(labels, dict):
        problems.append(f"{ref}: \"labels\" is a {type(labels).__name__}, not an object {{category: tag or \"\"}}")
        return None
    if aid is None and isinstance(text, str):
        aid = text_article_id(text)
    return LabelRow(aid, text, dict(labels), annotator, ref=ref)


def queue_jsonl(queue: Sequence[Mapping[str, Any]]) -> str:
    """The labelling queue as JSONL: one article per line, the annotator adds ``labels``."""
    return "".join(json.dumps(dict(row), ensure_ascii=False, sort_keys=False) + "\n" for row in queue)


def labels_jsonl(rows: Iterable[LabelRow]) -> str:
    """Label rows as importable JSONL (unknown categories left out)."""
    lines = []
    for r in rows:
        obj: dict[str, Any] = {"article_id": r.article_id, "text": r.text,
                               "labels": {c: v for c, v in r.labels.items() if v is not None}}
        if r.annotator:
            obj["annotator"] = r.annotator
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    return "".join(lines)


# ---- Label Studio --------------------------------------------------------------------------------
def label_config() -> str:
    """The shipped labelling config (``label_studio.xml``)."""
    return resources.files("news_signals.labels").joinpath(CONFIG_FILE).read_text(encoding="utf-8")


def build_label_config() -> str:
    """The labelling config generated from the taxonomy (the shipped file must equal it)."""
    lines = [
        "<View>",
        '  <Header value="Label each category: its tag, or none when the article is not about it."/>',
        '  <Text name="text" value="$text"/>',
    ]
    for c in CATEGORIES:
        lines.append(f'  <Header value="{c}" size="5"/>')
        lines.append(f'  <Choices name="{c}" toName="{TO_NAME}" choice="single" showInline="true">')
        for tag in (*TAGS[c], NONE_CHOICE):
            lines.append(f'    <Choice value="{tag}"/>')
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def annotator_name(completed_by: Any) -> str | None:
    """Label Studio's ``completed_by``: a user id (int) or, expanded, ``{"id", "email", ...}``."""
    if completed_by is None:
        return None
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if email:
            return str(email)
        return f"label-studio-user:{completed_by['id']}" if "id" in completed_by else None
    return f"label-studio-user:{completed_by}"


def parse_label_studio(text: str, where: str = "input") -> ReadResult:
    """Rows from Label Studio's JSON export: one per non-cancelled annotation (merged by the store)."""
    try:
        tasks = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelError(
            [f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); give Label Studio's JSON export"],
            what=where,
        ) from exc
    if isinstance(tasks, dict) and "data" in tasks:
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise LabelError([f"a JSON {type(tasks).__name__}, not a list of tasks; export the project as JSON"], what=where)
    rows: list[LabelRow] = []
    problems: list[str] = []
    skipped = {"cancelled_annotations": 0, "tasks_without_annotations": 0, "empty_annotations": 0}
    for n, task in enumerate(tasks, start=1):
        tref = f"task {task.get('id', f'#{n}')}" if isinstance(task, dict) else f"task #{n}"
        if not isinstance(task, dict):
            problems.append(f"{tref}: not an object; export the project as JSON (not JSON-MIN or CSV)")
            continue
        data = task.get("data")
        if not isinstance(data, dict) or "text" not in data:
            problems.append(f"{tref}: no data.text; the labelling config reads $text, import tasks with a text field")
            continue
        annotations = task.get("annotations", task.get("completions"))
        if annotations is None:
            annotations = []
        if not isinstance(annotations, list):
            problems.append(f"{tref}: annotations is a {type(annotations).__name__}, not a list")
            continue
        live = [a for a in annotations if not (isinstance(a, dict) and a.get("was_cancelled"))]
        skipped["cancelled_annotations"] += len(annotations) - len(live)
        if not live:
            skipped["tasks_without_annotations"] += 1
            continue
        for k, ann in enumerate(live, start=1):
            aref = f"{tref} annotation {ann.get('id', k) if isinstance(ann, dict) else k}"
            labels = _annotation_labels(ann, aref, problems)
            if labels is None:
                continue
            if not labels:
                skipped["empty_annotations"] += 1
                continue
            row = _row(data.get("article_id"), data.get("text"), labels,
                       annotator_name(ann.get("completed_by")), aref, problems)
            if row is not None:
                rows.append(row)
    if problems:
        raise LabelError(problems, what=where)
    return ReadResult(rows, {k: v for k, v in skipped.items() if v})


def _annotation_labels(ann: Any, ref: str, problems: list[str]) -> dict[str, Any] | None:
    """{category: tag or ""} from one annotation's ``choices`` results; None when it is malformed."""
    if not isinstance(ann, dict) or not isinstance(ann.get("result", []), list):
        problems.append(f"{ref}: not an annotation object with a result list")
        return None
    labels: dict[str, Any] = {}
    for item in ann.get("result", []):
        if not isinstance(item, dict) or item.get("type") != "choices":
            continue  # other control types (a comment TextArea, ...) carry no category label
        name = item.get("from_name")
        choices = (item.get("value") or {}).get("choices")
        if not isinstance(choices, list) or len(choices) != 1:
            problems.append(
                f"{ref}: {name} has choices {choices!r}; exactly one choice per category "
                '(the shipped config uses choice="single")'
            )
            continue
        value = choices[0]
        labels[name] = ABSENT if value == NONE_CHOICE else value
    return labels


def label_studio_tasks(queue: Sequence[Mapping[str, Any]], model_version: str) -> list[dict[str, Any]]:
    """Tasks to import into Label Studio, with the model's predictions as pre-annotations."""
    tasks = []
    for row in queue:
        result = []
        for c in CATEGORIES:
            pred = (row.get("predictions") or {}).get(c)
            if pred is None:
                continue
            tag = pred.get("tag") or ABSENT
            item: dict[str, Any] = {
                "from_name": c,
                "to_name": TO_NAME,
                "type": "choices",
                "value": {"choices": [tag if tag != ABSENT else NONE_CHOICE]},
            }
            if pred.get("confidence") is not None:
                item["score"] = float(pred["confidence"])
            result.append(item)
        data = {k: row[k] for k in ("text", "article_id", "title", "language", "date", "reason", "priority") if k in row}
        task: dict[str, Any] = {"data": data}
        if result:
            task["predictions"] = [
                {"model_version": model_version, "score": float(row.get("priority", 0.0)), "result": result}
            ]
        tasks.append(task)
    return tasks


def label_studio_export(rows: Iterable[LabelRow], completed_by: Any = 1) -> list[dict[str, Any]]:
    """Label rows as Label Studio's JSON export would hold them (tests, and moving labels back)."""
    tasks = []
    for i, r in enumerate(rows, start=1):
        result = [
            {"from_name": c, "to_name": TO_NAME, "type": "choices", "origin": "manual",
             "value": {"choices": [NONE_CHOICE if v == ABSENT else v]}}
            for c, v in r.labels.items() if v is not None
        ]
        tasks.append({
            "id": i,
            "data": {"text": r.text, "article_id": r.article_id},
            "annotations": [{"id": i, "completed_by": completed_by, "was_cancelled": False, "result": result,
                             "ground_truth": False, "lead_time": 1.0, "task": i}],
            "predictions": [],
        })
    return tasks


# ---- atomic file writes (the queue goes wherever the user says: local path or fsspec URL) ----------
def write_text_atomic(out: str, text: str) -> str:
    """Write ``text`` to ``out`` (a local path or fsspec URL) with the package's one atomic write."""
    from news_signals.core.storage import atomic_write

    fs, path = fsspec.core.url_to_fs(out)
    atomic_write(path, text, fs)
    return out
