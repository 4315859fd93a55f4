"""A fake Gemini API that speaks the REST wire protocol, for offline tests and benchmarks.

The real SDK reaches it through GEMINI_BASE_URL. It answers `POST /{v1,v1beta}/models/{model}:generateContent`,
`...:streamGenerateContent` and `GET /{v1,v1beta}/models/{model}` like Gemini does, with a `usageMetadata`
block tests can set, and errors in the google.rpc form `{"error": {"code", "message", "status", "details"}}`.
Given a set of known models, it answers any other id with Gemini's 404 NOT_FOUND, as Gemini does for an
unknown or retired model.
It refuses with 400, like Gemini, a thinking level the model does not accept, or a level sent with a
budget (the table in model_capabilities.py, found beside this file or in the folder above; without it
nothing is refused).

Tests queue one-off behaviours ("faults") with `FakeGemini.push(...)`; with nothing queued it
answers with three sub-tasks derived from the request when the schema sent asks for a list of titled
items (the seed prompt), else with a value that fits the schema sent, or with text when none was sent. A
stream sends the same answer in `chunks` pieces `chunk_delay` seconds apart, each piece a full response, usage
complete only in the last; as server-sent events with `?alt=sse` (google-genai) or as one JSON array
(google-generativeai's REST transport), in a chunked body on a connection kept alive, as Gemini does; with
`cut_after` or a client that left, the connection is closed mid-body. `FakeGemini.streams` records when each
piece was sent and whether the client left early. A `slow` answer and the pauses between pieces end early once
a test calls `FakeGemini.release()`: a test that holds calls open lets them go as soon as it has seen what it waits for,
instead of sleeping for a guessed time. Run it on its own with `python tests/fake_gemini.py --port 9000 --latency 0.2`
(benchmarks, the Nginx stack tests); `POST /_fake/push` queues a fault and `GET /_fake/stats` counts requests
there.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import select
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

GENERATE_PATH = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._-]+):(generateContent|streamGenerateContent)$")
MODEL_PATH = re.compile(r"^/(v1|v1beta)/models/([A-Za-z0-9._-]+)$")

GENERATES = ["generateContent", "countTokens"]  # supportedGenerationMethods of a text model
# What every answer says it cost, unless a test sets `FakeGemini.usage`.
DEFAULT_USAGE = {"promptTokenCount": 57, "candidatesTokenCount": 41, "thoughtsTokenCount": 23, "totalTokenCount": 121}

# Gemini's status names for the HTTP codes tests use.
RPC_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


@dataclass
class Fault:
    """One queued behaviour. `kind` is one of:

    ok (answer `items`), error (HTTP `code`, optional `retry_after` seconds as RetryInfo),
    bad_key (400 API_KEY_INVALID), text (a candidate whose text is `text`), blocked (prompt
    blocked for safety), empty (no candidates), truncated (MAX_TOKENS with half a JSON),
    slow (answer after `delay` seconds), drop (close the connection without answering),
    html (an HTML page with HTTP `code`), thoughts (an answer led by a `thought: true` part, and
    signatures), rerouted (an answer whose modelVersion is `model_version`, as when Gemini serves a
    deprecated id with a newer model), and the errors Gemini answers in production: quota_daily (429,
    the day's quota spent: a QuotaFailure per day), quota_zero (429, `limit: 0`: the model is not on the
    key's tier), unauthenticated (401 ACCESS_TOKEN_TYPE_UNSUPPORTED), location (400
    FAILED_PRECONDITION: the API is not available where the caller is), raw (`text` sent as the body
    with HTTP `code`: a recorded answer).

    A stream answers ok, text, truncated, blocked and empty in `chunks` pieces (None: the fake's
    default) `chunk_delay` seconds apart; `cut_after` pieces, it closes the connection, and with
    `error_after` it sends Gemini's error object (HTTP `code`) in place of the next piece.
    """

    kind: str
    code: int = 500
    items: list[dict[str, Any]] | None = None
    text: str = ""
    retry_after: float | None = None
    delay: float = 0.0
    chunks: int | None = None
    chunk_delay: float | None = None
    cut_after: int | None = None
    error_after: int | None = None
    model_version: str = "gemini-3.6-flash"  # rerouted: the model that really answered


@dataclass
class StreamSeen:
    """One stream as the fake served it: when each piece left (time.time()) and how it ended."""

    sent_at: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    client_left: bool = False  # the client closed the connection before the last piece
    ended_at: float | None = None  # when the fake stopped serving it, for whatever reason


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def generation_config(self) -> dict[str, Any]:
        """The generation config as sent (google-genai writes camelCase, older SDKs snake_case)."""
        return self.body.get("generationConfig") or self.body.get("generation_config") or {}

    @property
    def system_text(self) -> str:
        """The system instruction's text as sent ("" when none was)."""
        instruction = self.body.get("systemInstruction") or self.body.get("system_instruction") or {}
        return "".join(part.get("text", "") for part in instruction.get("parts", []))

    @property
    def user_text(self) -> str:
        return "".join(part.get("text", "") for part in self.body["contents"][-1]["parts"])

    @property
    def response_schema(self) -> dict[str, Any] | None:
        """The answer's schema as sent: JSON Schema (google-genai) or Gemini's older OpenAPI form."""
        return _response_schema(self.body)


@dataclass
class FakeGemini:
    """The fake server. Use as a context manager, or `start()` / `stop()`."""

    host: str = "127.0.0.1"
    port: int = 0
    latency: float = 0.0
    api_key: str | None = None  # when set, any other key gets 400 API_KEY_INVALID
    # Known model ids and their supportedGenerationMethods; None knows every id. Others get 404 NOT_FOUND.
    models: dict[str, list[str]] | None = None
    # A fault kind for every request, GET included, until reset (doctor's checks): e.g. "unauthenticated".
    mode: str | None = None
    usage: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_USAGE))
    model_gets: int = 0  # models `get` calls answered (they are not in `count`, which counts generateContent)
    requests: list[Seen] = field(default_factory=list)
    record: bool = True  # benchmarks turn this off to keep memory flat
    # Set by release(): every `slow` wait and pause between stream pieces ends at once, until reset().
    released: threading.Event = field(default_factory=threading.Event)
    stream_chunks: int = 3  # pieces per stream, unless a fault says otherwise
    chunk_delay: float = 0.0  # seconds between pieces, unless a fault says otherwise
    streams: deque[StreamSeen] = field(default_factory=lambda: deque(maxlen=1000))  # the latest streams
    _faults: deque[Fault] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _count: int = 0
    in_flight: int = 0
    max_in_flight: int = 0  # the most calls it was answering at once: proof the caller does not serialise

    def __post_init__(self) -> None:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 1024  # the default (5) resets connections under load

        self._server = Server((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def count(self) -> int:
        with self._lock:
            return self._count

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.requests.clear()
            self._count = 0
            self.max_in_flight = 0
            self.model_gets = 0
            self.mode = None
            self.usage = dict(DEFAULT_USAGE)
            self.streams.clear()
            self.released.clear()

    def release(self) -> None:
        """Let every held call go now: `slow` answers and the pauses between stream pieces end at once."""
        self.released.set()

    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def knows(self, model: str) -> bool:
        return self.models is None or model in self.models

    def _take(self, seen: Seen) -> Fault | None:
        with self._lock:
            self._count += 1
            if self.record:
                self.requests.append(seen)
            return self._faults.popleft() if self._faults else None


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeGemini
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every answer waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # keep test output quiet

    def do_GET(self) -> None:
        fake = self.server_fake
        model_path = MODEL_PATH.match(self.path.split("?", 1)[0])
        if self.path == "/_fake/stats":
            self._send_json(200, {"requests": fake.count})
        elif self.path == "/_fake/streams":  # for tests that run the fake in another process
            with fake._lock:
                streams = [vars(stream) for stream in fake.streams]
            self._send_json(200, {"streams": streams})
        elif model_path is None:
            self._send_json(404, _error(404, "Not found."))
        elif not self._key_accepted():
            self._answer(Fault("bad_key"), {})
        else:
            with fake._lock:
                fake.model_gets += 1
            version, model = model_path.groups()
            if fake.mode in PRODUCTION_ERRORS:
                self._send_json(*PRODUCTION_ERRORS[fake.mode](model))
                return
            if not fake.knows(model):
                self._send_json(404, _model_not_found(model, version))
                return
            methods = GENERATES if fake.models is None else fake.models[model]
            self._send_json(
                200,
                {
                    "name": f"models/{model}",
                    "version": "001",
                    "displayName": model,
                    "inputTokenLimit": 1048576,
                    "outputTokenLimit": 65536,
                    "supportedGenerationMethods": methods,
                    "thinking": True,
                },
            )

    def _key_accepted(self) -> bool:
        expected = self.server_fake.api_key
        return expected is None or self.headers.get("x-goog-api-key", "") == expected

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, _error(400, "Invalid JSON payload received."))
            return
        if self.path == "/_fake/push":
            self.server_fake.push(*(Fault(**spec) for spec in body))
            self._send_json(200, {"queued": len(body)})
            return
        if self.path == "/_fake/reset":
            self.server_fake.reset()
            self._send_json(200, {})
            return
        path = self.path.split("?", 1)[0]
        generate_path = GENERATE_PATH.match(path)
        if not generate_path:
            self._send_json(404, _error(404, f"Path {path} not found."))
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        fake = self.server_fake
        fault = fake._take(Seen(path=path, headers=headers, body=body)) or (Fault(fake.mode) if fake.mode else None)
        version, model, method = generate_path.groups()
        if not self._key_accepted():
            fault = Fault("bad_key")
        elif not fake.knows(model):
            self._send_json(404, _model_not_found(model, version))
            return
        refusal = thinking_refusal(model, body)
        if refusal is not None:
            self._send_json(400, _error(400, refusal))
            return
        fake._enter()
        try:
            if fake.latency:
                time.sleep(fake.latency)
            fault = fault or Fault("ok")
            answered_whole = ("error", "bad_key", "html", "drop", "raw", *PRODUCTION_ERRORS)  # errors are not streamed
            if method == "streamGenerateContent" and fault.kind not in answered_whole:
                self._stream(fault, body, sse="alt=sse" in self.path)
            else:
                self._answer(fault, body, model)
        finally:
            fake._leave()

    def _answer(self, fault: Fault, body: dict[str, Any], model: str = "") -> None:
        kind = fault.kind
        usage = dict(self.server_fake.usage)
        thoughts = _thinking_config(body).get("includeThoughts") or _thinking_config(body).get("include_thoughts")
        if kind == "thoughts":
            kind, thoughts = "ok", True
        if kind == "rerouted":
            kind, model = "ok", fault.model_version
        if kind == "slow":
            self.server_fake.released.wait(fault.delay)
            kind = "ok"
        if kind == "ok":
            text = _default_answer(body) if fault.items is None else json.dumps(fault.items)
            self._send_json(200, _candidate(text, usage, model=model, thoughts=bool(thoughts)))
        elif kind == "text":
            self._send_json(200, _candidate(fault.text, usage, model=model))
        elif kind == "truncated":
            self._send_json(200, _candidate('[{"title": "Outline the', usage, finish="MAX_TOKENS", model=model))
        elif kind == "blocked":  # the prompt was read, so its tokens are billed
            prompt_only = {"promptTokenCount": usage["promptTokenCount"], "totalTokenCount": usage["promptTokenCount"]}
            self._send_json(
                200,
                {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": prompt_only, **_ids(model)},
            )
        elif kind == "empty":
            self._send_json(200, {"candidates": [], "usageMetadata": {}, **_ids(model)})
        elif kind == "raw":  # a recorded body (tests/fixtures/gemini/), sent as it is with HTTP `code`
            self._send(fault.code, fault.text.encode(), "application/json; charset=UTF-8")
        elif kind in PRODUCTION_ERRORS:
            code, error = PRODUCTION_ERRORS[kind](model)
            self._send_json(code, error)
        elif kind == "bad_key":
            error = _error(400, "API key not valid. Please pass a valid API key.")
            error["error"]["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "API_KEY_INVALID",
                    "domain": "googleapis.com",
                }
            ]
            self._send_json(400, error)
        elif kind == "error":
            error = _error(fault.code, f"Fake upstream error {fault.code}.")
            if fault.retry_after is not None:
                error["error"]["details"] = [
                    {
                        "@type": "type.googleapis.com/google.rpc.RetryInfo",
                        "retryDelay": f"{fault.retry_after:g}s",
                    }
                ]
            self._send_json(fault.code, error)
        elif kind == "html":
            self._send(fault.code, b"<html><body><h1>Bad Gateway</h1></body></html>", "text/html")
        elif kind == "drop":
            self.close_connection = True
            self.connection.close()
        else:
            raise ValueError(f"unknown fault kind {kind!r}")

    def _stream(self, fault: Fault, body: dict[str, Any], sse: bool) -> None:
        """One streamed answer: the whole answer's text cut into pieces, each sent as a full response."""
        fake = self.server_fake
        if fault.kind == "slow":
            self.server_fake.released.wait(fault.delay)
        whole = self._whole_answer(fault, body)
        usage = dict(fake.usage)
        count = fault.chunks if fault.chunks is not None else fake.stream_chunks
        delay = fault.chunk_delay if fault.chunk_delay is not None else fake.chunk_delay
        text = whole["candidates"][0]["content"]["parts"][0]["text"] if whole.get("candidates") else ""
        size = -(-len(text) // count) if text else 1
        pieces = [text[start : start + size] for start in range(0, len(text), size)] or [""]
        seen = StreamSeen()
        with fake._lock:
            fake.streams.append(seen)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream" if sse else "application/json; charset=UTF-8")
        # As Gemini does: the body in chunks, on a connection kept for the caller's next request. Closing it after
        # every stream made each stream open a new connection, which Gemini's callers do not, and put the
        # benchmark's streams in lock-step (README, "Streamed answers").
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True  # until the stream ends whole: a cut or abandoned stream closes it
        try:
            if not sse:
                self.wfile.write(_chunk(b"["))
            for index, piece in enumerate(pieces):
                if index and not self._wait_unless_client_left(delay):
                    seen.client_left = True
                    return
                if fault.cut_after is not None and index == fault.cut_after:
                    self.connection.shutdown(2)
                    return
                last = index == len(pieces) - 1
                if fault.error_after is not None and index == fault.error_after:
                    chunk: dict[str, Any] = _error(fault.code, f"Fake upstream error {fault.code}.")
                    last = True
                elif whole.get("candidates"):
                    # Before the last piece Gemini reports only the prompt's tokens.
                    prompt_tokens = {
                        "promptTokenCount": usage["promptTokenCount"],
                        "totalTokenCount": usage["promptTokenCount"],
                    }
                    chunk = _candidate(piece, whole["usageMetadata"] if last else prompt_tokens)
                    if not last:
                        del chunk["candidates"][0]["finishReason"]
                    else:
                        chunk["candidates"][0]["finishReason"] = whole["candidates"][0]["finishReason"]
                else:
                    chunk = whole
                data = json.dumps(chunk)
                body = f"data: {data}\r\n\r\n" if sse else ("," if index else "") + data + ("]" if last else "")
                # The last piece and the end of the body in one write, as one read for the caller.
                self.wfile.write(_chunk(body.encode()) + (LAST_CHUNK if last else b""))
                seen.sent_at.append(time.time())
                seen.texts.append(piece)
                if last:
                    self.close_connection = False
                    break
        except (BrokenPipeError, ConnectionResetError):
            seen.client_left = True
        finally:
            seen.ended_at = time.time()

    def _wait_unless_client_left(self, seconds: float) -> bool:
        """Sleep, but notice at once when the client closes the connection (False): proof that a caller
        that gave up also stopped the call."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0 and not self.server_fake.released.is_set():
            # In slices, so that release() is noticed within 20 ms.
            readable, _, _ = select.select([self.connection], [], [], min(left, 0.02))
            if readable:
                try:
                    if not self.connection.recv(1, 0x2):  # MSG_PEEK: nothing to read, the peer closed
                        return False
                except OSError:
                    return False
                time.sleep(min(left, 0.01))  # bytes waiting (not expected): do not spin on them
        return True

    def _whole_answer(self, fault: Fault, body: dict[str, Any]) -> dict[str, Any]:
        usage = dict(self.server_fake.usage)
        if fault.kind == "text":
            return _candidate(fault.text, usage)
        if fault.kind == "truncated":
            return _candidate('[{"title": "Outline the', usage, finish="MAX_TOKENS")
        if fault.kind == "blocked":
            return {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {}}
        if fault.kind == "empty":
            return {"candidates": [], "usageMetadata": {}}
        # The answer the same request gets unstreamed: sub-tasks, a value that fits the schema sent, or text.
        return _candidate(_default_answer(body) if fault.items is None else json.dumps(fault.items), usage)

    def _send_json(self, code: int, payload: dict[str, Any]) -> None:
        self._send(code, json.dumps(payload).encode(), "application/json; charset=UTF-8")

    def _send(self, code: int, data: bytes, content_type: str) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the caller gave up waiting (its deadline passed): not an error here


LAST_CHUNK = b"0\r\n\r\n"  # ends a chunked body


def _chunk(data: bytes) -> bytes:
    """`data` as one chunk of a chunked HTTP/1.1 body."""
    return b"%x\r\n%s\r\n" % (len(data), data)


def _error(code: int, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": RPC_STATUS.get(code, "UNKNOWN")}}


def _model_not_found(model: str, version: str) -> dict[str, Any]:
    """Gemini's answer for a model id it does not serve, word for word."""
    return _error(
        404,
        f"models/{model} is not found for API version {version}, or is not supported for generateContent. "
        "Call ListModels to see the list of available models and their supported methods.",
    )


def _ids(model: str) -> dict[str, str]:
    """What Gemini adds to every answer: an id, and the model that really answered (the one asked for,
    unless Gemini re-routed the call)."""
    return {"modelVersion": model or "unknown", "responseId": uuid.uuid4().hex[:22]}


def _candidate(
    text: str, usage: dict[str, int], finish: str = "STOP", model: str = "", thoughts: bool = False
) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": text}]
    if thoughts:  # as with includeThoughts: a summary of the thinking first, then the answer, with signatures
        signature = "CiQBpUOZfYTxJ5g1DAm97yzbFxv0HtPkpfgIry/rDFYmMAk="
        parts = [
            {"text": "**Thinking it through**\nThe user wants sub-tasks as JSON.", "thought": True},
            {"text": text, "thoughtSignature": signature},
        ]
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}],
        "usageMetadata": usage,
        **_ids(model),
    }


def _response_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    for key in ("responseJsonSchema", "response_json_schema", "responseSchema", "response_schema"):
        if config.get(key):
            return config[key]
    return None


def _default_answer(body: dict[str, Any]) -> str:
    schema = _response_schema(body)
    if schema is None:
        return "A plain text answer."
    items = schema.get("items") or {}
    if _kind(schema) == "array" and "title" in (items.get("properties") or {}):
        return json.dumps(_default_items(body))
    return json.dumps(fitting(schema))


def fitting(schema: dict[str, Any]) -> Any:
    """A small value that fits `schema` (JSON Schema, or Gemini's OpenAPI form with upper-case types)."""
    if "anyOf" in schema:
        return fitting(next(option for option in schema["anyOf"] if option.get("type") != "null"))
    if schema.get("enum"):
        return schema["enum"][0]
    kind = _kind(schema)
    if kind == "object":
        return {name: fitting(sub) for name, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        count = max(int(schema.get("minItems", schema.get("min_items", 1)) or 1), 1)
        return [fitting(schema.get("items") or {"type": "string"}) for _ in range(count)]
    if kind == "string":
        low = int(schema.get("minLength", 1))
        return "fake answer"[: int(schema.get("maxLength", 100))].ljust(low, "x")
    if kind in ("integer", "number"):
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    return None


# google-generativeai sends Gemini's older schema form, with its types as enum numbers.
TYPE_NUMBERS = {"1": "string", "2": "number", "3": "integer", "4": "boolean", "5": "array", "6": "object"}


def _kind(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    kind = next(item for item in kind if item != "null") if isinstance(kind, list) else str(kind).lower()
    return TYPE_NUMBERS.get(kind, kind)


def _quota(model: str, limit: int) -> tuple[int, dict[str, Any]]:
    """429 for a spent daily quota, in the form Gemini answers it (bodies quoted in google-gemini/gemini-cli
    #22486 and googleapis/python-genai #2044, 2025-2026): a QuotaFailure naming the daily quota; with
    `limit: 0` the model is not on the key's tier at all. Real ones may carry a RetryInfo too."""
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    error = _error(
        429,
        "You exceeded your current quota, please check your plan and billing details. For more information on "
        "this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. \n"
        f"* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}",
    )
    error["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            "violations": [
                {
                    "quotaMetric": metric,
                    "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                    "quotaDimensions": {"location": "global", "model": model},
                    "quotaValue": str(limit),
                }
            ],
        },
        {
            "@type": "type.googleapis.com/google.rpc.Help",
            "links": [
                {
                    "description": "Learn more about Gemini API quotas",
                    "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                }
            ],
        },
    ]
    return 429, error


def _unauthenticated(model: str) -> tuple[int, dict[str, Any]]:
    """401 for a key Gemini no longer takes (reported since Google moved to auth keys, 2026)."""
    error = _error(
        401,
        "API keys are not supported by this API. Expected OAuth2 access token or other authentication "
        "credentials that assert a principal.",
    )
    error["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_TYPE_UNSUPPORTED",
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"},
        }
    ]
    return 401, error


def _location(model: str) -> tuple[int, dict[str, Any]]:
    error = _error(400, "User location is not supported for the API use.")
    error["error"]["status"] = "FAILED_PRECONDITION"
    return 400, error


PRODUCTION_ERRORS = {
    "quota_daily": lambda model: _quota(model, 200),
    "quota_zero": lambda model: _quota(model, 0),
    "unauthenticated": _unauthenticated,
    "location": _location,
}


def _load_capabilities() -> ModuleType | None:
    """The project's model_capabilities.py (beside this file in the Compose fake, one folder up in tests/)."""
    here = Path(__file__).resolve().parent
    for path in (here / "model_capabilities.py", here.parent / "model_capabilities.py"):
        if path.exists():
            spec = importlib.util.spec_from_file_location("fake_model_capabilities", path)
            if spec and spec.loader:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    return None


CAPABILITIES = _load_capabilities()


def _thinking_config(body: dict[str, Any]) -> dict[str, Any]:
    config = body.get("generationConfig") or body.get("generation_config") or {}
    return config.get("thinkingConfig") or config.get("thinking_config") or {}


def thinking_refusal(model: str, body: dict[str, Any]) -> str | None:
    """Gemini's 400 message for a thinking config the model refuses, or None (wording as reported)."""
    thinking = _thinking_config(body)
    level = thinking.get("thinkingLevel") or thinking.get("thinking_level")
    budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
    if level is not None and budget is not None:
        return "You can only set one of thinking budget and thinking level."
    if level is None or CAPABILITIES is None:
        return None
    row = CAPABILITIES.row_for(model)
    if row is not None and not row.levels:
        return "Thinking level is not supported for this model."
    if CAPABILITIES.thinking_problem(model, str(level).lower()):
        return f"Thinking level {str(level).upper()} is not supported for this model."
    return None


def _default_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Three sub-tasks that quote the user's text, so tests can see it went through."""
    try:
        text = body["contents"][-1]["parts"][0]["text"]
        title = json.loads(text)["title"]
    except (KeyError, IndexError, TypeError, ValueError):
        title = "the task"
    return [
        {"title": f"Plan: {title}"[:200], "description": "Decide the steps and what done means."},
        {"title": f"Do: {title}"[:200], "description": None},
        {"title": f"Check: {title}"[:200], "description": "Review the result against the plan."},
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--api-key", default=None, help="reject any other key")
    parser.add_argument("--stream-chunks", type=int, default=3, help="pieces per streamed answer")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between streamed pieces")
    args = parser.parse_args()
    fake = FakeGemini(
        host=args.host,
        port=args.port,
        latency=args.latency,
        api_key=args.api_key,
        record=False,
        stream_chunks=args.stream_chunks,
        chunk_delay=args.chunk_delay,
    )
    print(f"fake Gemini on {fake.base_url}", flush=True)  # noqa: T201 - a command-line tool
    fake._server.serve_forever()


if __name__ == "__main__":
    main()
