"""`GET /metrics` parsed with prometheus_client's own parser: each counter moves by what was done."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import API_KEY, Server, log_lines, server_env, start_server, stop_server
from fake_gemini import DEFAULT_USAGE, FakeGemini, Fault
from prometheus_client.parser import text_string_to_metric_families

TASK = {"title": "Write the quarterly report"}
ROUTE = "/api/breakdown-task"
PROMPT = "breakdown-task"  # the prompt label of its Gemini metrics
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    # A request is counted just after its log line is written, in the same step of the server's event loop:
    # once every noted answer's line is in the log, a new request sees them all counted.
    log_lines(server)
    response = httpx.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def test_requests_are_counted_by_route_template_and_status(client: httpx.Client, server: Server) -> None:
    before = scrape(server)
    assert client.post(ROUTE, json=TASK).status_code == 200
    assert client.post(ROUTE, json=TASK).status_code == 200
    assert client.post(ROUTE, json={"title": ""}).status_code == 422
    assert client.get("/wp-login.php").status_code == 404
    assert client.get("/.env?x=1").status_code == 404
    after = scrape(server)
    assert moved(before, after, "http_requests_total", route=ROUTE, method="POST", status="200") == 2
    assert moved(before, after, "http_requests_total", route=ROUTE, method="POST", status="422") == 1
    assert moved(before, after, "http_request_duration_seconds_count", route=ROUTE) == 3
    # Unknown paths share one label: a scan cannot create a series per path.
    assert moved(before, after, "http_requests_total", route="unmatched", method="GET", status="404") == 2
    assert not [key for key in after if any("wp-login" in label or ".env" in label for _, label in key[1])]


def test_gemini_attempts_by_outcome_and_tokens_by_kind(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    before = scrape(server)
    fake.push(Fault("error", 503))  # retried: one 503 attempt, then one ok
    assert client.post(ROUTE, json=TASK).status_code == 200
    fake.push(Fault("bad_key"))
    assert client.post(ROUTE, json=TASK).status_code == 502
    fake.push(Fault("ok", items=[{"title": "Only one"}]))  # answered, with tokens, but unusable
    assert client.post(ROUTE, json=TASK).status_code == 502
    after = scrape(server)
    assert moved(before, after, "gemini_attempts_total", prompt=PROMPT, outcome="ok") == 1
    assert moved(before, after, "gemini_attempts_total", prompt=PROMPT, outcome="503") == 1
    assert moved(before, after, "gemini_attempts_total", prompt=PROMPT, outcome="502") == 2
    answered = 2  # the ok attempt and the unusable one reported usage; errors carry none
    for kind, field in [
        ("prompt", "promptTokenCount"),
        ("answer", "candidatesTokenCount"),
        ("thinking", "thoughtsTokenCount"),
    ]:
        assert moved(before, after, "gemini_tokens_total", prompt=PROMPT, kind=kind) == answered * DEFAULT_USAGE[field]


def test_metrics_are_not_in_the_openapi_schema(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert ROUTE in paths and "/metrics" not in paths


@pytest.fixture
def capped_server(fake: FakeGemini, tmp_path: Path) -> Iterator[Server]:
    """A replica with two Gemini slots and a deadline longer than the held calls."""
    fake.reset()
    env = server_env(fake, GEMINI_MAX_CONCURRENCY="2", GEMINI_TIMEOUT_SECONDS="10", GEMINI_QUEUE_WAIT_SECONDS="0.2")
    server = start_server(tmp_path, env)
    yield server
    stop_server(server)


@pytest.mark.slow
def test_calls_in_flight_against_the_cap_and_refusals(capped_server: Server, fake: FakeGemini) -> None:
    with capped_server.client() as client:
        before = scrape(capped_server)
        assert value(before, "gemini_max_concurrency") == 2
        assert value(before, "gemini_calls_in_flight") == 0
        fake.push(Fault("slow", delay=8), Fault("slow", delay=8))  # held until released below
        statuses: list[int] = []
        held = [
            threading.Thread(target=lambda: statuses.append(client.post(ROUTE, json=TASK).status_code))
            for _ in range(2)
        ]
        for thread in held:
            thread.start()
        deadline = time.monotonic() + 10
        while fake.in_flight < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        during = scrape(capped_server)
        refused = client.post(ROUTE, json=TASK)  # both slots busy: waits GEMINI_QUEUE_WAIT_SECONDS, then 503
        fake.release()
        for thread in held:
            thread.join()
        after = scrape(capped_server)
    assert value(during, "gemini_calls_in_flight") == 2
    assert refused.status_code == 503 and statuses == [200, 200]
    assert moved(before, after, "gemini_refused_at_cap_total", prompt=PROMPT) == 1
    assert value(after, "gemini_calls_in_flight") == 0
    assert API_KEY not in str(after)
