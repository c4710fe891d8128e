"""Annotator formats: JSONL and Label Studio (shipped config, JSON export import, task export with
pre-annotations), both round-tripped through the real store; bad files refused whole, row named."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from news_signals.cli import main
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, TAGS
from news_signals.labels.formats import (
    annotator_name,
    build_label_config,
    label_config,
    label_studio_tasks,
    labels_jsonl,
    parse_jsonl,
    parse_label_studio,
    read_labels,
)
from news_signals.labels.store import LabelError, LabelRow, LabelStore, text_article_id


def batch_files(home) -> list[str]:
    d = home / "labels" / "batches"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# ---- the labelling config -------------------------------------------------------------------------
def test_shipped_label_studio_config_has_one_single_choice_per_category():
    assert label_config() == build_label_config()  # regenerate label_studio.xml when the taxonomy changes
    root = ET.fromstring(label_config())
    text = root.find("Text")
    assert text is not None and text.get("name") == "text" and text.get("value") == "$text"
    choices = root.findall("Choices")
    assert [c.get("name") for c in choices] == list(CATEGORIES)
    for c in choices:
        assert c.get("toName") == "text" and c.get("choice") == "single"
        assert [x.get("value") for x in c.findall("Choice")] == [*TAGS[c.get("name")], "none"]


def ls_annotation(ann_id, choices: dict[str, str], completed_by, cancelled=False) -> dict:
    """One annotation as Label Studio's JSON export writes it for the shipped config."""
    return {
        "id": ann_id,
        "completed_by": completed_by,
        "result": [
            {"id": f"r{ann_id}{c[:3]}", "from_name": c, "to_name": "text", "type": "choices", "origin": "manual",
             "value": {"choices": [v]}}
            for c, v in choices.items()
        ],
        "was_cancelled": cancelled,
        "ground_truth": False,
        "created_at": "2026-12-03T09:00:00.000000Z",
        "updated_at": "2026-12-03T09:00:00.000000Z",
        "lead_time": 12.5,
        "prediction": {},
        "result_count": 0,
        "task": 0,
        "parent_prediction": None,
        "parent_annotation": None,
    }


def ls_task(task_id, text, annotations, article_id=None) -> dict:
    data = {"text": text, **({"article_id": article_id} if article_id else {})}
    return {"id": task_id, "data": data, "annotations": annotations, "predictions": [], "drafts": [],
            "meta": {}, "project": 1, "inner_id": task_id, "total_annotations": len(annotations),
            "cancelled_annotations": sum(a["was_cancelled"] for a in annotations)}


def hand_made_export() -> list[dict]:
    """A Label Studio export as two annotators would leave it, using only choices of the shipped config."""
    return [
        ls_task(1, "Fire destroys warehouse in Gothenburg harbour", [
            ls_annotation(11, {"emergencies": "fire", "crime": "none"}, 7),
            ls_annotation(12, {"emergencies": "fire", "transportation": "closure"},
                          {"id": 9, "email": "lisa@example.org", "first_name": "Lisa", "last_name": ""}),
            ls_annotation(13, {"emergencies": "explosion"}, 8, cancelled=True),  # cancelled: would conflict
        ], article_id="0123456789abcdef"),
        ls_task(2, "Heavy snow closes roads", [ls_annotation(21, {"weather_wet": "snow", "weather_temp": "none"}, 7)]),
        ls_task(3, "Thousands at the midsummer parade", [ls_annotation(31, {"festivals": "parade"}, 7, cancelled=True)]),
        ls_task(4, "Markets rally", []),  # not annotated yet
    ]


def test_a_hand_made_label_studio_export_imports(ns_home, tmp_path):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(hand_made_export()))
    read = read_labels(str(path), "label-studio")
    assert read.skipped == {"cancelled_annotations": 2, "tasks_without_annotations": 2}
    store = LabelStore(Storage(str(ns_home)))
    m = store.import_rows(read.rows, source="label-studio:project-1", fmt="label-studio", skipped=read.skipped)
    assert m.rows == 2 and m.annotators == ["label-studio-user:7", "lisa@example.org"]
    cur = store.current().set_index("article_id")
    fire = cur.loc["0123456789abcdef"]
    assert (fire["emergencies"], fire["crime"], fire["transportation"]) == ("fire", "", "closure")
    assert fire["sports"] is None and fire["annotator"] == "label-studio-user:7, lisa@example.org"
    snow = cur.loc[text_article_id("Heavy snow closes roads")]  # no data.article_id: derived from the text
    assert (snow["weather_wet"], snow["weather_temp"], snow["festivals"]) == ("snow", "", None)
    assert text_article_id("Thousands at the midsummer parade") not in cur.index


def test_completed_by_forms():
    assert annotator_name(7) == "label-studio-user:7"
    assert annotator_name({"id": 3, "email": "a@b.c"}) == "a@b.c"
    assert annotator_name({"id": 3}) == "label-studio-user:3"
    assert annotator_name(None) is None


def test_disagreeing_label_studio_annotations_are_a_conflict(ns_home):
    tasks = [ls_task(5, "Storm hits the coast", [ls_annotation(51, {"weather_wet": "storm"}, 1),
                                                 ls_annotation(52, {"weather_wet": "rain"}, 2)])]
    rows = parse_label_studio(json.dumps(tasks)).rows
    with pytest.raises(LabelError) as err:
        LabelStore(Storage(str(ns_home))).import_rows(rows, source="ls")
    assert "task 5 annotation 51" in str(err.value) and "task 5 annotation 52" in str(err.value)
    assert batch_files(ns_home) == []


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t[1]["annotations"][0]["result"][0]["value"].update(choices=["blizzard"]),
         ["task 2 annotation 21", "weather_wet='blizzard'", "valid tags for weather_wet"]),
        (lambda t: t[1]["annotations"][0]["result"][0].update(from_name="weather"),
         ["task 2 annotation 21", "unknown category 'weather'"]),
        (lambda t: t[1]["annotations"][0]["result"][0]["value"].update(choices=["snow", "rain"]),
         ["task 2 annotation 21", "exactly one choice"]),
        (lambda t: t[1].update(data={"title": "no text key"}), ["task 2", "no data.text"]),
        (lambda t: t[1]["data"].update(text=""), ["task 2 annotation 21", "text is empty"]),
    ],
    ids=["tag-outside-vocabulary", "unknown-category", "two-choices", "no-text", "empty-text"],
)
def test_a_bad_label_studio_file_is_refused_whole(ns_home, tmp_path, mutate, expected, capsys):
    tasks = hand_made_export()
    mutate(tasks)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(tasks))
    assert main(["labels", "import", "--file", str(path), "--format", "label-studio"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "nothing stored" in err[0]
    for part in expected:
        assert part in err[0]
    assert batch_files(ns_home) == []  # task 1 was fine, and is not stored either


def test_a_label_studio_file_that_is_not_a_task_list_is_refused(tmp_path):
    with pytest.raises(LabelError, match="not JSON"):
        parse_label_studio("[{")
    with pytest.raises(LabelError, match="not a list of tasks"):
        parse_label_studio('"hello"')


# ---- JSONL ---------------------------------------------------------------------------------------
def test_jsonl_round_trip_through_the_store(ns_home, tmp_path):
    rows = [
        LabelRow("0123456789abcdef", "Fire at the harbour", {"emergencies": "fire", "crime": ""}, "ann"),
        LabelRow(text_article_id("Cup final tonight"), "Cup final tonight", {"sports": "game"}),
    ]
    path = tmp_path / "labels.jsonl"
    path.write_text(labels_jsonl(rows))
    store = LabelStore(Storage(str(ns_home)))
    store.import_rows(read_labels(str(path)).rows, source="round-trip")
    back = [LabelRow(r["article_id"], r["text"], {c: r[c] for c in CATEGORIES if r[c] is not None}, r["annotator"])
            for r in store.current().to_dict("records")]
    assert sorted(back, key=lambda r: r.article_id) == sorted(rows, key=lambda r: r.article_id)


def test_jsonl_title_stands_for_text_and_a_missing_category_is_unknown():
    read = parse_jsonl('{"title": "Cup final", "labels": {"sports": "game", "crime": null}}\n\n')
    (r,) = read.rows
    assert r.text == "Cup final" and r.article_id == text_article_id("Cup final") and r.ref == "line 1"
    assert r.labels == {"sports": "game", "crime": None}


def test_a_malformed_jsonl_file_names_every_bad_line(ns_home, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"text": "Fire", "labels": {"emergencies": "fire"}}\n'
        "not json\n"
        '{"labels": {"crime": ""}}\n'
        '["a list"]\n'
        '{"text": "Rain"}\n'
        '{"text": "Snow", "labels": "weather_wet=snow"}\n'
    )
    with pytest.raises(LabelError) as err:
        read_labels(str(path))
    msg = str(err.value)
    for part in ("line 2: not JSON", "line 3: no \"text\"", "line 4: a JSON list", "line 5: no \"labels\"",
                 "line 6: \"labels\" is a str"):
        assert part in msg
    assert main(["labels", "import", "--file", str(path)]) == 2
    assert "line 2: not JSON" in capsys.readouterr().err
    assert batch_files(ns_home) == []


# ---- the exported queue as Label Studio tasks, annotated, imported back -----------------------------
def test_label_studio_tasks_carry_predictions_and_come_back_as_labels(ns_home):
    queue = [{
        "article_id": "0123456789abcdef", "text": "Fire at the harbour", "title": "Fire at the harbour",
        "language": "English", "date": "2026-12-01", "reason": "quota", "priority": 1.25,
        "predictions": {c: {"tag": "", "score": 0.0, "confidence": 0.9} for c in CATEGORIES}
        | {"emergencies": {"tag": "fire", "score": -0.8, "confidence": 0.55}},
    }]
    (task,) = label_studio_tasks(queue, "model:news_signals@3")
    assert task["data"]["text"] == "Fire at the harbour" and task["data"]["article_id"] == "0123456789abcdef"
    (pred,) = task["predictions"]
    assert pred["model_version"] == "model:news_signals@3" and pred["score"] == 1.25
    by_cat = {r["from_name"]: r for r in pred["result"]}
    assert set(by_cat) == set(CATEGORIES)
    assert by_cat["emergencies"]["value"] == {"choices": ["fire"]} and by_cat["emergencies"]["score"] == 0.55
    assert by_cat["crime"]["value"] == {"choices": ["none"]}
    assert all(r["type"] == "choices" and r["to_name"] == "text" for r in pred["result"])
    # the annotator accepts the pre-annotation but corrects crime; Label Studio exports it as an annotation
    result = [dict(r) for r in pred["result"] if r["from_name"] in ("emergencies", "crime")]
    result[1] = {**result[1], "value": {"choices": ["police"]}}
    task = {"id": 40, **task, "annotations": [ls_annotation(400, {}, 7) | {"result": result}]}
    rows = parse_label_studio(json.dumps([task])).rows
    store = LabelStore(Storage(str(ns_home)))
    store.import_rows(rows, source="ls", fmt="label-studio")
    cur = store.current().iloc[0]
    assert (cur["article_id"], cur["emergencies"], cur["crime"], cur["sports"]) == ("0123456789abcdef", "fire", "police", None)


def test_labels_stats_counts_training_and_heldout(ns_home, tmp_path, capsys):
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(
        json.dumps({"text": f"Headline number {i}", "labels": {"crime": "police" if i % 2 else ""}}) + "\n"
        for i in range(20)
    ))
    assert main(["labels", "import", "--file", str(path), "--source", "round-1"]) == 0
    assert "20 articles from round-1" in capsys.readouterr().out
    assert main(["labels", "import", "--file", str(path)]) == 0
    assert "already imported" in capsys.readouterr().out
    assert main(["labels", "stats", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert (s["batches"], s["articles"], s["training"] + s["heldout"]) == (1, 20, 20)
    assert 0 < s["heldout"] < 20
    from news_signals.labels.split import part_of
    from news_signals.labels.store import text_article_id

    expected_calibration = sum(part_of(text_article_id(f"Headline number {i}")) == "calibration" for i in range(20))
    assert s["calibration"] == expected_calibration and s["calibration"] <= s["training"]
    assert s["per_category"]["crime"] == {"labelled": 10, "absent": 10, "unknown": 0}
    assert s["per_category"]["sports"] == {"labelled": 0, "absent": 0, "unknown": 20}
    t, h = s["per_category_training"]["crime"], s["per_category_heldout"]["crime"]
    assert t["labelled"] + h["labelled"] == 10 and t["absent"] + h["absent"] == 10
    assert main(["labels", "stats"]) == 0
    assert "1 batches (20 rows), 20 articles" in capsys.readouterr().out
