"""Keyword bootstrap labeller: Swedish + English lexicon, token matching, signed scores.

The system this replaces matched raw substrings and so read "Stockholm" as the stock market
and "från" as a robbery. Here every rule matches whole tokens (or whole phrases); Swedish
compounds are matched on purpose through *compound heads* (``*brand`` matches "skogsbrand")
with guard lists (``*rån`` never matches "från"). The lexicon lives in ``lexicon.json``.

Term syntax in the lexicon (all lower case):

- ``word``       the exact token
- ``stem*``      any token starting with ``stem`` (English inflection: ``evacuat*``)
- ``*head``      a compound ending with ``head`` (``*olycka`` matches "trafikolycka", not "olycka")
- ``a b``        a phrase of consecutive exact tokens
- ``x{,s,ed}``   brace expansion into ``x``, ``xs``, ``xed``
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, Signals
from news_signals.labelling.datafiles import read_package_json

LEXICON_FILE = "lexicon.json"
_TOKEN = re.compile(r"\w+", re.UNICODE)
_BRACE = re.compile(r"\{([^{}]*)\}")
_SV_CHARS = re.compile(r"[åäö]")
_MIN_AFFIX_REST = 2  # a compound needs at least two letters before its head


def expand_braces(term: str) -> list[str]:
    """``flood{,s,ed}`` -> ``[flood, floods, flooded]`` (several groups multiply)."""
    parts = _BRACE.split(term)
    literals, options = parts[0::2], [p.split(",") for p in parts[1::2]]
    out = []
    for combo in itertools.product(*options):
        out.append("".join(lit + (combo[i] if i < len(combo) else "") for i, lit in enumerate(literals)))
    return out


@dataclass(frozen=True)
class Hit:
    """One lexicon entry: what a matching token says about a category."""

    category: str
    tag: str
    weight: float
    polarity: float  # -1 bad news, +1 good news, 0 neutral (direction decided by cues)


@dataclass
class TermMatcher:
    """Exact / prefix / suffix / phrase lookup of tokens; payloads are arbitrary objects.

    Single-token results are memoised per token, so the cost per text is a few dict lookups.
    """

    exact: dict[str, list[Any]] = field(default_factory=dict)
    prefix: dict[str, list[Any]] = field(default_factory=dict)
    suffix: dict[str, list[tuple[Any, frozenset[str], tuple[str, ...]]]] = field(default_factory=dict)
    phrases: dict[str, list[tuple[tuple[str, ...], Any]]] = field(default_factory=dict)  # by first word
    _memo: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def add(self, term: str, payload: Any, guards: Iterable[str] = ()) -> None:
        guard_exact = frozenset(g for g in guards if not g.startswith("*"))
        guard_suffix = tuple(g[1:] for g in guards if g.startswith("*"))
        for form in expand_braces(term.strip().lower()):
            words = form.split()
            if not words:
                continue
            if len(words) > 1:
                if any("*" in w for w in words):
                    raise ValueError(f"lexicon term {term!r}: wildcards are not allowed inside phrases")
                self.phrases.setdefault(words[0], []).append((tuple(words), payload))
            elif form.startswith("*"):
                self.suffix.setdefault(form[1:], []).append((payload, guard_exact, guard_suffix))
            elif form.endswith("*"):
                self.prefix.setdefault(form[:-1], []).append(payload)
            else:
                self.exact.setdefault(form, []).append(payload)
        self._memo.clear()

    def token_payloads(self, token: str) -> tuple[Any, ...]:
        hit = self._memo.get(token)
        if hit is not None:
            return hit
        found: list[Any] = list(self.exact.get(token, ()))
        n = len(token)
        if self.prefix:
            for k in range(2, n + 1):
                found.extend(self.prefix.get(token[:k], ()))
        if self.suffix:
            for k in range(_MIN_AFFIX_REST, n - 1):
                entries = self.suffix.get(token[k:])
                if not entries:
                    continue
                for payload, guard_exact, guard_suffix in entries:
                    if token in guard_exact or (guard_suffix and token.endswith(guard_suffix)):
                        continue
                    found.append(payload)
        result = tuple(dict.fromkeys(found))  # dedupe, keep order
        if len(self._memo) < 200_000:
            self._memo[token] = result
        return result

    def find(self, tokens: Sequence[str]) -> list[tuple[int, Any]]:
        """All (position, payload) matches, phrases included."""
        out: list[tuple[int, Any]] = []
        phrases, memo = self.phrases, self._memo
        for i, tok in enumerate(tokens):
            found = memo.get(tok)
            if found is None:
                found = self.token_payloads(tok)
            for payload in found:
                out.append((i, payload))
            starts = phrases.get(tok)
            if starts:
                for words, payload in starts:
                    if tuple(tokens[i : i + len(words)]) == words:
                        out.append((i, payload))
        return out


def _load_lexicon(path: str | Path | None) -> dict[str, Any]:
    data = read_package_json(LEXICON_FILE, path)
    _check_lexicon(data, str(path) if path is not None else f"news_signals/labelling/{LEXICON_FILE}")
    return data


def _check_lexicon(data: dict[str, Any], source: str) -> None:
    """Refuse a lexicon that would emit tags outside the taxonomy (fail at load, not at runtime)."""
    cats = data.get("categories", {})
    unknown = set(cats) - set(CATEGORIES)
    if unknown:
        raise ValueError(f"lexicon {source}: unknown categories {sorted(unknown)}; use {list(CATEGORIES)}")
    for cat, spec in cats.items():
        for i, entry in enumerate(spec.get("entries", [])):
            if entry.get("tag") not in TAGS[cat]:
                raise ValueError(
                    f"lexicon {source}: {cat} entry {i} has tag {entry.get('tag')!r}, not in {list(TAGS[cat])}"
                )
            if not 0 < float(entry.get("w", 0)) <= 1:
                raise ValueError(f"lexicon {source}: {cat} entry {i} weight must be in (0, 1]")


def detect_language(
    tokens: Sequence[str], text: str, sv_words: frozenset[str], en_words: frozenset[str], margin: int = 2
) -> str:
    """``sv``, ``en`` or ``""`` (unsure) from function words and å/ä/ö; ``margin`` = evidence lead needed."""
    sv = len([t for t in tokens if t in sv_words]) + (1 if _SV_CHARS.search(text) else 0)
    en = len([t for t in tokens if t in en_words])
    if sv >= en + margin:
        return "sv"
    if en >= sv + margin:
        return "en"
    return ""  # short headlines and place names (Gävle) are too weak a signal: use both lexicons


def served_language(lang_lean: str, languages: Sequence[str] | frozenset[str]) -> bool:
    """Whether a model trained for ``languages`` (empty: all) takes a text whose likelier language is
    ``lang_lean``: one of them, or undetected (short headlines, place names). The rest go to keywords."""
    return not languages or not lang_lean or lang_lean in languages


@dataclass
class KeywordAnalysis:
    """What the lexicon found in one text."""

    signals: Signals
    evidence: dict[str, dict[str, float]]  # category -> tag -> strength in [0, 1] (below threshold too)
    strength: dict[str, float]  # category -> combined strength 1 - prod(1 - w)
    polarity: dict[str, float]  # category -> sum of polarity * weight of its hits
    cues: dict[str, int]  # cue name -> count (cancel, violence, severity, casualty, up, down, ...)
    lang: str = ""  # "sv", "en" or "" (unsure): which lexicon terms applied
    lang_lean: str = ""  # the likelier language on any lead at all (the hybrid's encoder gate)

    def top_tag(self, category: str) -> str:
        tags = self.evidence.get(category)
        return max(tags, key=tags.__getitem__) if tags else ABSENT


class KeywordLabeller:
    """Bootstrap labels from the lexicon; implements ``classifiers.Classifier``."""

    name = "keywords"

    def __init__(self, lexicon_path: str | Path | None = None) -> None:
        data = _load_lexicon(lexicon_path)
        self.version: str = str(data.get("version", "0"))
        self.label = f"{self.name}@{self.version}"
        scoring = data.get("scoring", {})
        self.threshold = float(scoring.get("threshold", 0.3))
        self.neutral_magnitude = float(scoring.get("neutral_magnitude", 0.15))
        self.severity_boost = float(scoring.get("severity_boost", 0.15))
        self.casualty_boost = float(scoring.get("casualty_boost", 0.2))
        self.mass_casualty_boost = float(scoring.get("mass_casualty_boost", 0.1))
        self.mild_factor = float(scoring.get("mild_factor", 0.6))
        self.negation_window = int(scoring.get("negation_window", 2))
        self.signs: dict[str, float] = {}
        self.matchers: dict[str, TermMatcher] = {lang: TermMatcher() for lang in ("sv", "en", "")}
        for cat in CATEGORIES:
            spec = data["categories"].get(cat, {"sign": -1, "entries": []})
            self.signs[cat] = float(spec.get("sign", -1))
            for entry in spec.get("entries", []):
                hit = Hit(cat, entry["tag"], float(entry["w"]), float(entry.get("pol", spec.get("sign", -1))))
                guards = entry.get("not", [])
                for lang_key, langs in (("en", ("en", "")), ("sv", ("sv", "")), ("any", ("en", "sv", ""))):
                    for term in entry.get(lang_key, []):
                        for lang in langs:
                            self.matchers[lang].add(term, hit, guards)
        cues = data.get("cues", {})
        self.cues = TermMatcher()  # one pass finds every cue; payload = cue name
        for cue, terms in cues.items():
            if cue == "negation":
                continue
            for lang_key in ("en", "sv", "any"):
                for term in terms.get(lang_key, []):
                    self.cues.add(term, cue)
        self.masks = TermMatcher()  # phrases that hide their tokens from one category ("open fire")
        for cat, terms in data.get("masks", {}).items():
            if cat not in CATEGORIES:
                raise ValueError(f"lexicon masks: unknown category {cat!r}")
            for term in terms:
                self.masks.add(term, (cat, len(term.split())))
        lang = data.get("language_words", {})
        self._sv_words = frozenset(lang.get("sv", []))
        self._en_words = frozenset(lang.get("en", []))
        self._negations = frozenset(cues.get("negation", {}).get("en", []) + cues.get("negation", {}).get("sv", []))

    # ------------------------------------------------------------------------------------
    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        return [self.classify(t) for t in texts]

    def classify(self, text: str) -> Signals:
        return self.analyse(text).signals

    def analyse(self, text: str, all_cues: bool = False) -> KeywordAnalysis:
        """Signals plus the evidence behind them (the hybrid labeller combines this evidence).

        ``all_cues`` also counts the cues (cancel, violence, up/down...) of texts with no keyword hit,
        so a category seen only by the embeddings still gets a sign from them.
        """
        if not isinstance(text, str):
            raise ValueError(f"classify_texts needs strings, got {type(text).__name__}")
        lowered = text.lower()
        tokens = _TOKEN.findall(lowered)
        lang = detect_language(tokens, lowered, self._sv_words, self._en_words)
        negated = {i for i, t in enumerate(tokens) if t in self._negations}
        masked = {(cat, pos + k) for pos, (cat, n) in self.masks.find(tokens) for k in range(n)}
        per_cat: dict[str, dict[str, list[float]]] = {}
        polarity: dict[str, float] = {}
        for pos, hit in self.matchers[lang].find(tokens):
            if negated and any((pos - k) in negated for k in range(1, self.negation_window + 1)):
                continue  # "no fire", "ingen brand"
            if masked and (hit.category, pos) in masked:
                continue  # "opened fire" is no fire, "cold war" no cold snap
            per_cat.setdefault(hit.category, {}).setdefault(hit.tag, []).append(hit.weight)
            polarity[hit.category] = polarity.get(hit.category, 0.0) + hit.polarity * hit.weight
        lean = lang or detect_language(tokens, lowered, self._sv_words, self._en_words, margin=1)
        analysis = KeywordAnalysis({c: {"score": 0.0, "tag": ABSENT} for c in CATEGORIES}, {}, {}, polarity, {}, lang, lean)
        if not per_cat and not all_cues:
            return analysis
        analysis.cues.update(self._cue_counts(tokens))
        for cat, tags in per_cat.items():
            analysis.evidence[cat] = {t: 1.0 - math.prod(1.0 - w for w in ws) for t, ws in tags.items()}
            strength = 1.0 - math.prod(1.0 - w for ws in tags.values() for w in ws)
            analysis.strength[cat] = strength
            if strength >= self.threshold:
                analysis.signals[cat] = {"score": self.signed_score(cat, strength, analysis), "tag": analysis.top_tag(cat)}
        return analysis

    def signed_score(self, category: str, strength: float, analysis: KeywordAnalysis) -> float:
        """Signed score of a present category from its evidence strength and the text's cues."""
        return self.score_from(category, strength, analysis.polarity.get(category, 0.0), analysis.cues)

    def score_from(self, category: str, strength: float, polarity: float, cues: dict[str, int]) -> float:
        """Signed score from evidence strength, polarity (sum of pol * w) and cue counts."""
        sign = self._sign(category, polarity, cues)
        score = round(max(-1.0, min(1.0, sign * self._magnitude(category, strength, sign, polarity, cues))), 4)
        return float(score) if score != 0.0 else sign * 0.05

    # ------------------------------------------------------------------------------------
    def _cue_counts(self, tokens: Sequence[str]) -> dict[str, int]:
        positions: dict[str, set[int]] = {}
        for pos, cue in self.cues.find(tokens):
            positions.setdefault(cue, set()).add(pos)
        counts = {cue: len(p) for cue, p in positions.items()}
        big = any(t.isdigit() and 10 <= int(t) < 1900 for t in tokens)
        counts["mass"] = int(big or counts.get("many", 0) > 0)
        return counts

    def _sign(self, cat: str, polarity: float, cue: dict[str, int]) -> float:
        if cat in ("festivals", "sports") and (cue.get("cancel") or cue.get("violence")):
            return -1.0  # a cancelled festival or a riot at a match is bad news
        if cat == "economics":
            direction = cue.get("up", 0) - cue.get("down", 0)
            if cue.get("inverted"):
                direction = -direction  # "inflation rises", "arbetslösheten ökar" are bad news
            tone = cue.get("positive_tone", 0) - cue.get("negative_tone", 0)
            total = polarity + 0.3 * direction + 0.3 * tone
            return 1.0 if total > 0 else -1.0 if total < 0 else self.signs[cat]
        if cat == "politics":
            total = polarity + 0.3 * (cue.get("positive_tone", 0) - cue.get("negative_tone", 0))
            return 1.0 if total > 0 else -1.0 if total < 0 else self.signs[cat]
        if polarity > 0:
            return 1.0
        if polarity < 0:
            return -1.0
        return self.signs[cat]

    @staticmethod
    def _toned(cat: str, cue: dict[str, int]) -> bool:
        tone = cue.get("positive_tone", 0) + cue.get("negative_tone", 0)
        return bool(tone or (cat == "economics" and (cue.get("up", 0) or cue.get("down", 0))))

    def _magnitude(self, cat: str, strength: float, sign: float, polarity: float, cue: dict[str, int]) -> float:
        if cat in ("economics", "politics") and polarity == 0 and not self._toned(cat, cue):
            return self.neutral_magnitude  # "Riksdagen röstar om budgeten": present, but hardly good or bad
        mag = 0.5 * strength + 0.1
        if sign < 0:
            mag += self.severity_boost * min(cue.get("severity", 0), 2)
            if cue.get("casualty") and cat in ("emergencies", "crime", "transportation", "weather_wet", "weather_temp"):
                mag += self.casualty_boost + (self.mass_casualty_boost if cue.get("mass") else 0.0)
        else:
            mag += 0.1 * min(cue.get("severity", 0) + cue.get("positive_intensity", 0), 2)
        if cue.get("mild"):
            mag *= self.mild_factor
        return min(1.0, mag)
