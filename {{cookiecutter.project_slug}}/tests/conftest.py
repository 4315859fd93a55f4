"""Fixtures: a fake Gemini on loopback, and the real app in a real uvicorn process pointed at it."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import httpx
import launcher
import pytest
{%- if cookiecutter.caller_check != "none" %}
from caller_keys import session_caller
{%- endif %}
from fake_gemini import GENERATES, FakeGemini

from settings import Settings

{%- if cookiecutter.caller_check != "none" %}

# The API refuses callers without proof (caller_check.py). The tests' requests carry a valid token signed
# by a test key, which every server they start finds at a local JWKS server (tests/caller_keys.py).
CALLER_SETTINGS, PROOF = session_caller()
{%- else %}

CALLER_SETTINGS: dict[str, str] = {}
PROOF: dict[str, str] = {}  # headers every API request carries: the API asks no proof of its callers
{%- endif %}

{%- if cookiecutter.spend_guard == "yes" %}
# The spend guard (spend_guard.py) is off in the tests that are not about it: every limit 0, so it
# needs no Redis. tests/test_spend_guard.py runs it against a real redis-server.
GUARD_OFF = {
    "SPEND_TOKENS_PER_DAY": "0",
    "SPEND_TOKENS_PER_CALLER_PER_DAY": "0",
    "SPEND_REQUESTS_PER_CALLER_PER_MINUTE": "0",
}
{%- endif %}

PROJECT = Path(__file__).resolve().parent.parent
# A key nobody would type by accident: tests search responses and logs for it.
API_KEY = "test-key-7f3a9c1e5b-never-leak"
# Short, so the timeout tests are quick; the deadline logic is the same at 30 s.
TIMEOUT_SECONDS = 2.0
# Shorter still for the tests that wait for the deadline to pass (short_client): room for one quick answer.
SHORT_TIMEOUT_SECONDS = 1.0
MODEL = Settings.model_fields["gemini_model"].default
RETIRED_MODEL = "gemini-1.5-flash"  # shut down in 2025: Gemini answers 404 NOT_FOUND for it
EMBEDDING_MODEL = "gemini-embedding-001"  # served, but cannot generateContent


@dataclass
class Server:
    url: str
    process: BaseProcess
    log_path: Path
    answered: list[str] = field(default_factory=list)  # the request ids of the answers the tests received

    def log(self) -> str:
        return self.log_path.read_text()

    def client(self) -> httpx.Client:
        """A client for this server whose every answer is noted, so log_lines() can wait for its log line."""
        return httpx.Client(base_url=self.url, timeout=30, headers=PROOF, event_hooks={"response": [self.note]})

    def note(self, response: httpx.Response) -> None:
        """Note an answer of this server: log_lines() waits until its request's line is written."""
        if "x-request-id" in response.headers:
            self.answered.append(response.headers["x-request-id"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(tmp_dir: Path, env: dict[str, str], app: str = "main:app") -> Server:
    """Run `uvicorn main:app` (or another `app` in tmp_dir) through the launcher, and wait until it answers."""
    port = free_port()
    log_path = tmp_dir / f"uvicorn-{port}.log"
    prefixes = ("GEMINI_", "ALLOWED_", "APP_CHECK_", "OIDC_"{% if cookiecutter.spend_guard == "yes" %}, "SPEND_", "REDIS_"{% endif %})
    full_env = {key: value for key, value in os.environ.items() if not key.startswith(prefixes)}
    full_env.update(env)
    process = launcher.start(
        ["-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_dir,  # no .env there: the tests set everything through the environment
        env={**full_env, "PYTHONPATH": str(PROJECT)},
        stdout=log_path,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.exitcode is not None:
            raise RuntimeError(f"uvicorn exited early:\n{log_path.read_text()}")
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return Server(url, process, log_path)
        except httpx.HTTPError:
            time.sleep(0.02)
    process.kill()
    raise TimeoutError(f"uvicorn did not start:\n{log_path.read_text()}")


def server_env(fake: FakeGemini, **settings: str) -> dict[str, str]:
    """The environment of a server that talks to `fake`, with `settings` (e.g. GEMINI_MODEL=...) on top."""
    return {
        "GEMINI_API_KEY": API_KEY,
        "GEMINI_BASE_URL": fake.base_url,
        "GEMINI_TIMEOUT_SECONDS": str(TIMEOUT_SECONDS),
        # Retries are counted, not timed: a short back-off instead of 0.25 s, 0.5 s, ...
        "GEMINI_RETRY_BACKOFF_SECONDS": "0.01",
        **CALLER_SETTINGS,
{%- if cookiecutter.spend_guard == "yes" %}
        **GUARD_OFF,
{%- endif %}
        **settings,
    }


def log_lines(server: Server, *request_ids: str) -> list[dict[str, Any]]:
    """The server's JSON log lines, once the request line of every answer noted (Server.note) and of each of
    `request_ids` is written: uvicorn writes it just after sending the answer."""
    waited = {*server.answered, *request_ids}
    deadline = time.monotonic() + 10
    while True:
        text = server.log()
        # Only whole lines: the server may be halfway through writing the last one.
        whole = text[: text.rfind("\n") + 1]
        lines = [json.loads(line) for line in whole.splitlines() if line.startswith("{")]
        logged = {line.get("request_id") for line in lines if line.get("message") == "request"}
        if waited <= logged or time.monotonic() > deadline or server.process.exitcode is not None:
            server.answered.clear()  # all written: the next call need not look for them again
            return lines
        time.sleep(0.01)


def stop_server(server: Server) -> None:
    server.process.terminate()
    server.process.join(timeout=10)
    if server.process.exitcode is None:
        server.process.kill()
        server.process.join()


@pytest.fixture(scope="session")
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=API_KEY, models={MODEL: GENERATES, EMBEDDING_MODEL: ["embedContent"]}) as server:
        yield server


@pytest.fixture(scope="session")
def server(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("server"), server_env(fake))
    yield running
    stop_server(running)


@pytest.fixture
def client(server: Server, fake: FakeGemini) -> Iterator[httpx.Client]:
    fake.reset()  # each test starts with no queued faults and no recorded requests
    with server.client() as http:
        yield http


@pytest.fixture(scope="session")
def short_deadline_server(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = server_env(fake, GEMINI_TIMEOUT_SECONDS=str(SHORT_TIMEOUT_SECONDS))
    running = start_server(tmp_path_factory.mktemp("short-deadline"), env)
    yield running
    stop_server(running)


@pytest.fixture
def short_client(short_deadline_server: Server, fake: FakeGemini) -> Iterator[httpx.Client]:
    """A client of a server whose deadline is SHORT_TIMEOUT_SECONDS, for the tests that wait for it to pass."""
    fake.reset()
    with short_deadline_server.client() as http:
        yield http
    fake.release()  # the held call the test left behind ends now, not seconds into the next test
