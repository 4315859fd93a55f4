"""The streaming row's load: C clients, each on one kept-alive connection, asking for server-sent events.

wrk's Lua sees a response only once it is complete, so it cannot time the first `delta` event. This is a
plain asyncio HTTP/1.1 client instead (no HTTP library: at C=64 it shares two cores with the backend and
the fake Gemini, so it must cost little): it sends `POST <path>` with `Accept: text/event-stream`, reads the
chunked answer, and notes when the first `event: delta` arrived and whether the stream ended with
`event: result`. Used by bench/run.py, on the host and inside the stack's network namespace.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

DELTA = b"event: delta\n"
RESULT = b"event: result\n"


@dataclass
class StreamTimes:
    """What the clients saw, in seconds since each request was sent."""

    first_delta: list[float] = field(default_factory=list)  # streams that ended with `result`
    whole: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)  # answers that were not a complete stream, by status
    socket_errors: int = 0
    seconds: float = 0.0  # from the first request sent to the last stream ended

    @property
    def streams(self) -> int:
        return len(self.first_delta)

    @property
    def errors(self) -> int:
        return sum(self.statuses.values()) + self.socket_errors


async def _read_answer(reader: asyncio.StreamReader, sent: float) -> tuple[int, float | None, bool, bool]:
    """One response: its status, when its first delta arrived (None: none did), whether it held a result and
    whether the server closes the connection after it."""
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("the server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    chunked, length, close = False, 0, False
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"content-length":
            length = int(value)
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if not chunked:
        body = await reader.readexactly(length)
        return status, None, RESULT in body, close
    first: float | None = None
    seen = b""  # enough of the body to find the event names in, across chunk boundaries
    result = False
    while True:
        size = int((await reader.readline()).split(b";", 1)[0], 16)
        data = await reader.readexactly(size + 2)  # the chunk and its CRLF
        if size == 0:
            return status, first, result, close
        seen = seen[-16:] + data[:-2]
        if first is None and DELTA in seen:
            first = time.perf_counter() - sent
        result = result or RESULT in seen


async def run_streams(url: str, path: str, body: dict[str, Any], concurrency: int, count: int) -> StreamTimes:
    """`count` streamed requests over `concurrency` connections (reopened if the server closes one)."""
    where = urlsplit(url)
    host, port = where.hostname or "127.0.0.1", where.port or 80
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {where.netloc}\r\nAccept: text/event-stream\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    times = StreamTimes()
    left = count

    async def client() -> None:
        nonlocal left
        connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while left > 0:
            left -= 1
            try:
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                reader, writer = connection
                sent = time.perf_counter()
                writer.write(request)
                status, first, result, close = await _read_answer(reader, sent)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                times.socket_errors += 1
                close = True
                status, first, result = 0, None, False
            if close and connection is not None:
                connection[1].close()
                connection = None
            if status == 0:
                continue
            if status == 200 and first is not None and result:
                times.first_delta.append(first)
                times.whole.append(time.perf_counter() - sent)
            else:
                times.statuses[str(status)] = times.statuses.get(str(status), 0) + 1
        if connection is not None:
            connection[1].close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    times.seconds = time.perf_counter() - started
    return times


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`, which must not be empty."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]
