"""All of one day's GDELT articles, politely, on the real ``gdeltdoc`` client.

GDELT's DOC API returns at most 250 rows a query, so the day is cut into windows and any window
that comes back full is split in two until it is not (or cannot be split further; then, with
several languages, each language is asked separately). Requests are paced
(``settings.gdelt_min_interval_s``, GDELT asks for one every 5 s), have a timeout (gdeltdoc sets
none) and are retried with exponential backoff on 429, 5xx, timeouts, HTML answers and malformed
JSON. ``gdeltdoc`` builds the query (``Filters``) and parses the answer (``GdeltDoc``); only its
hard-coded endpoint and missing timeout are replaced, so the same code reaches
api.gdeltproject.org or the local replay server (``NEWS_SIGNALS_GDELT_URL`` or the Airflow
connection ``gdelt_api``).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from news_signals.core.config import GDELT_DEFAULT_URL, Settings
from news_signals.core.connections import get_connection
from news_signals.core.dates import parse_day
from news_signals.core.text import article_id, normalise_title

if TYPE_CHECKING:
    import pandas as pd


# FIPS 10-4 code -> the country name GDELT puts in results (the same tables serve the batch validation).
COUNTRIES = {"SW": "Sweden", "UK": "United Kingdom", "AS": "Australia", "US": "United States"}
# Query spellings -> the language name GDELT puts in results.
LANGUAGES = {
    "swedish": "Swedish", "swe": "Swedish", "sv": "Swedish",
    "english": "English", "eng": "English", "en": "English",
}  # fmt: skip
log = logging.getLogger(__name__)

GDELT_CONN_ID = "gdelt_api"
MAX_RECORDS = 250  # GDELT's cap per query
COLUMNS = ["article_id", "url", "title", "seendate", "domain", "language", "sourcecountry"]
OPTIONAL_COLUMNS = ["socialimage"]
SEENDATE_FORMAT = "%Y%m%dT%H%M%SZ"


class GdeltFetchError(RuntimeError):
    """GDELT could not be read: names the window, the attempts and the last status."""


class _Retryable(Exception):
    """An answer worth asking again for (429, 5xx, timeout, HTML, malformed JSON)."""

    def __init__(self, status: str, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


def resolve_endpoint(settings: Settings) -> str:
    """The DOC API URL: an explicit setting (``NEWS_SIGNALS_GDELT_URL``), else the ``gdelt_api``
    connection (host as a full URL, or host/port/schema with ``extra.path``), else GDELT itself."""
    if settings.gdelt_url and settings.gdelt_url != GDELT_DEFAULT_URL:
        return settings.gdelt_url
    conn = get_connection(GDELT_CONN_ID)
    if conn is None or not (conn.host or conn.extra.get("url")):
        return settings.gdelt_url or GDELT_DEFAULT_URL
    if conn.extra.get("url"):
        return str(conn.extra["url"])
    if "://" in conn.host:
        return conn.host
    # In a connection URI (http://host:port/path) Airflow puts the path into ``schema``.
    scheme = conn.schema if conn.schema in ("http", "https") else conn.extra.get("scheme", "https")
    port = f":{conn.port}" if conn.port else ""
    default_path = (
        f"/{conn.schema.lstrip('/')}" if conn.schema and conn.schema not in ("http", "https") else ""
    )
    path = conn.extra.get("path", default_path or "/api/v2/doc/doc")
    return f"{scheme}://{conn.host}{port}{path}"


@dataclass
class FetchStats:
    """Counters a DAG task can log or push to XCom (small JSON)."""

    requests: int = 0
    retries: int = 0
    windows: int = 0
    full_windows: int = 0
    truncated_windows: int = 0
    raw_rows: int = 0
    out_of_day: int = 0
    missing_fields: int = 0
    duplicate_urls: int = 0
    duplicate_titles: int = 0
    articles: int = 0
    faults: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: (dict(v) if isinstance(v, dict) else v) for k, v in self.__dict__.items()}


def _gdeltdoc_client_class() -> type:
    """A ``gdeltdoc.GdeltDoc`` whose request goes to our endpoint, with a timeout and a session."""
    import requests
    from gdeltdoc import GdeltDoc
    from gdeltdoc.errors import ClientRequestError, RateLimitError, ServerError, raise_response_error
    from gdeltdoc.helpers import load_json

    class EndpointGdeltDoc(GdeltDoc):
        def __init__(self, endpoint: str, timeout_s: float, session: requests.Session) -> None:
            super().__init__(json_parsing_max_depth=20)
            self.endpoint, self.timeout_s, self.session = endpoint, timeout_s, session

        def _query(self, mode: str, query_string: str) -> dict:
            # Same steps as GdeltDoc._query, against our endpoint and with a timeout.
            url = f"{self.endpoint}?query={query_string}&mode={mode}&format=json"
            try:
                response = self.session.get(url, timeout=self.timeout_s)
            except requests.Timeout:
                raise _Retryable(f"timeout after {self.timeout_s:g} s") from None
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
                raise _Retryable(f"connection error ({type(exc).__name__})") from None
            except (
                requests.exceptions.MissingSchema,
                requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL,
            ) as exc:
                raise GdeltFetchError(
                    f"the GDELT endpoint {self.endpoint!r} is not a valid URL ({exc}); "
                    "set NEWS_SIGNALS_GDELT_URL or the gdelt_api connection"
                ) from None
            try:
                raise_response_error(response=response)
            except (RateLimitError, ServerError) as exc:
                retry_after = response.headers.get("Retry-After")
                after = float(retry_after) if retry_after and retry_after.isdigit() else None
                raise _Retryable(f"HTTP {response.status_code}", after) from exc
            except ClientRequestError as exc:
                if response.status_code == 408:
                    raise _Retryable("HTTP 408") from exc
                raise
            if "text/html" in response.headers.get("content-type", ""):
                raise _Retryable("HTML answer instead of JSON")
            try:
                parsed = load_json(response.content, self.max_depth_json_parsing)
            except (ValueError, IndexError):
                raise _Retryable(f"malformed JSON ({len(response.content)} bytes)") from None
            if not isinstance(parsed, dict):
                raise _Retryable(f"unexpected JSON ({type(parsed).__name__})")
            return parsed

    return EndpointGdeltDoc


class GdeltClient:
    """Paced, retrying artlist queries. One instance per fetch keeps the pacing honest."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout_s: float = 30.0,
        min_interval_s: float = 5.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        max_backoff_s: float = 120.0,
        user_agent: str = "news-signals GDELT fetcher (gdeltdoc client)",
    ) -> None:
        import requests

        parts = urlsplit(endpoint or "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GdeltFetchError(
                f"the GDELT endpoint {endpoint!r} is not a valid URL (want http(s)://host/path); "
                "set NEWS_SIGNALS_GDELT_URL or the gdelt_api connection"
            )
        self.endpoint = endpoint
        self.timeout_s, self.min_interval_s = timeout_s, min_interval_s
        self.max_retries, self.backoff_s, self.max_backoff_s = max_retries, backoff_s, max_backoff_s
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._doc = _gdeltdoc_client_class()(endpoint, timeout_s, self.session)
        self._last_request: float | None = None
        self.request_times: list[float] = []  # monotonic start of each request (pacing is checkable)
        self.stats = FetchStats()

    @classmethod
    def from_settings(cls, settings: Settings | None = None, **overrides: Any) -> GdeltClient:
        """Client for ``settings``; retries/backoff from ``NEWS_SIGNALS_GDELT_RETRIES`` / ``_BACKOFF``."""
        settings = settings or Settings()
        kwargs: dict[str, Any] = {
            "timeout_s": settings.gdelt_timeout_s,
            "min_interval_s": settings.gdelt_min_interval_s,
            "max_retries": settings.gdelt_retries,
            "backoff_s": settings.gdelt_backoff_s,
        }
        kwargs.update(overrides)
        return cls(resolve_endpoint(settings), **kwargs)

    def close(self) -> None:
        self.session.close()

    def _pace(self) -> None:
        if self._last_request is not None:
            wait = self.min_interval_s - (time.monotonic() - self._last_request)
            if wait > 0:
                time.sleep(wait)
        self._last_request = time.monotonic()
        self.request_times.append(self._last_request)

    def articles(self, filters: Any, raw_query: str | None, label: str) -> pd.DataFrame:
        """One artlist query (``gdeltdoc.Filters`` + optional raw GDELT query text), with retries."""
        import pandas as pd
        from gdeltdoc.errors import BadRequestError, ClientRequestError, NotFoundError

        query_string = filters.query_string
        if raw_query and raw_query.strip():  # raw GDELT syntax; gdeltdoc sends its own part unencoded
            query_string = f"{quote(raw_query.strip(), safe='')}%20{query_string}"
        last = "no answer"
        for attempt in range(self.max_retries + 1):
            self._pace()
            self.stats.requests += 1
            try:
                answer = self._doc._query("artlist", query_string)
                if "articles" not in answer:  # GDELT answers {} when nothing matches
                    return pd.DataFrame()
                return pd.DataFrame(answer["articles"])
            except _Retryable as exc:
                last = exc.status
                self.stats.faults[exc.status] = self.stats.faults.get(exc.status, 0) + 1
                if attempt == self.max_retries:
                    break
                delay = min(self.backoff_s * 2**attempt, self.max_backoff_s)
                delay = max(delay * (1 + random.uniform(0, 0.25)), exc.retry_after or 0.0)
                self.stats.retries += 1
                log.warning(
                    "GDELT %s: %s (attempt %d/%d); retrying in %.1f s",
                    label, exc.status, attempt + 1, self.max_retries + 1, delay,
                )  # fmt: skip
                time.sleep(delay)
            except (BadRequestError, NotFoundError, ClientRequestError) as exc:
                status = exc.response.status_code if exc.response is not None else "?"
                body = (exc.response.text or "").strip()[:200] if exc.response is not None else ""
                raise GdeltFetchError(
                    f"GDELT rejected the query for {label} with HTTP {status}: {body!r}. "
                    f"Check the query/countries/languages (query string: {query_string!r})."
                ) from exc
        raise GdeltFetchError(
            f"GDELT {label}: gave up after {self.max_retries + 1} attempts; last status: {last}. "
            f"Endpoint {self.endpoint}; retry later or raise NEWS_SIGNALS_GDELT_RETRIES/_TIMEOUT."
        )


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime  # sent as enddatetime; the next window starts here (overlap deduped)
    languages: tuple[str, ...]

    def label(self) -> str:
        langs = "+".join(self.languages) or "all languages"
        return f"window {self.start:%Y-%m-%d %H:%M:%S}–{self.end:%H:%M:%S} UTC ({langs})"


def _filters(window: _Window, countries: Sequence[str], max_records: int) -> Any:
    from gdeltdoc import Filters

    def one_or_many(values: Sequence[str]) -> str | list[str] | None:
        values = list(values)
        return None if not values else values[0] if len(values) == 1 else values

    return Filters(
        start_date=window.start.replace(tzinfo=None),
        end_date=window.end.replace(tzinfo=None),
        num_records=max_records,
        country=one_or_many(countries),
        language=one_or_many(window.languages),
    )


def fetch_day(
    day: date | str,
    settings: Settings | None = None,
    *,
    query: str | None = None,
    countries: Sequence[str] | None = None,
    languages: Sequence[str] | None = None,
    max_articles: int | None = None,
    client: GdeltClient | None = None,
    window_hours: float = 6.0,
    min_window_minutes: float = 15.0,
) -> pd.DataFrame:
    """The day's articles, deduplicated: columns ``COLUMNS`` (+ ``socialimage`` when GDELT gives it).

    ``query`` is raw GDELT query text (``storm``, ``"phrase"``, ``(a OR b)``) ANDed with the
    ``sourcecountry:`` (FIPS codes, default ``SW``) and ``sourcelang:`` (default swedish, english)
    filters. ``max_articles`` stops fetching once that many unique articles are in (oldest first).
    Fetch counters are in ``df.attrs["fetch_stats"]``.
    """
    import pandas as pd

    if isinstance(day, str | datetime):
        day = date.fromisoformat(parse_day(day, "day"))
    if not isinstance(day, date):
        raise ValueError(f"day must be a date, got {day!r}")
    if max_articles is not None and max_articles < 1:
        raise ValueError(f"max_articles must be >= 1, got {max_articles}")
    if window_hours <= 0 or min_window_minutes <= 0:
        raise ValueError("window_hours and min_window_minutes must be positive")
    settings = settings or Settings()
    countries = tuple(countries if countries is not None else settings.countries)
    languages = tuple(languages if languages is not None else settings.languages)
    own_client = client is None
    client = client or GdeltClient.from_settings(settings)
    stats = client.stats = FetchStats()  # per day, even when a client is reused
    day_start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    day_end = day_start + timedelta(days=1)
    step = timedelta(hours=window_hours)
    min_window = timedelta(minutes=min_window_minutes)
    todo: list[_Window] = []
    t = day_start
    while t < day_end:
        todo.append(_Window(t, min(t + step, day_end), languages))
        t += step
    todo.reverse()  # a stack; oldest window first
    frames: list[pd.DataFrame] = []
    seen_urls: set[str] = set()
    log.info(
        "fetching GDELT %s from %s: countries=%s languages=%s query=%r, %d windows of %g h",
        day, client.endpoint, ",".join(countries) or "any", ",".join(languages) or "any", query, len(todo), window_hours,
    )  # fmt: skip
    try:
        while todo:
            window = todo.pop()
            stats.windows += 1
            rows = client.articles(_filters(window, countries, MAX_RECORDS), query, window.label())
            if len(rows) >= MAX_RECORDS:
                stats.full_windows += 1
                if window.end - window.start > min_window:
                    mid = window.start + (window.end - window.start) / 2
                    mid = mid.replace(microsecond=0)
                    log.info(
                        "%s came back full (%d rows): splitting at %s",
                        window.label(),
                        len(rows),
                        f"{mid:%H:%M:%S}",
                    )
                    todo.extend(
                        [
                            _Window(mid, window.end, window.languages),
                            _Window(window.start, mid, window.languages),
                        ]
                    )
                    continue
                if len(window.languages) > 1:
                    log.info("%s is full at the smallest window: asking per language", window.label())
                    todo.extend(
                        _Window(window.start, window.end, (lang,)) for lang in reversed(window.languages)
                    )
                    continue
                stats.truncated_windows += 1
                log.warning(
                    "%s is full and cannot be split further: GDELT may hold more articles", window.label()
                )
            log.info("%s: %d rows", window.label(), len(rows))
            if len(rows):
                stats.raw_rows += len(rows)
                frames.append(rows)
                seen_urls.update(rows.get("url", pd.Series(dtype=str)).dropna())
            if max_articles is not None and len(seen_urls) >= max_articles:
                log.info("max_articles=%d reached; not fetching the remaining windows", max_articles)
                break
    finally:
        if own_client:
            client.close()
    df = normalise_articles(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), day, stats)
    if max_articles is not None:
        df = df.head(max_articles).reset_index(drop=True)
    stats.articles = len(df)
    df.attrs["fetch_stats"] = stats.as_dict()
    log.info(
        "GDELT %s: %d articles (%d raw rows, %d duplicate urls, %d duplicate titles, %d outside the day) "
        "in %d requests, %d retries",
        day, len(df), stats.raw_rows, stats.duplicate_urls, stats.duplicate_titles, stats.out_of_day,
        stats.requests, stats.retries,
    )  # fmt: skip
    return df


def normalise_articles(raw: pd.DataFrame, day: date, stats: FetchStats | None = None) -> pd.DataFrame:
    """Raw artlist rows -> the fetcher's contract: typed, inside the day, deduplicated, with ids.

    Dedupe keeps the earliest sighting: first by URL, then by normalised title (syndicated copies).
    """
    import pandas as pd

    stats = stats or FetchStats()
    keep = COLUMNS[1:] + [c for c in OPTIONAL_COLUMNS if c in raw.columns]
    if raw.empty:
        out = pd.DataFrame({c: pd.Series(dtype="object") for c in COLUMNS})
        out["seendate"] = pd.Series(dtype="datetime64[ns, UTC]")
        return out
    missing = [c for c in ("url", "title", "seendate") if c not in raw.columns]
    if missing:
        raise GdeltFetchError(f"GDELT rows lack column(s) {missing}; got {sorted(raw.columns)}")
    df = raw.reindex(columns=keep).copy()
    for col in keep:
        if col != "seendate":
            df[col] = df[col].fillna("").astype(str).str.strip()
    df["seendate"] = pd.to_datetime(df["seendate"], format=SEENDATE_FORMAT, utc=True, errors="coerce")
    bad = df["seendate"].isna() | (df["url"] == "") | (df["title"] == "")
    stats.missing_fields += int(bad.sum())
    if bad.any():
        log.warning("dropping %d rows without url, title or a parseable seendate", int(bad.sum()))
    df = df[~bad]
    day_start = pd.Timestamp(day, tz="UTC")
    inside = (df["seendate"] >= day_start) & (df["seendate"] < day_start + pd.Timedelta(days=1))
    stats.out_of_day += int((~inside).sum())
    df = df[inside].sort_values(["seendate", "url"], kind="stable")
    before = len(df)
    df = df.drop_duplicates(subset="url", keep="first")
    stats.duplicate_urls += before - len(df)
    norm = df["title"].map(normalise_title)
    dup_title = norm.duplicated(keep="first") & (norm != "")
    stats.duplicate_titles += int(dup_title.sum())
    df = df[~dup_title]
    df.insert(0, "article_id", [article_id(u, t) for u, t in zip(df["url"], df["title"], strict=True)])
    df["seendate"] = df["seendate"].astype("datetime64[ns, UTC]")
    return df.reset_index(drop=True)
