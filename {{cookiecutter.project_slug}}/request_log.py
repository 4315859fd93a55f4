"""JSON logs, one object per line, each tagged with the request id Nginx gives the request.

Log lines never hold the API key or the user's task text.
"""

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from metrics import observe_request

request_id: ContextVar[str] = ContextVar("request_id", default="-")
# The ids we take from X-Request-ID: ASCII letters, digits and dashes (Nginx's are 32 hex digits), so a client
# cannot write arbitrary text into our logs.
PLAIN_ID = re.compile(rb"[A-Za-z0-9-]{1,64}")
# Extra fields for this request's log line, filled in by the code that handles it (see note()).
request_fields: ContextVar[dict[str, Any] | None] = ContextVar("request_fields", default=None)
logger = logging.getLogger("app")


def note(**fields: Any) -> None:
    """Add fields to the current request's log line, e.g. how the Gemini call went."""
    current = request_fields.get()
    if current is not None:
        current.update(fields)


@contextmanager
def collecting() -> Iterator[dict[str, Any]]:
    """Collect what note() is given while the block runs: one request's fields, or one doctor run's."""
    fields: dict[str, Any] = {}
    token = request_fields.set(fields)
    try:
        yield fields
    finally:
        request_fields.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def setup_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # uvicorn's own loggers go through the same JSON handler; its access log is replaced by ours.
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True
    # The HTTP libraries log every call with its URL at INFO; our own lines say what matters.
    for name in ("httpx", "httpx2", "google_genai", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


class RequestLogMiddleware:
    """Sets the request id (from X-Request-ID, else a new one), echoes it, logs one line per request
    and counts it in the metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"")
        rid = incoming.decode() if PLAIN_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id.set(rid)
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            await send(message)

        with collecting() as noted:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                # Logged here, where the request's id is known (uvicorn would log it with none), and answered
                # with a plain 500 that tells the client nothing of it.
                logger.exception("unexpected error")
                if started:
                    raise  # the answer is under way: only closing the connection can cut it short
                body = b"Internal Server Error"
                headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
                await send_with_id({"type": "http.response.start", "status": 500, "headers": headers})
                await send_with_id({"type": "http.response.body", "body": body})
            finally:
                seconds = time.perf_counter() - start
                fields = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "client": scope["client"][0] if scope.get("client") else None,
                    **noted,
                }
                logger.info("request", extra={"fields": fields})
                observe_request(scope, status, seconds)
                request_id.reset(token)
