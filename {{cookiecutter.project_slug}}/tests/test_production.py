"""Gemini as it answers in production: quotas, re-routed models, key errors, thought parts, the schema it
is sent, the thinking levels each model refuses (model_capabilities.py), and recorded bodies
(tests/fixtures/gemini/bodies.json) through whichever SDK this project uses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import API_KEY, MODEL, Server, log_lines, server_env, start_server, stop_server
from fake_gemini import FakeGemini, Fault
from test_metrics import moved, scrape

import gemini_client
from structured_output import DOCUMENTED

TASK = {"title": "Write the quarterly report"}
BODIES: dict[str, Any] = json.loads((Path(__file__).parent / "fixtures" / "gemini" / "bodies.json").read_text())


# google-generativeai's transport (google-auth's AuthorizedSession) asks twice more after a 401, by itself,
# to refresh credentials an API key does not have; we never retry a key problem.
CALLS_PER_401 = 1 if gemini_client.SDK == "google-genai" else 3


def post(client: httpx.Client, request_id: str) -> httpx.Response:
    return client.post("/api/breakdown-task", json=TASK, headers={"X-Request-ID": request_id})


def lines_of(server: Server, request_id: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(server) if line.get("request_id") == request_id]


def recorded(name: str) -> Fault:
    entry = BODIES[name]
    return Fault("raw", code=entry["status"], text=json.dumps(entry["body"]))


# fault, client status, words in the detail, Retry-After given, the ERROR line's words, quota metric kind
QUOTAS = {
    "daily": (Fault("quota_daily"), 429, "daily gemini quota is spent", True, "AI Studio", "daily"),
    "no-retry-info": (Fault("error", 429), 429, "daily gemini quota is spent", False, "AI Studio", "unknown"),
    "limit-0": (Fault("quota_zero"), 502, "misconfigured", False, "GEMINI_MODEL", "not_on_tier"),
}


@pytest.mark.parametrize("fault, status, words, timed, todo, kind", QUOTAS.values(), ids=QUOTAS.keys())
def test_a_spent_quota_is_not_retried_and_tells_the_operator(
    client: httpx.Client,
    fake: FakeGemini,
    server: Server,
    fault: Fault,
    status: int,
    words: str,
    timed: bool,
    todo: str,
    kind: str,
) -> None:
    before = scrape(server)
    fake.push(fault, fault, fault)
    request_id = f"quota-{kind.replace('_', '-')}"  # request ids are letters, digits and '-'
    response = post(client, request_id)
    assert response.status_code == status
    assert words in response.json()["detail"].lower()
    assert fake.count == 1  # every retry would fail until the quota resets
    retry_after = response.headers.get("retry-after")
    if timed:  # until midnight Pacific time: at most a day (and a DST hour)
        assert retry_after is not None and 1 <= int(retry_after) <= 25 * 3600
    else:
        assert retry_after is None
    (error,) = [line for line in lines_of(server, request_id) if line["level"] == "ERROR"]
    assert todo in error["message"]
    assert moved(before, scrape(server), "gemini_quota_refusals_total", kind=kind) == 1


def test_a_busy_minute_is_still_retried(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    before = scrape(server)
    fake.push(Fault("error", 429, retry_after=0.2))
    assert post(client, "busy-minute").status_code == 200
    assert fake.count == 2
    assert moved(before, scrape(server), "gemini_quota_refusals_total", kind="per_minute") == 1


def test_401_is_a_key_problem(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    fake.mode = "unauthenticated"  # every call, as with a key Gemini no longer takes
    try:
        response = post(client, "auth-key")
    finally:
        fake.mode = None
    assert response.status_code == 502
    assert response.json() == {"detail": "The server is misconfigured: Gemini rejected its API key."}
    assert fake.count == CALLS_PER_401
    (error,) = [line for line in lines_of(server, "auth-key") if line["level"] == "ERROR"]
    assert "GEMINI_API_KEY" in error["message"] and "ACCESS_TOKEN_TYPE_UNSUPPORTED" not in response.text
    assert API_KEY not in server.log()


def test_unsupported_location_is_refused_once(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("location"))
    response = post(client, "location")
    assert response.status_code == 502
    assert fake.count == 1


def test_thought_parts_are_not_the_answer(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("thoughts"))
    response = post(client, "thoughts")
    assert response.status_code == 200, response.text
    assert [item["title"] for item in response.json()][0].startswith("Plan:")


def test_an_answer_in_several_parts_is_joined(client: httpx.Client, fake: FakeGemini) -> None:
    """Not every part after the first is a thought: an answer split over parts is one answer."""
    parts = [{"text": '[{"title": "First"}, '}, {"text": '{"title": "Second"}]'}]
    body = {
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}],
        "modelVersion": MODEL,
    }
    fake.push(Fault("raw", code=200, text=json.dumps(body)))
    response = post(client, "split")
    assert response.status_code == 200, response.text
    assert [item["title"] for item in response.json()] == ["First", "Second"]


def test_model_version_is_logged_and_a_reroute_warned_once(
    client: httpx.Client, fake: FakeGemini, server: Server
) -> None:
    assert post(client, "as-asked").status_code == 200
    (line,) = [line for line in lines_of(server, "as-asked") if line.get("message") == "request"]
    assert line["gemini_model_version"] == MODEL
    before = scrape(server)
    fake.push(Fault("rerouted", model_version="gemini-9.9-flash"), Fault("rerouted", model_version="gemini-9.9-flash"))
    assert post(client, "rerouted-1").status_code == 200  # still served
    assert post(client, "rerouted-2").status_code == 200
    warnings = [
        line
        for line in log_lines(server)
        if line["level"] == "WARNING" and line.get("gemini_model_version") == "gemini-9.9-flash"
    ]
    assert len(warnings) == 1 and warnings[0]["gemini_model"] == MODEL
    labels = {"prompt": "breakdown-task", "model_version": "gemini-9.9-flash"}
    assert moved(before, scrape(server), "gemini_answers_by_model_total", **labels) == 2


def keywords(node: Any) -> set[str]:
    """The keywords a schema uses at any depth (property names are names, not keywords)."""
    if isinstance(node, list):
        return set().union(*(keywords(item) for item in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found = set(node)
    for key, value in node.items():
        for sub in value.values() if key in ("properties", "$defs") else [value]:
            found |= keywords(sub)
    return found


def test_the_schema_on_the_wire_has_only_documented_keywords(client: httpx.Client, fake: FakeGemini) -> None:
    assert post(client, "schema").status_code == 200
    config = fake.requests[-1].generation_config
    schema = config.get("responseJsonSchema") or config.get("response_json_schema") or config.get("responseSchema")
    assert schema, config
    # google-generativeai sends Gemini's older OpenAPI form (its own names); google-genai JSON Schema.
    allowed = DOCUMENTED | {"nullable"}
    seen = keywords(schema)
    assert seen <= allowed, seen - allowed
    assert "minLength" not in json.dumps(schema) and "maxLength" not in json.dumps(schema)


def test_answers_are_still_checked_against_the_full_schema(client: httpx.Client, fake: FakeGemini) -> None:
    fake.push(Fault("ok", items=[{"title": "x" * 201}, {"title": "fine"}]))  # maxLength, not sent, still holds
    assert post(client, "too-long").status_code == 502


FIXTURES = {
    "quota_daily": (429, 1),
    "quota_limit_zero": (502, 1),
    "quota_per_minute": (429, 1),  # its 26 s wait passes the test's 2 s deadline: answered at once
    "api_key_invalid": (502, 1),
    "access_token_type_unsupported": (502, CALLS_PER_401),
    "answer_with_thoughts": (200, 1),
}


@pytest.mark.parametrize("name, status, calls", [(name, *want) for name, want in FIXTURES.items()], ids=FIXTURES)
def test_recorded_gemini_bodies(client: httpx.Client, fake: FakeGemini, name: str, status: int, calls: int) -> None:
    fake.push(*[recorded(name)] * calls)  # Gemini answers the same every time
    response = post(client, name.replace("_", "-"))
    assert response.status_code == status, (gemini_client.SDK, response.text)
    assert fake.count == calls
    if name == "quota_per_minute":
        assert response.headers["retry-after"] == "26"
    if name == "quota_daily":  # its RetryInfo (47 s) comes along, but the day's quota will not be back by then
        assert "daily" in response.json()["detail"] and response.headers["retry-after"] != "47"
    if status == 200:
        assert [item["title"] for item in response.json()] == ["Collect the numbers", "Write the draft", "Review it"]


@pytest.mark.parametrize(
    "thinking, words",
    [
        ({"thinkingLevel": "MINIMAL"}, "MINIMAL is not supported"),
        ({"thinkingLevel": "LOW", "thinkingBudget": 512}, "only set one of"),
    ],
)
def test_the_fake_refuses_what_gemini_refuses(fake: FakeGemini, thinking: dict[str, Any], words: str) -> None:
    fake.reset()
    known, fake.models = fake.models, None  # any id: the table decides
    try:
        response = httpx.post(
            f"{fake.base_url}/v1beta/models/gemini-3.8-flash:generateContent",
            json={"contents": [{"parts": [{"text": "hi"}]}], "generationConfig": {"thinkingConfig": thinking}},
            headers={"x-goog-api-key": API_KEY},
        )
    finally:
        fake.models = known
    assert response.status_code == 400
    assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert words in response.json()["error"]["message"]


@pytest.mark.slow
def test_a_refused_thinking_level_stops_start_up_naming_both_settings(fake: FakeGemini, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError) as failed:
        start_server(tmp_path, server_env(fake, GEMINI_MODEL="gemini-3.8-flash", GEMINI_THINKING_LEVEL="minimal"))
    (line,) = [line for line in str(failed.value).splitlines() if "Configuration error" in line]
    assert "GEMINI_THINKING_LEVEL=minimal" in line and "GEMINI_MODEL=gemini-3.8-flash" in line
    assert "low, medium, high" in line


@pytest.mark.slow
def test_an_unknown_model_starts_with_one_warning(fake: FakeGemini, tmp_path: Path) -> None:
    server = start_server(tmp_path, server_env(fake, GEMINI_MODEL="gemini-9.9-flash", GEMINI_THINKING_LEVEL="low"))
    stop_server(server)  # the warning is written while main.py is imported, before the server answers
    warnings = [line for line in log_lines(server) if "model_capabilities" in line.get("message", "")]
    assert [line["level"] for line in warnings] == ["WARNING"]
    assert warnings[0]["gemini_model"] == "gemini-9.9-flash"
