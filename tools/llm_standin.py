"""A local stand-in for an OpenAI-compatible LLM server (vLLM, Ollama, TGI speak the same protocol).

Serves ``POST /v1/chat/completions`` (Bearer auth when started with a key) and ``GET /v1/models``.
The answer is deterministic: the keyword labeller's signals for the article in the last user
message (the text after ``Article:``), as ``{"signals": {...}}`` in ``choices[0].message.content``,
with a ``usage`` block counting whitespace tokens. ``ignore_response_format=True`` wraps the JSON in
prose and a code fence, as servers without structured output do.

Faults for the client's tests, each for the next ``count`` requests (``inject``) or for every
request whose article contains a marker (``poison``): ``429`` (with ``Retry-After``), ``500``,
``slow`` (sleeps ``slow_s`` before answering), ``invalid_json``, ``out_of_taxonomy`` (an unknown
tag), ``unknown_category``, ``bad_score`` (outside [-1, 1]), ``drop`` (closes the connection
without an answer), ``not_chat`` (a 200 with an HTML body). ``requests`` is the request log; ``max_concurrent`` the most requests seen in
flight at once.

    python -m tools.llm_standin --port 8000 [--api-key KEY] [--delay 0.05]
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger(__name__)

FAULTS = (
    "429", "500", "slow", "invalid_json", "out_of_taxonomy", "unknown_category", "bad_score", "drop", "not_chat",
)
MODEL = "standin-keywords"


@dataclass(frozen=True)
class ChatRequest:
    """One request as the server saw it."""

    at: float  # time.monotonic() on arrival
    path: str
    authorized: bool
    status: int
    fault: str | None
    model: str | None
    user: str  # the last user message
    response_format: bool  # whether the request asked for a JSON schema


class LLMStandin:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        delay_s: float = 0.0,
        slow_s: float = 2.0,
        retry_after: str = "1",
        ignore_response_format: bool = False,
    ) -> None:
        from news_signals.labelling.keywords import KeywordLabeller

        self.api_key = api_key
        self.delay_s, self.slow_s, self.retry_after = delay_s, slow_s, retry_after
        self.ignore_response_format = ignore_response_format
        self._labeller = KeywordLabeller()
        self._faults: deque[str] = deque()
        self._poison: dict[str, str] = {}
        self._log: list[ChatRequest] = []
        self._lock = threading.Lock()
        self._in_flight = 0
        self.max_concurrent = 0
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle
    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LLMStandin:
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> LLMStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and observations
    def inject(self, fault: str, count: int = 1) -> None:
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        with self._lock:
            self._faults.extend([fault] * count)

    def poison(self, marker: str, fault: str) -> None:
        """Every request whose last user message contains ``marker`` gets ``fault``."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; choose from {FAULTS}")
        with self._lock:
            self._poison[marker] = fault

    @property
    def requests(self) -> list[ChatRequest]:
        with self._lock:
            return list(self._log)

    def chat_requests(self) -> list[ChatRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def reset(self) -> None:
        with self._lock:
            self._log.clear()
            self._faults.clear()
            self._poison.clear()
            self.max_concurrent = 0

    # -- answers
    def answer_content(self, article: str, fault: str | None) -> str:
        signals = self._labeller.classify(article)
        out = {c: {"tag": s["tag"], "score": round(float(s["score"]), 3)} for c, s in signals.items()}
        if fault == "out_of_taxonomy":
            out["crime"] = {"tag": "burglary", "score": -0.5}
        elif fault == "unknown_category":
            out["health"] = {"tag": "flu", "score": -0.4}
        elif fault == "bad_score":
            out["emergencies"] = {"tag": "fire", "score": -2.5}
        content = json.dumps({"signals": out})
        if fault == "invalid_json":
            return "Sure! Here are the signals: {signals: emergencies=fire"
        if self.ignore_response_format:
            return f"Here is the labelling:\n```json\n{content}\n```\nLet me know if you need more."
        return content

    def _next_fault(self, user: str) -> str | None:
        with self._lock:
            for marker, fault in self._poison.items():
                if marker in user:
                    return fault
            return self._faults.popleft() if self._faults else None

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        at = time.monotonic()
        path = h.path.split("?")[0]
        authorized = self.api_key is None or h.headers.get("Authorization") == f"Bearer {self.api_key}"
        body: dict = {}
        if method == "POST":
            length = int(h.headers.get("Content-Length") or 0)
            try:
                body = json.loads(h.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                body = {}
        messages = body.get("messages") or []
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")

        def record(status: int, fault: str | None) -> None:
            with self._lock:
                self._log.append(
                    ChatRequest(at, path, authorized, status, fault, body.get("model"), user, "response_format" in body)
                )

        if not authorized:
            record(401, None)
            return self._send(h, 401, {"error": {"message": "invalid API key", "type": "invalid_request_error"}})
        if method == "GET":
            if path.rstrip("/") == "/v1/models":
                record(200, None)
                return self._send(h, 200, {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
            record(404, None)
            return self._send(h, 404, {"error": {"message": f"no route {path}"}})
        if path.rstrip("/") != "/v1/chat/completions":
            record(404, None)
            return self._send(h, 404, {"error": {"message": f"no route {path}"}})
        with self._lock:
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
        try:
            fault = self._next_fault(user)
            if self.delay_s:
                time.sleep(self.delay_s)
            if fault == "429":
                record(429, fault)
                return self._send(h, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
            if fault == "500":
                record(500, fault)
                return self._send(h, 500, {"error": {"message": "internal error"}})
            if fault == "drop":
                record(0, fault)
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)  # no status line: the client sees the connection drop
                return None
            if fault == "not_chat":  # a 200 whose body is no chat completion (a proxy's error page)
                record(200, fault)
                data = b"<html><body>upstream busy</body></html>"
                h.send_response(200)
                h.send_header("Content-Type", "text/html")
                h.send_header("Content-Length", str(len(data)))
                h.end_headers()
                h.wfile.write(data)
                return None
            if fault == "slow":  # logged on arrival: the client may give up before the answer
                record(200, fault)
                time.sleep(self.slow_s)
            article = user.split("Article:\n", 1)[-1]
            content = self.answer_content(article, fault)
            prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
            if fault != "slow":
                record(200, fault)
            return self._send(
                h,
                200,
                {
                    "id": f"chatcmpl-{len(self._log)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model") or MODEL,
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                    ],
                    "usage": {
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(content.split()),
                        "total_tokens": prompt_tokens + len(content.split()),
                    },
                },
            )
        finally:
            with self._lock:
                self._in_flight -= 1

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, obj: dict, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode()
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout): nothing to do
            pass

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server API)
                server._handle(self, "POST")

            def do_GET(self) -> None:  # noqa: N802
                server._handle(self, "GET")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("llm-standin: " + format, *args)

        return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (default: no auth)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--ignore-response-format", action="store_true", help="answer in prose with a fenced JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = LLMStandin(
        args.host, args.port, api_key=args.api_key, delay_s=args.delay, ignore_response_format=args.ignore_response_format
    )
    log.info("LLM stand-in serving %s (model %s); Ctrl-C stops it", server.base_url, MODEL)
    try:
        server._server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server._server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
