"""Active learning: quotas per (category, language), determinism for a seed, the lookback window,
never re-asking a labelled article, and the queue files (CLI, export_queue, the retrain stage)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd
import pytest
from news_signals.cli import main
from news_signals.core.storage import Storage
from news_signals.core.taxonomy import CATEGORIES, Signals, empty_signals, signals_to_columns
from news_signals.core.text import article_id
from news_signals.labels.sampler import export_queue, export_queue_stage, select_for_labelling
from news_signals.labels.store import LabelRow, LabelStore, text_article_id

DAY = "2026-11-30"


def write_day(storage: Storage, day: str, items: Sequence[tuple[str, str, dict[str, str]]]) -> pd.DataFrame:
    """A daily partition as ingest writes it; ``items`` = (title, language, bootstrap tags)."""
    rows = []
    for i, (title, language, tags) in enumerate(items):
        sig = empty_signals()
        for c, t in tags.items():
            sig[c] = {"score": -0.5, "tag": t}
        url = f"https://news.example/{day}/{i}"
        rows.append({
            "article_id": article_id(url, title), "url": url, "title": title,
            "seendate": pd.Timestamp(f"{day}T{i % 24:02d}:00:00Z"), "domain": "news.example",
            "language": language, "sourcecountry": "Sweden", **signals_to_columns(sig), "labeller": "keywords@1",
        })
    df = pd.DataFrame(rows)
    storage.replace_partition(day, df)
    return df


class ScriptedClassifier:
    """A real Classifier: a rule (word -> category, tag, confidence) fires when its word is in the text."""

    name = "model:scripted@1"

    def __init__(self, rules: Sequence[tuple[str, str, str, float]]) -> None:
        self.rules = rules

    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        out = []
        for text in texts:
            sig: Signals = {c: {"score": 0.0, "tag": "", "confidence": 0.95} for c in CATEGORIES}
            for word, cat, tag, conf in self.rules:
                if word in text.lower():
                    sig[cat] = {"score": -0.5, "tag": tag, "confidence": conf}
            out.append(sig)
        return out


RULES = [("wins", "sports", "victory", 0.9), ("cold", "weather_temp", "cold", 0.9), ("police", "crime", "police", 0.6)]


def news(storage: Storage) -> None:
    """Ten English sports disagreements (the model sees a win, keywords nothing), one Swedish sports one,
    one Swedish cold snap (tags differ), one English police story (agreement, but the model is unsure)."""
    items = [(f"Local team wins match number {i}", "English", {}) for i in range(10)]
    items += [("Laget wins derbyt i Malmo", "Swedish", {})]
    items += [("Cold snap grips Norrland", "Swedish", {"weather_temp": "freeze"})]
    items += [("Police patrol the square", "English", {"crime": "police"})]
    items += [(f"Quiet council meeting {i}", "English", {}) for i in range(5)]
    write_day(storage, DAY, items)


@pytest.fixture()
def storage(ns_home) -> Storage:
    s = Storage(str(ns_home))
    news(s)
    return s


def pick(storage, n, **kw):
    return select_for_labelling(n, storage=storage, classifier=ScriptedClassifier(RULES), use_hybrid=False, **kw)


def test_quotas_ask_about_rare_categories_and_languages(storage):
    queue = pick(storage, 5)
    cats = [(r["category"], r["language"]) for r in queue]
    # one round over the buckets first, best bucket first, then the rest by priority
    # (the two sports buckets tie at 1.2: their order is the seeded tie-break's)
    assert set(cats[:2]) == {("sports", "English"), ("sports", "Swedish")}
    assert cats[2:4] == [("crime", "English"), ("weather_temp", "Swedish")]
    assert cats[4] == ("sports", "English")
    assert [r["reason"].split(":")[0] for r in queue[2:4]] == ["quota crime/english", "quota weather_temp/swedish"]
    assert queue[4]["reason"].startswith("priority: sports: model victory (p=0.90), bootstrap absent")
    # without the quotas the same five places all go to the ten tied sports disagreements
    assert {r["category"] for r in pick(storage, 5, quota_share=0.0)} == {"sports"}
    row = queue[3]
    assert row["title"] == row["text"] == "Cold snap grips Norrland" and row["date"] == DAY
    assert row["predictions"]["weather_temp"] == {"tag": "cold", "score": -0.5, "confidence": 0.9}
    assert row["predictions"]["crime"]["tag"] == "" and row["classifier"] == "model:scripted@1"
    assert row["priority"] == pytest.approx(0.5 + 0.2)  # tags differ (0.5) + uncertainty 1 - |2*0.9 - 1|


def test_a_projects_scope_limits_categories_and_languages(storage):
    # an English-only team labelling crime and weather: no Swedish article, no sports question
    queue = pick(storage, 100, categories=["crime", "weather_temp"], languages=["en"])
    assert {r["language"] for r in queue} == {"English"}
    assert {r["category"] for r in queue} == {"crime"}  # the only in-scope English category anyone raised
    assert queue[0]["title"] == "Police patrol the square" and queue[0]["reason"].startswith("quota crime/english")
    # GDELT names work as well as codes; with every category the sports disagreements come back
    assert {r["category"] for r in pick(storage, 100, languages=["Swedish"])} == {"sports", "weather_temp"}
    assert not pick(storage, 100, languages=["Finnish"])
    with pytest.raises(ValueError, match=r"\['weather'\] are not in the taxonomy; choose from emergencies"):
        pick(storage, 5, categories=["weather"])


def test_same_seed_same_queue_other_seed_other_order(storage):
    a, b = pick(storage, 8, seed=13), pick(storage, 8, seed=13)
    assert a == b
    c = pick(storage, 8, seed=14)
    assert [r["article_id"] for r in c] != [r["article_id"] for r in a]
    # the seed only breaks ties: the buckets and the number of sports articles do not move
    assert sorted(r["category"] for r in c) == sorted(r["category"] for r in a)
    all_rows = pick(storage, 100)
    assert len(all_rows) == 18 and len({r["article_id"] for r in all_rows}) == 18


def test_labelled_articles_are_never_asked_again(storage):
    first = pick(storage, 100)
    by_id, by_text = first[0], first[1]
    LabelStore(storage).import_rows(
        [
            LabelRow(by_id["article_id"], by_id["text"], {"sports": "victory"}),
            # the same headline labelled elsewhere, under the id its text gives (no URL known)
            LabelRow(text_article_id(by_text["text"] + "!"), by_text["text"] + "!", {"sports": ""}),
        ],
        source="round-1",
    )
    again = pick(storage, 100)
    ids = {r["article_id"] for r in again}
    assert by_id["article_id"] not in ids and by_text["article_id"] not in ids
    assert len(again) == len(first) - 2


def test_the_window_is_lookback_days_ending_on_end_date(ns_home):
    storage = Storage(str(ns_home))
    write_day(storage, "2026-11-01", [("Old team wins", "English", {})])
    write_day(storage, "2026-11-20", [("Middle team wins", "English", {})])
    write_day(storage, "2026-11-30", [("New team wins", "English", {})])
    titles = lambda **kw: sorted(r["title"] for r in pick(storage, 10, **kw))  # noqa: E731
    assert titles(lookback_days=10) == ["New team wins"]
    assert titles(lookback_days=30, end_date="2026-11-20") == ["Middle team wins", "Old team wins"]
    assert titles(lookback_days=1, end_date="2026-11-19") == []
    with pytest.raises(ValueError, match="lookback_days"):
        pick(storage, 1, lookback_days=0)


def test_without_a_promoted_model_keywords_stand_in(storage):
    rows = select_for_labelling(3, storage=storage, use_hybrid=False)
    assert len(rows) == 3 and {r["classifier"] for r in rows} == {"keywords"}


def test_export_queue_writes_jsonl_or_label_studio_tasks(storage, tmp_path):
    out = tmp_path / "q" / "queue.jsonl"
    summary = export_queue(4, str(out), storage=storage, classifier=ScriptedClassifier(RULES), use_hybrid=False)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert summary["rows"] == len(lines) == 4 and summary["path"] == str(out)
    assert summary["per_language"] == {"English": 2, "Swedish": 2}
    assert summary["per_category"] == {"crime": 1, "sports": 2, "weather_temp": 1}
    assert "labels" not in lines[0]  # re-importing an untouched queue must not pass for human labels
    studio = tmp_path / "queue.json"
    export_queue(4, str(studio), "label-studio", storage=storage, classifier=ScriptedClassifier(RULES), use_hybrid=False)
    tasks = json.loads(studio.read_text())
    assert [t["data"]["article_id"] for t in tasks] == [x["article_id"] for x in lines]
    assert tasks[0]["predictions"][0]["model_version"] == "model:scripted@1"
    assert not list(tmp_path.glob("**/.tmp-*"))
    with pytest.raises(ValueError, match="format"):
        export_queue(4, str(tmp_path / "x"), "csv", storage=storage)
    assert not (tmp_path / "x").exists()


def test_labels_export_cli(storage, tmp_path, capsys):
    out = tmp_path / "queue.jsonl"
    assert main(["labels", "export", "--n", "2", "--out", str(out), "--no-hybrid", "--end-date", DAY]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 2 and len(out.read_text().splitlines()) == 2
    assert main(["labels", "export", "--n", "2", "--out", str(out), "--end-date", "30-11-2026"]) == 2
    capsys.readouterr()
    assert main(["labels", "export", "--n", "50", "--out", str(out), "--no-hybrid", "--languages", "Swedish",
                 "--categories", "weather_temp,crime"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["per_language"] == {"Swedish": 2}
    assert set(summary["per_category"]) <= {"weather_temp", "crime"}


def test_export_queue_stage_writes_both_files_for_the_logical_date(storage, ns_home):
    summary = export_queue_stage(
        {"label_queue_size": 3, "label_queue_seed": 5, "lookback_days": 30, "label_queue_hybrid": False},
        "2026-11-30T00:00:00+00:00",
        storage=storage,
    )
    queue = ns_home / "labels" / "queue"
    jsonl, studio = queue / f"{DAY}.jsonl", queue / f"{DAY}.label-studio.json"
    assert summary["rows"] == 3 and summary["path"] == str(jsonl) and summary["label_studio_path"] == str(studio)
    assert len(jsonl.read_text().splitlines()) == 3 and len(json.loads(studio.read_text())) == 3
    # the queue lives beside the batches but is not one: nothing was imported
    assert LabelStore(storage).batches() == []


def test_the_hybrid_labeller_is_a_second_opinion_with_its_confidence(storage):
    """The real hybrid (shipped MiniLM, offline): with keywords standing in for the model, its
    disagreement and its confidence are what make an article informative."""
    import torch

    torch.set_num_threads(1)
    rows = select_for_labelling(4, storage=storage, use_hybrid=True)
    assert {r["classifier"] for r in rows} == {"keywords"}
    assert all("hybrid" in r["reason"] for r in rows)
    assert max(r["priority"] for r in rows) > 0


def test_the_promoted_model_is_the_default_and_its_presence_probability_is_the_uncertainty(storage):
    """A real tiny model artifact promoted in the local registry: resolve_classifier("auto") finds it."""
    from _feature_helpers import register_and_promote, tiny_artifact

    version = register_and_promote(storage, tiny_artifact())
    rows = select_for_labelling(6, storage=storage, use_hybrid=False)
    assert len(rows) == 6 and {r["classifier"] for r in rows} == {f"model:news_signals@{version}"}
    for r in rows:
        assert set(r["predictions"]) == set(CATEGORIES)
        assert all(0.0 <= p["confidence"] <= 1.0 for p in r["predictions"].values())
        assert "(p=" in r["reason"] and r["priority"] >= 0
