"""The keyword bootstrap labeller: no substring false positives, the signals contract, signed scores."""

from __future__ import annotations

import json

import pytest
from news_signals.core.taxonomy import CATEGORIES, TAGS, check_signals
from news_signals.labelling.classifiers import Classifier, keyword_classifier
from news_signals.labelling.keywords import KeywordLabeller, expand_braces


@pytest.fixture(scope="module")
def kw() -> KeywordLabeller:
    return KeywordLabeller()


def present(signals, category: str) -> bool:
    return signals[category]["tag"] != ""


# The replaced labeller matched substrings; each text must NOT fire the named category.
FALSE_POSITIVES = [
    ("Stockholm hosts a conference on urban planning", "economics"),
    ("Nytt bibliotek öppnar i Stockholm", "economics"),
    ("Hon flyttade från Göteborg till Umeå", "crime"),
    ("Besökare kom därifrån och härifrån under dagen", "crime"),
    ("Ukraine signs cooperation agreement with Poland", "weather_wet"),
    ("Teachers receive training in new methods", "weather_wet"),
    ("Business leaders meet in Davos", "transportation"),
    ("Small business owners expect a good year", "transportation"),
    ("Stockholms kulturfestival lockar tusentals besökare", "politics"),
    ("The festival opens on Friday with local artists", "politics"),
    ("Karnevalen i Malmö drog stor publik", "politics"),
    ("Strömavbrottet i Uppsala är åtgärdat", "crime"),
    ("Forskarna gjorde ett genombrott inom cancerbehandling", "crime"),
    ("Soldiers opened fire on the convoy", "emergencies"),
    ("The cold war shaped European politics for decades", "weather_temp"),
    ("Det var ett bra val av tränaren", "politics"),
    ("Rainbow flags were raised at city hall", "weather_wet"),
    ("The brainstorm session produced new ideas", "weather_wet"),
    ("Ambusiness event in town", "transportation"),
    ("The Nobel Prize in literature was announced", "economics"),
    ("Nobelpriset i litteratur delas ut i dag", "economics"),
    ("No fire was reported at the plant", "emergencies"),
    ("Hollywood stars blast the new tax rules", "emergencies"),
    ("Rivers burst their banks after the storm", "economics"),
    ("Ingen misshandel enligt polisen", "economics"),
    ("Vi är på väg mot Skanör", "transportation"),
    ("Qantas imposes a wage freeze on engineers", "weather_temp"),
    ("Ett litet snöbollskrig mitt i sommaren", "politics"),
    ("Unions threaten disruptions to Christmas flights", "festivals"),
    ("The mind games continue before the vote", "sports"),
    ("Stock markets crash as recession fears grow", "emergencies"),
    ("Det så kallade folkhemmet växer", "weather_temp"),
    ("Ingen brand uppstod efter larmet", "emergencies"),
]


@pytest.mark.parametrize(("text", "category"), FALSE_POSITIVES)
def test_no_substring_false_positives(kw, text, category):
    signals = kw.classify(text)
    assert not present(signals, category), f"{text!r} wrongly fired {category}: {signals[category]}"


# Each text must fire the category with the tag (both languages, compounds on purpose).
TRUE_POSITIVES = [
    ("Skogsbrand utom kontroll i Dalarna", "emergencies", "fire"),
    ("Villabranden i Nacka släckt efter flera timmar", "emergencies", "fire"),
    ("Wildfire forces thousands to flee", "emergencies", "fire"),
    ("Kraftigt jordskalv i Turkiet", "emergencies", "earthquake"),
    ("Magnitude 7 earthquake strikes off Japan", "emergencies", "earthquake"),
    ("Explosion i flerfamiljshus i Linköping", "emergencies", "explosion"),
    ("Bankrån i Malmö – två gripna", "crime", "robbery"),
    ("Armed robbery at a jewellery store", "crime", "robbery"),
    ("Cykelstölder ökar i Lund", "crime", "theft"),
    ("Man knivhuggen i Göteborg", "crime", "assault"),
    ("Melodifestivalen lockade rekordpublik", "festivals", "concert"),
    ("Thousands watched the Pride parade", "festivals", "parade"),
    ("Trafikolycka på E4 – tre döda", "transportation", "accident"),
    ("Train delays after signal failure in Malmö", "transportation", "delay"),
    ("Värmebölja i södra Sverige", "weather_temp", "heatwave"),
    ("Köldknäpp med minus 30 grader i Norrland", "weather_temp", "cold"),
    ("Översvämningar i Gävle efter skyfall", "weather_wet", "flood"),
    ("Heavy rain causes flooding in Gävle", "weather_wet", "flood"),
    ("Stormen Gudrun fällde skog i Småland", "weather_wet", "storm"),
    ("Tre Kronor vann mot Finland i ishockey", "sports", "hockey"),
    ("Allsvenskan: AIK förlorade mot Malmö FF i fotboll", "sports", "football"),
    ("Stockholmsbörsen steg kraftigt", "economics", "market"),
    ("Inflationen stiger till fem procent", "economics", "inflation"),
    ("Volvo varslar 1 000 anställda", "economics", "employment"),
    ("Riksdagsvalet: höga siffror i valdeltagandet", "politics", "election"),
    ("Protests erupt after government raises taxes", "politics", "protest"),
    ("Människohandel i Göteborg – tre gripna", "crime", "police"),
    ("Rekordkyla i Norrland i natt", "weather_temp", "cold"),
    ("Spårfel stoppar pendeltågen i morgonrusningen", "transportation", "delay"),
    ("Förbundskaptenen tar ut truppen", "sports", "game"),
    ("Matpriserna stiger igen", "economics", "inflation"),
    ("Allsång på Skansen lockade 20 000", "festivals", "concert"),
    ("Massive blast at a fireworks factory kills 12", "emergencies", "explosion"),
]


@pytest.mark.parametrize(("text", "category", "tag"), TRUE_POSITIVES)
def test_true_positives_with_tag(kw, text, category, tag):
    signals = kw.classify(text)
    assert signals[category]["tag"] == tag, f"{text!r}: {signals[category]}"


SIGNS = [
    ("Massive earthquake kills 200 in Turkey", "emergencies", -1),
    ("Bankrån i Malmö", "crime", -1),
    ("Stockholm Jazz Festival celebrates record crowds", "festivals", 1),
    ("Konserten ställs in efter kravaller", "festivals", -1),
    ("Festival cancelled because of storm warning", "festivals", -1),
    ("Sweden beat Finland in the hockey world championship", "sports", 1),
    ("Fotbollsmatchen avbröts efter bråk på läktaren", "sports", -1),
    ("Stock markets crash as recession fears grow", "economics", -1),
    ("Economic growth beats expectations as exports rise", "economics", 1),
    ("Inflation rises to 5 percent", "economics", -1),
    ("Arbetslösheten sjunker i Sverige", "economics", 1),
    ("Arbetslösheten ökar kraftigt", "economics", -1),
    ("Parties reach agreement on peace deal", "politics", 1),
    ("Protests and riots after disputed election", "politics", -1),
    ("Översvämning i Gävle", "weather_wet", -1),
    ("Matpriserna stiger igen", "economics", -1),
    ("Elpriserna sjunker kraftigt", "economics", 1),
    ("Volvo Cars varslar 3 000 anställda", "economics", -1),
    ("Kommunen höjer skatten", "economics", -1),
    ("Company announces layoffs", "economics", -1),
]


@pytest.mark.parametrize(("text", "category", "sign"), SIGNS)
def test_signed_score_direction(kw, text, category, sign):
    score = kw.classify(text)[category]["score"]
    assert score * sign > 0, f"{text!r}: {category} score {score} should have sign {sign}"


def test_intensity_moves_magnitude(kw):
    mild = kw.classify("Small fire in a kitchen, no injuries")["emergencies"]["score"]
    plain = kw.classify("Fire in an apartment building")["emergencies"]["score"]
    severe = kw.classify("Massive fire kills 30 people in apartment building")["emergencies"]["score"]
    assert severe < plain < mild < 0
    sv_plain = kw.classify("Brand i lägenhet i Uppsala")["emergencies"]["score"]
    sv_severe = kw.classify("Omfattande brand i Uppsala – flera döda")["emergencies"]["score"]
    assert sv_severe < sv_plain < 0


def test_contract_on_real_texts(kw):
    from news_signals.corpus import load_texts

    texts = [r.text for r in load_texts()][:3000]
    signals = kw.classify_texts(texts)
    assert len(signals) == len(texts)
    fired = 0
    for s in signals:
        check_signals(s)
        assert set(s) == set(CATEGORIES)
        fired += any(v["tag"] for v in s.values())
    assert fired > len(texts) * 0.2, "the labeller should find something in a fair share of real news"


def test_every_lexicon_tag_is_in_the_vocabulary():
    from importlib import resources

    data = json.loads(resources.files("news_signals.labelling").joinpath("lexicon.json").read_text(encoding="utf-8"))
    for cat, spec in data["categories"].items():
        for entry in spec["entries"]:
            assert entry["tag"] in TAGS[cat], (cat, entry["tag"])


def test_bad_lexicon_is_refused(tmp_path):
    bad = tmp_path / "lexicon.json"
    bad.write_text(json.dumps({"categories": {"sports": {"entries": [{"tag": "curling", "w": 0.5, "en": ["curling"]}]}}}))
    with pytest.raises(ValueError, match="curling"):
        KeywordLabeller(bad)
    with pytest.raises(FileNotFoundError, match="lexicon"):
        KeywordLabeller(tmp_path / "missing.json")


def test_protocol_and_name(kw):
    assert isinstance(kw, Classifier)
    assert kw.name == "keywords" and kw.version
    assert isinstance(keyword_classifier(), KeywordLabeller)
    assert kw.classify_texts([]) == []
    empty = kw.classify("")
    check_signals(empty)
    assert all(v["tag"] == "" for v in empty.values())


def test_brace_expansion():
    assert expand_braces("flood{,s,ed}") == ["flood", "floods", "flooded"]
    assert expand_braces("a{b,c}d{,e}") == ["abd", "abde", "acd", "acde"]


def test_floor_on_disaster_train_split(kw):
    """Development-split quality floor (the held-out splits are never read)."""
    from news_signals.labelling.evaluation import disaster_dev_set, score_predictions

    dev = disaster_dev_set()
    result = score_predictions(kw.classify_texts(dev.texts), dev.truth)
    floors = {"emergencies": 0.55, "weather_wet": 0.65, "weather_temp": 0.45, "transportation": 0.42}
    for cat, floor in floors.items():
        assert result["categories"][cat]["f1"] >= floor, (cat, result["categories"][cat])
    assert result["macro_f1"] >= 0.55


def test_evaluation_script_writes_table_and_json(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "labellers.json"
    proc = subprocess.run(
        [sys.executable, str(root / "scripts" / "evaluate_labellers.py"), "--labellers", "keywords",
         "--limit", "300", "--output", str(out)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    assert "| keywords |" in proc.stdout and "macro-F1" in proc.stdout
    data = json.loads(out.read_text())
    assert data["n_texts"] == 300 and 0.0 < data["results"]["keywords"]["macro_f1"] <= 1.0
    assert set(data["handmade"]) == {"en", "sv"}


def test_dev_set_refuses_held_out_splits(monkeypatch):
    import news_signals.corpus as corpus
    import pandas as pd
    from news_signals.labelling import evaluation

    leaked = pd.DataFrame({"message": ["x"], "genre": ["news"], "split": ["test"], "fire": [1], "earthquake": [0],
                           "floods": [0], "storm": [0], "cold": [0], "transport": [0]})
    monkeypatch.setattr(corpus, "disaster_train_news", lambda: leaked)
    with pytest.raises(ValueError, match="train"):
        evaluation.disaster_dev_set()
