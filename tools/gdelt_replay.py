"""A local stand-in for the part of the GDELT DOC 2.0 API the fetcher uses, serving real texts.

Answers ``GET /api/v2/doc/doc?query=...&mode=artlist&format=json&startdatetime=...&enddatetime=...
&maxrecords=N`` like GDELT: ``{"articles": [{url, url_mobile, title, seendate, socialimage, domain,
language, sourcecountry}, ...]}`` newest first and capped at ``maxrecords`` (<= 250), ``{}`` when
nothing matches. In queries countries are FIPS codes (``sourcecountry:SW``) or squashed names
(``sourcecountry:sweden``) and languages names or ISO codes (``sourcelang:swedish``, ``swe``); in
results they are names (``"Sweden"``, ``"Swedish"``), as GDELT does. Free text: bare words are
ANDed, ``"quoted phrases"`` match word sequences, ``(a OR b)`` groups, ``-word`` excludes; all
case-insensitive. ``startdatetime`` and ``enddatetime`` are both inclusive.

The articles are the real texts of ``news_signals.corpus`` (never text written here), published
deterministically over ``[start_date, start_date + days)``; a few are syndicated (same title on a
second domain 15 minutes later), as GDELT sees every day. ``inject(fault, count)`` makes the next
requests fail with "429", "500", "slow", "html" or "truncated" for the fetcher's fault tests.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from news_signals.core.text import normalise_title
from news_signals.corpus.loader import DEFAULT_DAYS, DEFAULT_START, CorpusRecord, load_corpus
from news_signals.daily.gdelt import COUNTRIES, LANGUAGES

log = logging.getLogger(__name__)

API_PATH = "/api/v2/doc/doc"
MAX_RECORDS = 250
FAULTS = ("429", "500", "slow", "html", "truncated")
SEENDATE_FORMAT = "%Y%m%dT%H%M%SZ"
QUERY_DATETIME_FORMAT = "%Y%m%d%H%M%S"

LANG_NAMES = {"sv": "Swedish", "en": "English"}
SYNDICATED_SHARE = 0.04  # share of texts that also appear on a second domain

# Where each source's texts are "published". Swedish newsreels by series; English texts mostly
# by English-language Swedish outlets, the rest abroad, so the country filter has work to do.
_NEWSREEL_DOMAINS = {
    "sf": "sfjournalen.se",
    "kino": "kinojournalen.se",
    "nuet": "nuet.se",
    "sj": "sjjournalen.se",
}
_SWEDISH_ENGLISH_DOMAINS = ("nordicwire.se", "stockholmherald.se", "swedentoday.se", "thelocalwire.se")
_FOREIGN = {
    "disaster_news": ("United States", ("reliefwire.org", "worldaidnews.org")),
    "reuters_titles": ("United Kingdom", ("londonwire.co.uk",)),
    "lee_news": ("Australia", ("abcnewsmail.com.au",)),
}
FOREIGN_SHARE = 0.2  # share of English texts published outside Sweden


@dataclass(frozen=True)
class RequestLog:
    """One request as the server saw it (for pacing and retry tests)."""

    at: float  # time.monotonic() on arrival
    query: dict[str, str]
    status: int
    fault: str | None


@dataclass(frozen=True)
class _Article:
    seen: datetime
    words: frozenset[str]
    norm: str  # " normalised title " (padded, for phrase matching)
    payload: dict[str, str]


def _h(*parts: str) -> int:
    return int(hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:12], 16)


def _publish(
    rec: CorpusRecord, norm: str, domain: str, country: str, seen: datetime, variant: str = ""
) -> _Article:
    key = f"{rec.uid}{variant}"
    slug = "-".join(norm.split()[:8])[:80] or "article"
    url = f"https://{domain}/{seen:%Y/%m/%d}/{slug}-{key[:10]}"
    has_image = _h(key, "img") % 4 != 0
    payload = {
        "url": url,
        "url_mobile": url.replace("https://", "https://m.", 1) if _h(key, "m") % 3 == 0 else "",
        "title": rec.text,
        "seendate": seen.strftime(SEENDATE_FORMAT),
        "socialimage": f"https://{domain}/images/{key[:12]}.jpg" if has_image else "",
        "domain": domain,
        "language": LANG_NAMES[rec.lang],
        "sourcecountry": country,
    }
    return _Article(seen, frozenset(norm.split()), f" {norm} ", payload)


def build_index(records: Sequence[CorpusRecord]) -> tuple[_Article, ...]:
    """Corpus records -> GDELT artlist rows (deterministic), oldest first."""
    out = []
    for rec in records:
        norm = normalise_title(rec.text)
        if rec.lang == "sv":
            series = rec.origin.split("/")[2] if rec.origin.count("/") >= 2 else "sf"
            country, domain = "Sweden", _NEWSREEL_DOMAINS.get(series, "sfjournalen.se")
        elif _h(rec.uid, "country") % 100 < FOREIGN_SHARE * 100 and rec.source in _FOREIGN:
            country, pool = _FOREIGN[rec.source]
            domain = pool[_h(rec.uid, "domain") % len(pool)]
        else:
            country = "Sweden"
            domain = _SWEDISH_ENGLISH_DOMAINS[_h(rec.uid, "domain") % len(_SWEDISH_ENGLISH_DOMAINS)]
        out.append(_publish(rec, norm, domain, country, rec.seendate))
        if _h(rec.uid, "syndicated") % 1000 < SYNDICATED_SHARE * 1000:
            day_end = datetime.combine(rec.date, datetime.max.time(), UTC).replace(second=0, microsecond=0)
            later = min(rec.seendate + timedelta(minutes=15), day_end)
            pool = _SWEDISH_ENGLISH_DOMAINS if rec.lang == "en" else tuple(_NEWSREEL_DOMAINS.values())
            second = pool[(_h(rec.uid, "domain") + 1) % len(pool)]
            if second == domain:
                second = pool[(_h(rec.uid, "domain") + 2) % len(pool)]
            out.append(_publish(rec, norm, second, country, later, variant="-syn"))
    out.sort(key=lambda a: (a.seen, a.payload["url"]))
    return tuple(out)


@lru_cache(maxsize=4)
def _default_index(start_date: date, days: int) -> tuple[_Article, ...]:
    # Every server of one process shares the built index (tests start one per test).
    return build_index(load_corpus(start_date=start_date, days=days))


# ---- query language -------------------------------------------------------------------------
class QueryError(ValueError):
    """A query the replay server (and GDELT) would reject."""


_TOKEN = re.compile(r'\(|\)|-?"[^"]*"|[^\s()]+')
Predicate = Callable[[_Article], bool]


def _country(value: str) -> str | None:
    value = value.strip().strip('"')
    if value.upper() in COUNTRIES:
        return COUNTRIES[value.upper()]
    squashed = {name.replace(" ", "").lower(): name for name in COUNTRIES.values()}
    return squashed.get(value.lower())


def _atom(token: str) -> Predicate:
    negate = token.startswith("-") and len(token) > 1
    token = token[1:] if negate else token
    if token.startswith('"'):
        phrase = normalise_title(token.strip('"'))
        if not phrase:
            raise QueryError(f"empty phrase {token!r}")

        def pred(a: _Article) -> bool:
            return f" {phrase} " in a.norm

    elif ":" in token and not token.startswith("http"):
        key, _, value = token.partition(":")
        key = key.lower()
        if key == "sourcecountry":
            name = _country(value)

            def pred(a: _Article) -> bool:
                return a.payload["sourcecountry"] == name

        elif key == "sourcelang":
            lang = LANGUAGES.get(value.strip('"').lower())

            def pred(a: _Article) -> bool:
                return a.payload["language"] == lang

        elif key in ("domain", "domainis"):
            want = value.strip('"').lower()

            def pred(a: _Article) -> bool:
                d = a.payload["domain"]
                return d == want if key == "domainis" else want in d

        else:
            raise QueryError(f"the replay server does not support the {key!r} operator")
    else:
        word = normalise_title(token)
        if not word:
            raise QueryError(f"cannot search for {token!r}")
        parts = word.split()

        def pred(a: _Article) -> bool:
            return all(p in a.words for p in parts)

    return (lambda a: not pred(a)) if negate else pred


def parse_query(query: str) -> Predicate:
    """GDELT query text -> predicate. Juxtaposition is AND, ``OR`` alternates, ``( )`` groups."""
    tokens = _TOKEN.findall(query or "")
    pos = 0

    def sequence(depth: int) -> Predicate:
        nonlocal pos
        alternatives: list[list[Predicate]] = [[]]
        while pos < len(tokens):
            tok = tokens[pos]
            pos += 1
            if tok == "(":
                alternatives[-1].append(sequence(depth + 1))
            elif tok == ")":
                if depth == 0:
                    raise QueryError(f"unbalanced ')' in query {query!r}")
                break
            elif tok == "OR":
                alternatives.append([])
            elif tok == "AND":
                continue
            else:
                alternatives[-1].append(_atom(tok))
        else:
            if depth > 0:
                raise QueryError(f"unbalanced '(' in query {query!r}")
        if any(not alt for alt in alternatives):
            raise QueryError(f"OR needs a term on each side in query {query!r}")
        return lambda a: any(all(p(a) for p in alt) for alt in alternatives)

    pred = sequence(0)
    if not tokens:
        raise QueryError("the query is empty: give at least one term or sourcecountry:/sourcelang: filter")
    return pred


def _parse_dt(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, QUERY_DATETIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise QueryError(f"{name}={value!r} is not YYYYMMDDHHMMSS") from None


# ---- the server -----------------------------------------------------------------------------
class ReplayServer:
    """GDELT DOC API stand-in on a background thread (``ThreadingHTTPServer``)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        corpus: Sequence[CorpusRecord] | None = None,
        *,
        start_date: date = DEFAULT_START,
        days: int = DEFAULT_DAYS,
        slow_delay_s: float = 2.0,
    ) -> None:
        self.start_date, self.days = start_date, days
        self.slow_delay_s = slow_delay_s
        self._articles = _default_index(start_date, days) if corpus is None else build_index(list(corpus))
        self._times = [a.seen for a in self._articles]
        self._faults: deque[str] = deque()
        self._log: list[RequestLog] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def url(self) -> str:
        """The DOC API endpoint: point ``NEWS_SIGNALS_GDELT_URL`` here."""
        return f"{self.base_url}{API_PATH}"

    def start(self) -> ReplayServer:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, args=(0.05,), name="gdelt-replay", daemon=True
            )
            self._thread.start()
            log.info("GDELT replay server on %s (%d articles)", self.url, len(self._articles))
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test hooks --
    def inject(self, fault: str, count: int = 1) -> None:
        """Make the next ``count`` requests fail with ``fault`` (one of FAULTS), in order."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {', '.join(FAULTS)}")
        if count < 1:
            raise ValueError(f"count must be >= 1, got {count}")
        with self._lock:
            self._faults.extend([fault] * count)

    @property
    def requests(self) -> list[RequestLog]:
        with self._lock:
            return list(self._log)

    def pending_faults(self) -> int:
        with self._lock:
            return len(self._faults)

    def articles(
        self, query: str = "", start: datetime | None = None, end: datetime | None = None
    ) -> list[dict]:
        """Every matching article (uncapped, oldest first): what a complete fetch must return."""
        pred = parse_query(query) if query.strip() else (lambda a: True)
        return [a.payload for a in self._window(start, end) if pred(a)]

    # -- answering --
    def _window(self, start: datetime | None, end: datetime | None) -> list[_Article]:
        lo = 0 if start is None else bisect.bisect_left(self._times, start)
        hi = len(self._articles) if end is None else bisect.bisect_right(self._times, end)
        return self._articles[lo:hi]

    def answer(self, params: dict[str, str]) -> tuple[int, str, bytes]:
        """(status, content type, body) for one API call without faults."""
        try:
            if params.get("mode", "artlist").lower() != "artlist":
                raise QueryError(f"mode={params.get('mode')!r} is not supported here (only artlist)")
            if params.get("format", "json").lower() != "json":
                raise QueryError(f"format={params.get('format')!r} is not supported here (only json)")
            try:
                maxrecords = int(params.get("maxrecords", "75"))
            except ValueError:
                raise QueryError(f"maxrecords={params.get('maxrecords')!r} is not a number") from None
            maxrecords = max(1, min(maxrecords, MAX_RECORDS))
            pred = parse_query(params.get("query", ""))
            start = _parse_dt("startdatetime", params.get("startdatetime"))
            end = _parse_dt("enddatetime", params.get("enddatetime"))
        except QueryError as exc:
            return HTTPStatus.BAD_REQUEST, "text/plain; charset=utf-8", str(exc).encode()
        hits = [a for a in self._window(start, end) if pred(a)]
        hits.sort(key=lambda a: (a.seen, a.payload["url"]), reverse=True)  # newest first
        if not hits:
            return HTTPStatus.OK, "application/json; charset=utf-8", b"{}"
        body = json.dumps({"articles": [a.payload for a in hits[:maxrecords]]}, ensure_ascii=False)
        return HTTPStatus.OK, "application/json; charset=utf-8", body.encode()

    def _fault_response(self, fault: str, params: dict[str, str]) -> tuple[int, str, bytes]:
        if fault == "429":
            msg = (
                b"Please limit requests to one every 5 seconds or contact the GDELT team for larger queries."
            )
            return HTTPStatus.TOO_MANY_REQUESTS, "text/plain; charset=utf-8", msg
        if fault == "500":
            return HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", b"Internal Server Error"
        if fault == "html":
            page = b"<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>"
            return HTTPStatus.OK, "text/html; charset=utf-8", page
        status, ctype, body = self.answer(params)
        if fault == "truncated":
            if body == b"{}":
                body = b'{"articles": [{"url": "https://example.invalid/x", "title": "'
            return status, ctype, body[: max(1, len(body) // 2)]
        return status, ctype, body  # "slow": a correct answer, sent too late (see _handle)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        arrived = time.monotonic()
        parts = urlsplit(handler.path)
        if parts.path == "/health":
            self._send(handler, HTTPStatus.OK, "text/plain", b"ok")
            return
        if parts.path.rstrip("/") != API_PATH:
            self._send(handler, HTTPStatus.NOT_FOUND, "text/plain", f"no such path {parts.path}".encode())
            return
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        status, ctype, body = self._fault_response(fault, params) if fault else self.answer(params)
        with self._lock:
            self._log.append(RequestLog(arrived, params, int(status), fault))
        if fault == "slow":
            time.sleep(self.slow_delay_s)
        self._send(handler, status, ctype, body)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, ctype: str, body: bytes) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "GDELTReplay/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                server._handle(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("replay %s - %s", self.address_string(), format % args)

        return Handler


# --- command line: ``python -m tools.gdelt_replay --port 8765 [--start-date D --days N]`` ---




def _day(value: str) -> date:
    from news_signals.core.dates import day_argument

    return date.fromisoformat(day_argument(value))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8765, help="port (0 picks a free one)")
    parser.add_argument(
        "--start-date", type=_day, default=DEFAULT_START, help="first replay day (YYYY-MM-DD)"
    )
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="number of replay days")


def serve(args: argparse.Namespace) -> int:
    import signal
    import threading

    if args.days < 1:
        raise ValueError(f"--days must be >= 1, got {args.days}")
    server = ReplayServer(args.host, args.port, start_date=args.start_date, days=args.days)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    last = date.fromordinal(args.start_date.toordinal() + args.days - 1)
    print(f"GDELT replay server: {server.url}  ({args.start_date} .. {last})", flush=True)
    print(f"export NEWS_SIGNALS_GDELT_URL={server.url}", flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.gdelt_replay", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args)


if __name__ == "__main__":
    raise SystemExit(main())
