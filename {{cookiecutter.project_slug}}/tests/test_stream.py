"""Streamed answers (`Accept: text/event-stream`) against a real uvicorn and the real SDK, talking to the fake
Gemini's `streamGenerateContent`: the event contract, retries only before the first delta, the deadline,
tokens, the concurrency cap, and a client that leaves closing the Gemini call."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from conftest import PROOF, SHORT_TIMEOUT_SECONDS, Server, log_lines, server_env, start_server, stop_server
from fake_gemini import FakeGemini, Fault

from event_stream import EventStreamResponse, wants_events

TASK = {"title": "Write the quarterly report", "description": "Numbers from finance, due Friday"}
PATH = "/api/breakdown-task"
STREAM = {"Accept": "text/event-stream"}


def events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a complete server-sent event stream."""
    found = []
    for block in response.text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        found.append((fields["event"], json.loads(fields["data"])))
    return found


def stream(client: httpx.Client, body: object = TASK) -> httpx.Response:
    return client.post(PATH, json=body, headers=STREAM)


def test_stream_sends_deltas_then_the_same_result_as_the_plain_call(client: httpx.Client, fake: FakeGemini) -> None:
    response = stream(client)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"
    found = events(response)
    names = [name for name, _ in found]
    assert names == ["delta"] * (len(found) - 1) + ["result"] and len(found) > 2
    text = "".join(data["text"] for name, data in found if name == "delta")
    assert json.loads(text) == found[-1][1]  # the deltas add up to the answer
    assert found[-1][1] == client.post(PATH, json=TASK).json()  # the plain call's body
    (seen, _) = fake.requests
    assert seen.path.endswith(":streamGenerateContent")


def test_without_the_accept_header_the_answer_is_plain_json(client: httpx.Client, fake: FakeGemini) -> None:
    response = client.post(PATH, json=TASK, headers={"Accept": "application/json, text/event-stream;q=0"})
    assert response.headers["content-type"] == "application/json"
    assert fake.requests[0].path.endswith(":generateContent")


def test_checks_before_gemini_answer_with_their_http_status(client: httpx.Client, fake: FakeGemini) -> None:
    response = stream(client, {"title": ""})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/json"
    assert fake.count == 0


def test_failure_before_the_first_delta_is_retried(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("error", 503), Fault("ok", cut_after=0))
    found = events(stream(client))
    assert found[-1][0] == "result"
    assert fake.count == 3


def test_failure_after_a_delta_is_an_error_event_and_not_retried(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("ok", cut_after=1))
    found = events(stream(client))
    assert [name for name, _ in found] == ["delta", "error"]
    assert found[-1][1] == {"status": 502, "detail": "Could not reach Gemini."}
    assert fake.count == 1


def test_gemini_error_mid_stream_is_an_error_event(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("ok", error_after=2, code=503))
    found = events(stream(client))
    assert [name for name, _ in found] == ["delta", "delta", "error"]
    assert found[-1][1]["status"] in (502, 503)
    assert fake.count == 1


@pytest.mark.parametrize(
    "fault, status, detail",
    [
        (Fault("error", 400), 502, "rejected the request"),
        (Fault("blocked"), 502, "unusable"),
        (Fault("truncated"), 502, "unusable"),
        (Fault("text", text="Sure! Here are some steps."), 502, "unusable"),
    ],
    ids=["400", "blocked", "truncated", "prose-not-json"],
)
def test_failures_become_one_error_event_with_the_plain_calls_status(
    client: httpx.Client, fake: FakeGemini, fault: Fault, status: int, detail: str
) -> None:
    fake.push(fault)
    response = stream(client)
    assert response.status_code == 200
    name, data = events(response)[-1]
    assert name == "error" and data["status"] == status and detail in data["detail"]
    assert list(data) == ["status", "detail"]
    plain = client.post(PATH, json=TASK) if fault.kind != "error" else None
    if plain is not None:
        fake.push(fault)


@pytest.mark.slow
def test_deadline_bounds_the_whole_stream(short_client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("ok", chunks=20, chunk_delay=0.25))  # 5 s of pieces, deadline 1 s
    start = time.monotonic()
    found = events(stream(short_client))
    assert time.monotonic() - start < SHORT_TIMEOUT_SECONDS + 1
    assert found[0][0] == "delta"
    assert found[-1] == ("error", {"status": 504, "detail": "Gemini did not answer in time."})
    assert sum(name == "error" for name, _ in found) == 1
    left = time.monotonic()
    while fake.streams[-1].ended_at is None and time.monotonic() - left < 2:  # 15 pieces were still to come
        time.sleep(0.01)
    assert fake.streams[-1].client_left  # the deadline closed the Gemini call too


@pytest.mark.slow
def test_deadline_before_the_first_delta_is_one_error_event(short_client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("slow", delay=SHORT_TIMEOUT_SECONDS + 1))
    assert events(stream(short_client)) == [("error", {"status": 504, "detail": "Gemini did not answer in time."})]


def test_tokens_of_the_last_chunk_reach_the_log(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    stream(client, {"title": "tokens-check"})
    line = next(
        entry for entry in reversed(log_lines(server)) if entry.get("message") == "request" and entry.get("stream")
    )
    assert line["gemini_tokens"] == {"prompt": 57, "answer": 41, "thinking": 23, "total": 121}
    assert line["stream_end"] == "result" and line["gemini_outcome"] == "ok" and "client_left" not in line
    assert "tokens-check" not in json.dumps(line)
    metrics = client.get("/metrics").text
    assert "gemini_stream_first_delta_seconds_count" in metrics and "gemini_streams_in_flight 0.0" in metrics


def raw_stream_request(url: str, request_id: str = "raw-stream") -> socket.socket:
    """A stream request on a raw socket, so the test can close the connection at a moment of its choosing."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps(TASK).encode()
    headers = "".join(f"{name}: {value}\r\n" for name, value in {**PROOF, "X-Request-ID": request_id}.items())
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n".encode()
        + body
    )
    return sock


def read_until(sock: socket.socket, marker: bytes, timeout: float = 5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while marker not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    return data


def test_client_that_leaves_closes_the_gemini_call(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    fake.push(Fault("ok", chunks=10, chunk_delay=1.5))  # held open between pieces
    sock = raw_stream_request(server.url, "leaves-early")
    read_until(sock, b"event: delta")
    sock.close()
    left = time.monotonic()
    while not fake.streams or fake.streams[-1].ended_at is None:
        assert time.monotonic() - left < 1, "the backend kept the Gemini stream open"
        time.sleep(0.02)
    assert fake.streams[-1].client_left and len(fake.streams[-1].sent_at) == 1
    lines = log_lines(server, "leaves-early")
    (line,) = [entry for entry in lines if entry["request_id"] == "leaves-early" and entry["message"] == "request"]
    assert line["stream_end"] == "cancelled" and line["gemini_outcome"] == "cancelled"
    assert line["gemini_tokens"]["prompt"] == 57  # the usage known when the client left
    assert "gemini_streams_in_flight 0.0" in client.get("/metrics").text


@pytest.fixture
def capped(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A deadline past the stream's 3 s, so only the stream's end frees the slot.
    env = server_env(fake, GEMINI_MAX_CONCURRENCY="1", GEMINI_TIMEOUT_SECONDS="10", GEMINI_QUEUE_WAIT_SECONDS="0.2")
    running = start_server(tmp_path_factory.mktemp("capped"), env)
    yield running
    stop_server(running)


@pytest.mark.slow
def test_a_stream_holds_its_slot_until_it_ends(capped: Server, fake: FakeGemini) -> None:
    fake.reset()
    fake.push(Fault("ok", chunks=4, chunk_delay=8))  # held past the 0.2 s wait for a slot, until released
    sock = raw_stream_request(capped.url)
    read_until(sock, b"event: delta")
    with httpx.Client(base_url=capped.url, timeout=10, headers=PROOF) as http:
        refused = http.post(PATH, json=TASK, headers=STREAM)
        assert refused.status_code == 503 and refused.headers["content-type"] == "application/json"
        assert refused.headers["retry-after"] == "1"
        fake.release()
        read_until(sock, b"event: result")
        sock.close()
        assert events(http.post(PATH, json=TASK, headers=STREAM))[-1][0] == "result"


@pytest.mark.parametrize(
    "accept, wanted",
    [
        ("text/event-stream", True),
        ("application/json, Text/Event-Stream; q=0.5", True),
        ("text/event-stream;q=0", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_only_an_explicit_accept_asks_for_a_stream(accept: str, wanted: bool) -> None:
    assert wants_events(accept) is wanted


def test_a_client_gone_mid_write_ends_the_stream_and_frees_the_slot() -> None:
    """The write that finds the client gone (uvicorn raises OSError) closes the events, hence the Gemini call."""
    closed: list[str] = []

    async def events() -> Any:
        try:
            yield b"event: delta\ndata: {}\n\n"
            yield b"event: delta\ndata: {}\n\n"
        finally:
            closed.append("events")

    async def receive() -> dict[str, Any]:
        await anyio.sleep(60)  # the disconnect is never reported: only the write fails
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise OSError("client gone")

    async def serve() -> None:
        with anyio.fail_after(5):
            await EventStreamResponse(events(), on_close=lambda: closed.append("slot"))({"type": "http"}, receive, send)

    anyio.run(serve)
    assert closed == ["events", "slot"]
