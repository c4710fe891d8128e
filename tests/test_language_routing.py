"""A model trained for some languages hands the others to the keyword labeller, and says so per row."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest
from news_signals.labelling.keywords import KeywordLabeller

SV = "Brand i flerfamiljshus i Göteborg, polisen utreder och flera har evakuerats"
EN = "Fire destroys a block of flats in the city and police are investigating"
UNSURE = "Volvo XC90"


@pytest.fixture(scope="module")
def english_model(tmp_path_factory):
    """The tiny test artifact, saved again with manifest languages = ["en"]."""
    from news_signals.model.artifact import save_artifact
    from news_signals.model.inference import ModelClassifier, clear_cache

    from tools.tiny_model import build_tiny_artifact

    root = tmp_path_factory.mktemp("lang")
    base = build_tiny_artifact(root / "all")
    out = root / "en"
    shutil.copytree(base, out)
    art = ModelClassifier.from_dir(base).artifact
    save_artifact(art.model, art.tokenizer, out, model_name="tiny", base_model="tiny", max_length=64, languages=["en"])
    clear_cache()
    return base, out


def test_other_languages_go_to_keywords_with_their_name(english_model):
    from news_signals.model.inference import ModelClassifier

    every, en_only = (ModelClassifier.from_dir(p) for p in english_model)
    assert every.languages == frozenset() and en_only.languages == {"en"}
    texts = [EN, SV, UNSURE]
    signals, names = en_only.classify_named(texts)
    assert names == [en_only.name, "keywords", en_only.name]
    assert signals[1] == KeywordLabeller().classify(SV)
    assert signals[1]["emergencies"]["tag"] == "fire"  # the lexicon knows Swedish
    model_only, all_names = every.classify_named(texts)
    assert all_names == [every.name] * 3
    for i in (0, 2):  # the same model outputs elsewhere (up to float noise from batch padding)
        for c, sig in signals[i].items():
            assert sig["tag"] == model_only[i][c]["tag"] and sig["score"] == pytest.approx(model_only[i][c]["score"], abs=1e-5)
    _, presence = en_only.classify_with_presence(texts)
    assert presence.shape == (3, len(en_only.categories))
    assert set(presence[1].tolist()) <= {0.0, 1.0}


def test_classify_cli_and_feature_rows_name_the_classifier_per_row(english_model, tmp_path):
    from news_signals.features.pipeline import classify_rows
    from news_signals.model.inference import ModelClassifier

    clf = ModelClassifier.from_dir(english_model[1])
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"title": t, "id": i}) + "\n" for i, t in enumerate([EN, SV])))
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "news_signals", "classify", "--method", "model", "--model-dir", str(english_model[1]),
         "--input", str(src), "--output", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["classifier"] for r in rows] == [clf.name, "keywords"] and [r["id"] for r in rows] == [0, 1]
    assert "1 articles in languages" in done.stderr
    feats = classify_rows(pd.DataFrame({"title": [EN, SV], "url": ["u1", "u2"]}), clf, batch_size=1)
    assert feats["classifier"].tolist() == [clf.name, "keywords"]


def test_trainer_keeps_only_its_languages():
    from news_signals.commands.train import parse_languages
    from news_signals.model.train import TrainConfig, _only_languages

    df = pd.DataFrame({"text": [EN, SV, UNSURE]})
    assert _only_languages(df, "train", ("en",))["text"].tolist() == [EN, UNSURE]
    assert _only_languages(df, "train", ("sv",))["text"].tolist() == [SV, UNSURE]
    with pytest.raises(ValueError, match="no rows in languages"):
        _only_languages(pd.DataFrame({"text": [SV]}), "val", ("en",))
    with pytest.raises(ValueError, match="cannot be detected"):
        TrainConfig(languages=("de",))
    assert parse_languages("auto", "minilm") == ["en"] and parse_languages("auto", "/some/dir") == []
    assert parse_languages("all", "minilm") == [] and parse_languages("en, sv", "minilm") == ["en", "sv"]


def test_served_language_is_one_rule_for_training_serving_and_the_int8_check():
    from news_signals.labelling.keywords import served_language

    leans = {text: KeywordLabeller().analyse(text).lang_lean for text in (SV, EN, UNSURE)}
    assert leans == {SV: "sv", EN: "en", UNSURE: ""}
    assert [served_language(leans[t], ["en"]) for t in (SV, EN, UNSURE)] == [False, True, True]
    assert [served_language(leans[t], []) for t in (SV, EN, UNSURE)] == [True, True, True]  # no languages: all
    assert served_language(leans[SV], frozenset({"en", "sv"}))
