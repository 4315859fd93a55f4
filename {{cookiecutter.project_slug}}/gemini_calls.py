"""Serve one prompt endpoint's request: one Gemini call with retries, a deadline and the process's cap.

The same code serves every prompt; what differs (messages, model, config, schemas) comes from the prompt.
"""

import asyncio
import logging
import random
from typing import Any

from pydantic import BaseModel, ValidationError

import metrics
from errors import UpstreamError, overloaded, timed_out, unusable_answer
from gemini_client import GeminiClient
from prompts import Prompt
from request_log import note
from schemas import TokenUsage
from settings import Settings

logger = logging.getLogger(__name__)

BACKOFF_BASE_SECONDS = 0.25
BACKOFF_MAX_SECONDS = 4.0
QUEUE_WAIT_SECONDS = 2.0  # how long a request may wait for a free Gemini slot before 503


class _Tally:
    """How one request's Gemini attempts went, for its log line and the metrics. Tokens add up
    over attempts: a retried request costs every attempt that Gemini answered."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.tokens = TokenUsage()

    def attempt_ended(self, outcome: str | int, usage: TokenUsage | None) -> None:
        note(gemini_outcome=outcome)
        metrics.observe_attempt(self.prompt_id, outcome, usage)
        if usage is not None:
            self.tokens += usage
            note(gemini_tokens=self.tokens.as_fields())


class GeminiCalls:
    """One per process, shared by every prompt endpoint: its semaphore is the process's one
    GEMINI_MAX_CONCURRENCY cap, so a second endpoint cannot double it."""

    def __init__(self, client: GeminiClient, settings: Settings) -> None:
        self._client = client
        self._model = settings.gemini_model
        self._rerouted: set[tuple[str, str]] = set()  # (asked, served) pairs already warned about
        self._timeout = settings.gemini_timeout_seconds
        self._attempts = settings.gemini_max_attempts
        self._slots = asyncio.Semaphore(settings.gemini_max_concurrency)
        metrics.GEMINI_MAX_CONCURRENCY.set(settings.gemini_max_concurrency)

    async def answer(self, prompt: Prompt, body: BaseModel) -> Any:
        """The prompt's validated answer for this validated request body; raises UpstreamError."""
        note(prompt=prompt.id)
        system, user = prompt.messages(body.model_dump(by_alias=True))
        try:
            async with asyncio.timeout(QUEUE_WAIT_SECONDS):
                await self._slots.acquire()
        except TimeoutError:
            note(gemini_attempts=0, gemini_outcome=503)
            metrics.GEMINI_REFUSED.labels(prompt.id).inc()
            raise overloaded() from None
        tally = _Tally(prompt.id)
        try:
            with metrics.GEMINI_IN_FLIGHT.track_inprogress():
                async with asyncio.timeout(self._timeout):
                    return await self._generate_with_retries(prompt, system, user, tally)
        except TimeoutError:
            tally.attempt_ended(504, None)  # the attempt the deadline cut short
            raise timed_out() from None
        finally:
            self._slots.release()

    async def _generate_with_retries(self, prompt: Prompt, system: str, user: str, tally: "_Tally") -> Any:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        for attempt in range(1, self._attempts + 1):
            note(gemini_attempts=attempt)
            try:
                answer = await self._client.generate(prompt.call, system, user, timeout=deadline - loop.time())
                try:
                    value = prompt.parse_answer(answer.text)
                except ValidationError as exc:
                    error = unusable_answer(f"did not match the schema: {exc.error_count()} errors")
                    error.usage = answer.usage  # it cost its tokens all the same
                    raise error from None
            except UpstreamError as exc:
                tally.attempt_ended(exc.status_code, exc.usage)
                if exc.quota:
                    metrics.GEMINI_QUOTA.labels(exc.quota).inc()
                if not exc.retryable or attempt == self._attempts:
                    raise
                delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                if loop.time() + delay >= deadline:
                    raise  # waiting would pass the deadline: answer now, with Retry-After if known
                logger.warning(
                    "gemini attempt failed, retrying",
                    extra={
                        "fields": {
                            "prompt": prompt.id,
                            "attempt": attempt,
                            "cause": exc.cause,
                            "retry_in": round(delay, 3),
                        }
                    },
                )
                await asyncio.sleep(delay)
            else:
                tally.attempt_ended("ok", answer.usage)
                self._served_by(prompt, answer.model_version)
                return value
        raise AssertionError("unreachable: the loop returns or raises")

    def _served_by(self, prompt: Prompt, version: str) -> None:
        """Log and count the model that really answered. Gemini may serve a deprecated id with a newer
        model (billed at its price) instead of refusing it: say so once per process, and keep serving."""
        note(gemini_model_version=version or None)
        metrics.GEMINI_ANSWERS_BY_MODEL.labels(prompt.id, version or "unknown").inc()
        asked = (prompt.call.model or self._model).removeprefix("models/")
        served = version.removeprefix("models/")
        if served and not served.startswith(asked) and (asked, served) not in self._rerouted:
            self._rerouted.add((asked, served))
            logger.warning(
                "Gemini answered with another model than the one configured: GEMINI_MODEL may be deprecated",
                extra={"fields": {"prompt": prompt.id, "gemini_model": asked, "gemini_model_version": served}},
            )


def _backoff(attempt: int) -> float:
    """Exponential back-off with jitter, so replicas that failed together do not retry together."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
