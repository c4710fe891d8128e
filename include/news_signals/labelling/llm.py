"""LLM labeller behind an OpenAI-compatible chat-completions endpoint (vLLM, Ollama, TGI, hosted APIs).

One article per ``POST {base}/chat/completions``: the versioned prompt (``llm_prompt_v1.txt``) as
the system message, the article text verbatim in the last user message, ``response_format`` with
a JSON schema of the nine categories. Servers that ignore the schema are parsed defensively (code
fences stripped, first JSON object taken). An answer with an unknown category or tag, or a score
outside [-1, 1], is rejected and asked again with the reason; after ``answer_tries`` the row is a
recorded failure and the keyword labeller decides for it (its ``labeller`` name says so).
A category the answer leaves out counts as absent.

Production behaviour: a bounded worker pool, one requests-per-second limiter shared by the
workers (a 429's ``Retry-After`` pauses all of them), retries with exponential backoff and jitter
on 429, 5xx, timeouts and connection errors, a per-request timeout, and a disk cache under
``$NEWS_SIGNALS_HOME/cache/llm/`` keyed by (model, prompt version and hash, text hash): a re-run
makes no requests. Invalid-answer failures are cached too (the same model, prompt and text give
the same answer); transport failures are not, so a re-run asks again. When rows fail on transport
``breaker_rows`` times in a row, the endpoint counts as down and :class:`LLMUnavailable` is raised.

The API key is sent in the ``Authorization`` header only; it is kept out of reprs, logs,
exception text and the summary.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from importlib import resources
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from news_signals.core.taxonomy import ABSENT, CATEGORIES, TAGS, Signals, check_signals

log = logging.getLogger(__name__)

PROMPT_VERSION = "v1"
PROMPT_FILE = f"llm_prompt_{PROMPT_VERSION}.txt"
CONNECTION_ID = "news_signals_llm"
_VOCAB_LINE = re.compile(r"^- (\w+): (.+)$")
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n?|\n?\s*```\s*$")


class LLMUnavailable(RuntimeError):
    """The endpoint is down, refuses the key, or does not serve the model: labelling cannot go on."""


class LLMNotConfigured(ValueError):
    """Neither the ``news_signals_llm`` connection nor ``NEWS_SIGNALS_LLM_URL`` / ``_MODEL`` is set."""


class InvalidAnswer(ValueError):
    """The model's answer breaks the JSON contract or the taxonomy (the reason is asked back)."""


class _TransportFailure(Exception):
    """Retries exhausted on 429 / 5xx / timeout / connection error (transient: not cached)."""


class _RequestRejected(Exception):
    """A 4xx other than 401/403/404/429 for this one article: not retried, not cached."""


# ---- prompt and answers ------------------------------------------------------------------------------
def load_prompt(text: str | None = None) -> str:
    """The versioned prompt; refuse it when its vocabulary list drifted from ``core.taxonomy``."""
    if text is None:
        text = resources.files("news_signals.labelling").joinpath(PROMPT_FILE).read_text("utf-8")
    listed = {}
    for line in text.splitlines():
        m = _VOCAB_LINE.match(line.strip())
        if m and m.group(1) in CATEGORIES:
            listed[m.group(1)] = tuple(t.strip() for t in m.group(2).split(","))
    expected = {c: TAGS[c] for c in CATEGORIES}
    if listed != expected:
        drift = sorted(c for c in CATEGORIES if listed.get(c) != expected[c])
        raise ValueError(
            f"{PROMPT_FILE}: the vocabulary of {drift} differs from news_signals.core.taxonomy; "
            "write a new prompt version (llm_prompt_v2.txt) listing the taxonomy's tags"
        )
    return text


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:12]


def answer_schema() -> dict[str, Any]:
    """``response_format`` for the answer: every category with a tag from its vocabulary and a score."""
    category = {
        c: {
            "type": "object",
            "additionalProperties": False,
            "required": ["tag", "score"],
            "properties": {
                "tag": {"type": "string", "enum": [ABSENT, *TAGS[c]]},
                "score": {"type": "number", "minimum": -1, "maximum": 1},
            },
        }
        for c in CATEGORIES
    }
    schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["signals"],
        "properties": {
            "signals": {
                "type": "object",
                "additionalProperties": False,
                "required": list(CATEGORIES),
                "properties": category,
            }
        },
    }
    return {"type": "json_schema", "json_schema": {"name": "news_signals", "strict": True, "schema": schema}}


def user_message(text: str, rejected: str | None = None) -> str:
    """The last user message: the article verbatim (after the reason a previous answer was rejected)."""
    head = ""
    if rejected:
        head = f"Your previous answer was rejected: {rejected}. Answer again, following the rules exactly.\n\n"
    return f"{head}Article:\n{text}"


def extract_json(content: str) -> Any:
    """The answer's JSON: the whole content, else inside code fences, else the first JSON object in it."""
    content = content.strip()
    for candidate in (content, _FENCE.sub("", content).strip()):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for m in re.finditer(r"\{", content):
        try:
            obj, _ = decoder.raw_decode(content, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            return obj
    raise InvalidAnswer(f"the answer holds no JSON object (starts {content[:60]!r})")


def parse_answer(content: str) -> Signals:
    """Validated signals for all nine categories from the answer's content (absent when left out)."""
    obj = extract_json(content)
    if not isinstance(obj, dict):
        raise InvalidAnswer(f"the answer is a JSON {type(obj).__name__}, expected an object with \"signals\"")
    raw = obj.get("signals")
    if raw is None and obj and set(obj) <= set(CATEGORIES):  # the categories without the wrapper
        raw = obj
    if not isinstance(raw, dict):
        raise InvalidAnswer('the answer lacks a "signals" object')
    unknown = sorted(set(raw) - set(CATEGORIES))
    if unknown:
        raise InvalidAnswer(f"unknown categories {unknown}; the categories are {list(CATEGORIES)}")
    out: Signals = {c: {"score": 0.0, "tag": ABSENT} for c in CATEGORIES}
    for cat, sig in raw.items():
        if not isinstance(sig, dict):
            raise InvalidAnswer(f'{cat}: expected {{"tag": str, "score": number}}, got {sig!r}')
        tag, score = sig.get("tag"), sig.get("score", 0)
        tag = ABSENT if tag is None else tag
        if not isinstance(tag, str):
            raise InvalidAnswer(f"{cat}: tag {tag!r} is not a string")
        tag = tag.strip().lower()
        if tag != ABSENT and tag not in TAGS[cat]:
            raise InvalidAnswer(f"{cat}: tag {tag!r} is not one of {list(TAGS[cat])} (or \"\" when absent)")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise InvalidAnswer(f"{cat}: score {score!r} is not a number")
        if not -1.0 <= score <= 1.0:
            raise InvalidAnswer(f"{cat}: score {score} is outside [-1, 1]")
        out[cat] = {"score": float(score) if tag else 0.0, "tag": tag}  # absent means score 0
    return out


# ---- configuration -----------------------------------------------------------------------------------
def display_url(url: str) -> str:
    """``url`` without user info, for logs and manifests."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


@dataclass(frozen=True)
class LLMConfig:
    """Where the endpoint is and how hard to push it; the key never shows in ``repr``."""

    base_url: str  # e.g. http://127.0.0.1:8000/v1 (requests go to {base_url}/chat/completions)
    model: str
    api_key: str | None = field(default=None, repr=False)
    rps: float = 4.0  # requests per second, shared by all workers (0 = unlimited)
    workers: int = 4
    timeout_s: float = 60.0  # per request
    retries: int = 4  # transport retries per request (429, 5xx, timeout, connection error)
    answer_tries: int = 3  # asks per article when the answer is invalid
    price_prompt_per_1k: float = 0.0  # currency units per 1,000 prompt tokens
    price_completion_per_1k: float = 0.0
    cache_dir: str | None = None  # default $NEWS_SIGNALS_HOME/cache/llm
    backoff_s: float = 0.5  # first backoff; doubles per retry, with jitter
    max_backoff_s: float = 60.0  # also caps a Retry-After
    breaker_rows: int = 0  # rows failing on transport in a row that mean "endpoint down" (0: max(3, workers))

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise LLMNotConfigured(f"LLM base URL {display_url(self.base_url)!r} must start with http:// or https://")
        if not self.model:
            raise LLMNotConfigured("no LLM model is configured: set NEWS_SIGNALS_LLM_MODEL or the connection's schema")
        if self.workers < 1 or self.answer_tries < 1 or self.retries < 0 or self.timeout_s <= 0 or self.rps < 0:
            raise LLMNotConfigured(
                "LLM settings need workers >= 1, answer_tries >= 1, retries >= 0, timeout > 0, rps >= 0"
            )

    @property
    def chat_url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    @classmethod
    def from_environment(cls, settings: Any = None, **overrides: Any) -> LLMConfig:
        """The ``news_signals_llm`` connection (host = base URL, schema or extra ``model``, password = key),
        else ``NEWS_SIGNALS_LLM_URL`` / ``_MODEL`` / ``_API_KEY``; tuning knobs from Settings."""
        from news_signals.core.config import Settings
        from news_signals.core.connections import get_connection

        s = settings or Settings.from_env()
        base, model, key = s.llm_url, s.llm_model, s.llm_api_key
        conn = get_connection(CONNECTION_ID)
        if conn is not None and conn.host:
            base = _connection_base_url(conn.host, conn.port, conn.extra)
            model = str(conn.extra.get("model") or conn.schema or model or "")
            key = conn.password or key
        if not base:
            raise LLMNotConfigured(
                f"no LLM endpoint configured: add the Airflow connection {CONNECTION_ID!r} (host = base URL, "
                "schema = model, password = API key) or set NEWS_SIGNALS_LLM_URL (e.g. http://127.0.0.1:8000/v1), "
                "NEWS_SIGNALS_LLM_MODEL and NEWS_SIGNALS_LLM_API_KEY"
            )
        values: dict[str, Any] = {
            "base_url": base,
            "model": model or "",
            "api_key": key or None,
            "rps": s.llm_rps,
            "workers": s.llm_workers,
            "timeout_s": s.llm_timeout_s,
            "retries": s.llm_retries,
            "price_prompt_per_1k": s.llm_price_prompt_per_1k,
            "price_completion_per_1k": s.llm_price_completion_per_1k,
            "cache_dir": s.llm_cache_dir or None,
        }
        values.update(overrides)
        return cls(**values)


def _connection_base_url(host: str, port: int | None, extra: Mapping[str, Any]) -> str:
    if "://" in host:
        return host.rstrip("/")
    scheme = str(extra.get("scheme") or "http")
    path = str(extra.get("path") or "/v1")
    netloc = f"{host}:{port}" if port else host
    return f"{scheme}://{netloc}/{path.strip('/')}"


# ---- rate limit and cache ----------------------------------------------------------------------------
class RateLimiter:
    """At most ``rps`` request starts per second across threads; ``pause`` holds every thread."""

    def __init__(self, rps: float) -> None:
        self.interval = 1.0 / rps if rps > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def pause(self, seconds: float) -> None:
        """No thread starts a request for ``seconds`` (a 429's Retry-After applies to the whole pool)."""
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)


class AnswerCache:
    """One JSON file per (model, prompt, text) under ``cache_dir``, written atomically through Storage."""

    def __init__(self, root: str | None, model: str, prompt_id: str) -> None:
        from news_signals.core.storage import Storage

        self.storage = Storage(root) if root else Storage()
        base = () if root else ("cache", "llm")
        self.dir = self.storage.path(*base, re.sub(r"[^A-Za-z0-9._-]+", "_", model), prompt_id)

    def _path(self, text: str) -> str:
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return f"{self.dir}/{digest[:2]}/{digest}.json"

    def get(self, text: str) -> dict[str, Any] | None:
        path = self._path(text)
        try:
            if not self.storage.fs.exists(path):
                return None
            return self.storage.read_json(path)
        except (OSError, ValueError) as exc:  # a torn or foreign file is a miss, not a crash
            log.warning("ignoring unreadable LLM cache entry %s: %s", path, exc)
            return None

    def put(self, text: str, entry: dict[str, Any]) -> None:
        self.storage.write_json(self._path(text), entry)


class _LogWriter:
    """A file-like object for tqdm that sends each progress line to the log (the task log in Airflow)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger

    def write(self, s: str) -> None:
        s = s.strip("\r\n ")
        if s:
            self.logger.info("%s", s)

    def flush(self) -> None:
        pass


# ---- the labeller ------------------------------------------------------------------------------------
@dataclass
class RowResult:
    signals: Signals | None  # None: the row failed and keywords decide
    error: str | None = None
    cached: bool = False


@dataclass
class _Counters:
    rows: int = 0  # texts seen (cache hits included)
    asked: int = 0  # texts sent to the endpoint
    requests: int = 0
    retries: int = 0
    cache_hits: int = 0
    answered: int = 0
    invalid_answers: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    failure_kinds: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)


class LLMLabeller:
    """``classifiers.Classifier`` backed by an LLM; per-row names say when keywords stood in."""

    def __init__(self, config: LLMConfig, prompt: str | None = None, retry_failed: bool = False) -> None:
        from news_signals.labelling.keywords import KeywordLabeller

        self.config = config
        self.prompt = load_prompt(prompt)
        self.prompt_id = f"{PROMPT_VERSION}-{prompt_hash(self.prompt)}"
        self.version = f"prompt-{PROMPT_VERSION}"
        self.name = f"llm:{config.model}@{self.version}"
        self.cache = AnswerCache(config.cache_dir, config.model, self.prompt_id)
        self.keywords = KeywordLabeller()
        self.retry_failed = retry_failed  # ask again for texts whose cached entry is a failure
        self._limiter = RateLimiter(config.rps)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._counters = _Counters()
        self._consecutive_down = 0
        self._down_reason: str | None = None
        self._abort = threading.Event()
        self._schema = answer_schema()

    def __repr__(self) -> str:
        return f"LLMLabeller({self.name!r}, base_url={display_url(self.config.base_url)!r})"

    # -- Classifier protocol
    def classify_texts(self, texts: Sequence[str]) -> list[Signals]:
        return self.classify_named(texts)[0]

    def classify_named(self, texts: Sequence[str]) -> tuple[list[Signals], list[str]]:
        """Signals and per-row labeller names: ``llm:…`` or ``keywords (llm failed: <reason>)``."""
        rows = self.label_with_fallback(texts)
        names = [name if err is None else f"{name} (llm failed: {err})" for _, name, err in rows]
        return [sig for sig, _, _ in rows], names

    def label_with_fallback(self, texts: Sequence[str]) -> list[tuple[Signals, str, str | None]]:
        """Per text: (signals, who labelled it, why the LLM failed or None); keywords decide failed rows."""
        results = self.label_rows(texts)
        fallback_idx = [i for i, r in enumerate(results) if r.signals is None]
        kw = self.keywords.classify_texts([texts[i] for i in fallback_idx]) if fallback_idx else []
        kw_of = dict(zip(fallback_idx, kw, strict=True))
        return [
            (kw_of[i], self.keywords.name, r.error) if r.signals is None else (r.signals, self.name, None)
            for i, r in enumerate(results)
        ]

    def label_rows(self, texts: Sequence[str]) -> list[RowResult]:
        """One result per text (cache first, then the pool); raise LLMUnavailable when the endpoint is down."""
        from tqdm import tqdm

        start = time.perf_counter()
        self._abort.clear()
        self._consecutive_down, self._down_reason = 0, None
        results: list[RowResult | None] = [None] * len(texts)
        todo = []
        for i, text in enumerate(texts):
            hit = self._cached(text)
            if hit is not None:
                results[i] = hit
                with self._lock:
                    self._counters.cache_hits += 1
                    if hit.error:
                        self._counters.failures += 1
                        self._counters.failure_kinds["invalid_answer"] += 1
            else:
                todo.append(i)
        with self._lock:
            self._counters.rows += len(texts)
            self._counters.asked += len(todo)
        log.info(
            "LLM labeller %s at %s: %d texts, %d from the cache, %d to ask (%d workers, %s rps)",
            self.name, display_url(self.config.base_url), len(texts), len(texts) - len(todo), len(todo),
            self.config.workers, self.config.rps or "unlimited",
        )
        fatal: list[BaseException] = []
        if todo:
            bar = tqdm(total=len(todo), desc="llm labels", file=_LogWriter(log), mininterval=5, ascii=True)
            with ThreadPoolExecutor(max_workers=self.config.workers, thread_name_prefix="llm") as pool:
                futures = {pool.submit(self._label_one, texts[i]): i for i in todo}
                for fut, i in futures.items():
                    try:
                        results[i] = fut.result()
                    except LLMUnavailable as exc:
                        fatal.append(exc)
                        self._abort.set()
                    bar.update(1)
            bar.close()
        with self._lock:
            self._counters.seconds += time.perf_counter() - start
        if fatal:
            raise fatal[0]
        if self._abort.is_set():
            raise LLMUnavailable(
                f"LLM endpoint {display_url(self.config.base_url)} looks down: {self._breaker()} rows in a row "
                f"failed after {self.config.retries} retries ({self._down_reason}); nothing labelled was lost "
                "(answers so far are cached), re-run when it is back"
            )
        return [r if r is not None else RowResult(None, "not attempted") for r in results]

    def _cached(self, text: str) -> RowResult | None:
        """The cached answer (or cached invalid-answer failure) for ``text``; a damaged entry is a miss."""
        entry = self.cache.get(text)
        if not entry:
            return None
        if "signals" in entry:
            try:
                check_signals(entry["signals"])
            except (ValueError, AttributeError, TypeError) as exc:
                log.warning("ignoring a damaged LLM cache entry (%s)", exc)
                return None
            return RowResult({c: dict(entry["signals"][c]) for c in CATEGORIES}, cached=True)
        if "error" in entry and not self.retry_failed:
            return RowResult(None, str(entry["error"]), cached=True)
        return None

    def _breaker(self) -> int:
        return self.config.breaker_rows or max(3, self.config.workers)

    def _label_one(self, text: str) -> RowResult:
        if self._abort.is_set():
            return RowResult(None, "skipped: endpoint down")
        rejected: str | None = None
        try:
            for _ in range(self.config.answer_tries):
                try:
                    signals = parse_answer(self._ask(text, rejected))
                except InvalidAnswer as exc:
                    rejected = str(exc)
                    with self._lock:
                        self._counters.invalid_answers += 1
                    log.debug("rejected LLM answer: %s", rejected)
                    continue
                self.cache.put(text, {"signals": signals})
                self._record(ok=True)
                return RowResult(signals)
        except _TransportFailure as exc:
            self._record(ok=False, kind="transport", reason=str(exc))
            return RowResult(None, str(exc))
        except _RequestRejected as exc:
            self._record(ok=None, kind="rejected")
            return RowResult(None, str(exc))
        except LLMUnavailable:
            self._abort.set()  # the other workers stop before their next request
            raise
        error = f"invalid answer after {self.config.answer_tries} tries: {rejected}"
        self.cache.put(text, {"error": error})
        self._record(ok=None, kind="invalid_answer")
        return RowResult(None, error)

    def _record(self, ok: bool | None, kind: str = "", reason: str = "") -> None:
        """Count a finished row; ok=False (transport) feeds the endpoint-down breaker, anything else resets it."""
        with self._lock:
            if ok:
                self._counters.answered += 1
            else:
                self._counters.failures += 1
                self._counters.failure_kinds[kind] += 1
            if ok is False:
                self._consecutive_down += 1
                self._down_reason = reason
                if self._consecutive_down >= self._breaker():
                    self._abort.set()
            else:
                self._consecutive_down = 0

    def _session(self) -> Any:
        import requests

        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no proxy / netrc credentials picked up behind our back
            self._local.session = session
        return session

    def _ask(self, text: str, rejected: str | None) -> str:
        """POST one chat completion (transport retries inside); return the answer's content."""
        import requests

        body = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.prompt},
                {"role": "user", "content": user_message(text, rejected)},
            ],
            "temperature": 0,
            "response_format": self._schema,
        }
        headers = {"Content-Type": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        reason = "no attempt"
        for attempt in range(self.config.retries + 1):
            if self._abort.is_set():
                raise _TransportFailure(f"{reason}; stopped: endpoint down")
            self._limiter.wait()
            wait = self._backoff(attempt)
            t0 = time.perf_counter()
            with self._lock:
                self._counters.requests += 1
            try:
                resp = self._session().post(self.config.chat_url, json=body, headers=headers, timeout=self.config.timeout_s)
            except requests.Timeout:
                reason = f"timeout after {self.config.timeout_s:g}s"
            except requests.ConnectionError as exc:
                reason = f"connection error ({_root_cause(exc)})"
            else:
                status = resp.status_code
                if status == 200:
                    with self._lock:
                        self._counters.latencies_ms.append((time.perf_counter() - t0) * 1000)
                    return self._content(resp)
                if status in (401, 403):
                    raise LLMUnavailable(
                        f"LLM endpoint {display_url(self.config.base_url)} refused the API key (HTTP {status}); "
                        f"check the password of the {CONNECTION_ID!r} connection or NEWS_SIGNALS_LLM_API_KEY"
                    )
                if status == 404:
                    raise LLMUnavailable(
                        f"LLM endpoint {self.config.chat_url} answered 404 for model {self.config.model!r}: "
                        "the base URL should end in /v1 and the model must be served there"
                    )
                reason = f"HTTP {status}"
                if status == 429:
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                    if retry_after is not None:
                        wait = min(retry_after, self.config.max_backoff_s)
                        self._limiter.pause(wait)
                elif status < 500:
                    raise _RequestRejected(f"HTTP {status}: {resp.text[:200]}")
            if attempt < self.config.retries:
                with self._lock:
                    self._counters.retries += 1
                log.debug("LLM request failed (%s); retry %d in %.2fs", reason, attempt + 1, wait)
                time.sleep(wait)
        raise _TransportFailure(f"{reason} after {self.config.retries + 1} attempts")

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter in [0.5, 1.5) x base x 2^attempt, capped."""
        return min(self.config.max_backoff_s, self.config.backoff_s * (2**attempt) * (0.5 + random.random()))

    def _content(self, resp: Any) -> str:
        try:
            data = resp.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise InvalidAnswer(f"the response is not a chat completion ({type(exc).__name__})") from None
        usage = data.get("usage") or {}
        with self._lock:
            self._counters.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self._counters.completion_tokens += int(usage.get("completion_tokens") or 0)
        if not isinstance(content, str):
            raise InvalidAnswer("the answer's content is not a string")
        return content

    # -- what happened (XCom, manifest, CLI)
    def summary(self) -> dict[str, Any]:
        """Requests, cache hits, failures, tokens and cost so far (JSON-able; no secrets)."""
        with self._lock:
            c = self._counters
            lat = sorted(c.latencies_ms)
            cost = (
                c.prompt_tokens / 1000 * self.config.price_prompt_per_1k
                + c.completion_tokens / 1000 * self.config.price_completion_per_1k
            )
            return {
                "labeller": self.name,
                "model": self.config.model,
                "prompt_version": PROMPT_VERSION,
                "prompt_id": self.prompt_id,
                "base_url": display_url(self.config.base_url),
                "rows": c.rows,
                "asked": c.asked,
                "requests": c.requests,
                "retries": c.retries,
                "cache_hits": c.cache_hits,
                "answered": c.answered,
                "invalid_answers": c.invalid_answers,
                "failures": c.failures,
                "failure_kinds": dict(c.failure_kinds),
                "prompt_tokens": c.prompt_tokens,
                "completion_tokens": c.completion_tokens,
                "cost": round(cost, 6),
                "cost_per_1000_articles": round(cost / c.asked * 1000, 6) if c.asked else 0.0,
                "latency_ms_p50": round(lat[len(lat) // 2], 1) if lat else None,
                "latency_ms_p95": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 1) if lat else None,
                "seconds": round(c.seconds, 2),
            }


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's class name (the text may carry a URL; the class is enough)."""
    seen = exc
    while seen.__cause__ is not None or seen.__context__ is not None:
        seen = seen.__cause__ or seen.__context__  # type: ignore[assignment]
    return type(seen).__name__


def preflight(config: LLMConfig) -> None:
    """Raise LLMUnavailable unless the endpoint answers ``GET {base}/models`` without refusing the key.

    A 404 counts as up (some servers do not list models); the chat requests will tell the rest.
    """
    import requests

    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    url = config.base_url.rstrip("/") + "/models"
    last = "no attempt"
    for attempt in range(3):
        try:
            with requests.Session() as session:
                session.trust_env = False
                resp = session.get(url, headers=headers, timeout=min(config.timeout_s, 10.0))
        except requests.RequestException as exc:
            last = f"{type(exc).__name__} ({_root_cause(exc)})"
        else:
            if resp.status_code in (401, 403):
                raise LLMUnavailable(
                    f"LLM endpoint {display_url(config.base_url)} refused the API key (HTTP {resp.status_code})"
                )
            if resp.status_code < 500 and resp.status_code != 429:
                return
            last = f"HTTP {resp.status_code}"
        time.sleep(config.backoff_s * (2**attempt))
    raise LLMUnavailable(f"LLM endpoint {display_url(config.base_url)} is not reachable: {last}")


class FallbackLabeller:
    """Stands in for the LLM labeller when its endpoint was down at the start (``llm_fallback``)."""

    def __init__(self, inner: Any, requested: str, reason: str) -> None:
        self.inner = inner
        self.requested, self.reason = requested, reason
        self.name = inner.name
        self.version = getattr(inner, "version", None)
        self.label = f"{requested} -> fallback {_name_at_version(inner)}"

    def classify_texts(self, texts: Sequence[str], keys: Sequence[str] | None = None) -> list[Signals]:
        import inspect

        if keys is not None and "keys" in inspect.signature(self.inner.classify_texts).parameters:
            return self.inner.classify_texts(texts, keys=keys)
        return self.inner.classify_texts(texts)

    def summary(self) -> dict[str, Any]:
        return {
            "labeller": _name_at_version(self.inner),
            "requested": self.requested,
            "fell_back": True,
            "reason": self.reason,
        }


def _name_at_version(labeller: Any) -> str:
    name, version = getattr(labeller, "name", type(labeller).__name__), getattr(labeller, "version", None)
    return name if version is None or "@" in name else f"{name}@{version}"


def snapshot_labeller(fallback: Callable[[], Any] | None = None, config: LLMConfig | None = None) -> Any:
    """The LLM labeller for the snapshot, checked reachable first.

    Not configured or down: LLMUnavailable/LLMNotConfigured with the reason, or, with ``fallback``,
    that labeller wrapped so the manifest records that and why it stood in.
    """
    try:
        config = config or LLMConfig.from_environment()
        preflight(config)
        return LLMLabeller(config)
    except (LLMUnavailable, LLMNotConfigured) as exc:
        if fallback is None:
            raise
        requested = f"llm:{config.model}@prompt-{PROMPT_VERSION}" if config else "llm"
        log.warning("LLM labeller unavailable (%s); falling back as llm_fallback asks", exc)
        return FallbackLabeller(fallback(), requested, str(exc))
