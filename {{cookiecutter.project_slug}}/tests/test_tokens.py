"""Each request's log line carries the tokens Gemini reported for it, summed over its attempts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from conftest import Server, log_lines
from fake_gemini import DEFAULT_USAGE, FakeGemini, Fault

from errors import UpstreamError
from gemini_calls import GeminiCalls
from prompts import PROMPTS_DIR, load_prompts
from request_log import collecting
from schemas import Answer, CallSpec, TokenUsage
from settings import Settings

TASK = {"title": "Renew the passport", "description": "it expires in May"}
USAGE = {"promptTokenCount": 311, "candidatesTokenCount": 97, "thoughtsTokenCount": 45, "totalTokenCount": 453}


def request_line(server: Server, request_id: str) -> dict[str, Any]:
    (line,) = [
        line for line in log_lines(server) if line.get("message") == "request" and line["request_id"] == request_id
    ]
    return line


def post(client: httpx.Client, request_id: str) -> httpx.Response:
    return client.post("/api/breakdown-task", json=TASK, headers={"X-Request-ID": request_id})


def test_log_line_carries_the_tokens_gemini_reported(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    fake.usage = USAGE
    assert post(client, "tokens-once").status_code == 200
    line = request_line(server, "tokens-once")
    assert line["gemini_tokens"] == {"prompt": 311, "answer": 97, "thinking": 45, "total": 453}
    assert "passport" not in server.log() and "expires in May" not in server.log()  # never the task's text


def test_failed_attempts_add_no_tokens_to_a_retried_request(
    client: httpx.Client, fake: FakeGemini, server: Server
) -> None:
    fake.push(Fault("error", 503), Fault("error", 500))
    assert post(client, "tokens-retried").status_code == 200
    line = request_line(server, "tokens-retried")
    assert line["gemini_attempts"] == 3
    assert line["gemini_tokens"]["total"] == DEFAULT_USAGE["totalTokenCount"]  # the error bodies carry no usage


def test_an_unusable_answer_still_logs_what_it_cost(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    fake.push(Fault("truncated"))
    assert post(client, "tokens-truncated").status_code == 502
    assert request_line(server, "tokens-truncated")["gemini_tokens"]["answer"] == DEFAULT_USAGE["candidatesTokenCount"]


def test_no_tokens_field_when_gemini_reported_none(client: httpx.Client, fake: FakeGemini, server: Server) -> None:
    fake.push(Fault("error", 400))
    assert post(client, "tokens-none").status_code == 502
    assert "gemini_tokens" not in request_line(server, "tokens-none")


class ScriptedClient:
    """Stands in for GeminiClient: each attempt raises or answers as scripted."""

    def __init__(self, *outcomes: UpstreamError | Answer) -> None:
        self.outcomes = list(outcomes)

    async def generate(self, call: CallSpec, system: str, user: str, timeout: float) -> Answer:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, UpstreamError):
            raise outcome
        return outcome


def test_tokens_are_summed_over_every_attempt_that_reported_them() -> None:
    """Two answered attempts (the first failing in a retryable way after Gemini counted its tokens)."""
    first = UpstreamError(503, "busy", "test", retryable=True, retry_after=0.01, usage=TokenUsage(10, 5, 3, 18))
    second = Answer('[{"title": "a"}, {"title": "b"}]', TokenUsage(12, 6, 4, 22))
    settings = Settings(gemini_api_key="unused", gemini_timeout_seconds=5)
    calls = GeminiCalls(ScriptedClient(first, second), settings)  # type: ignore[arg-type]
    prompt = load_prompts(PROMPTS_DIR, settings.prompt_input_max_chars)["breakdown-task"]

    async def suggest() -> dict[str, Any]:
        with collecting() as noted:
            assert len(await calls.answer(prompt, prompt.input_model(title="t"))) == 2
        return noted

    noted = asyncio.run(suggest())
    assert noted["gemini_attempts"] == 2 and noted["gemini_outcome"] == "ok"
    assert noted["gemini_tokens"] == {"prompt": 22, "answer": 11, "thinking": 7, "total": 40}
