"""Serve one prompt endpoint's request: one Gemini call with retries, a deadline and the process's cap.

The same code serves every prompt; what differs (messages, model, config, schemas) comes from the prompt.
A streamed request (`GeminiCalls.open_stream`) follows the same rules, except that once a piece of the
answer has been sent nothing is retried: the client would see it twice.
"""

import asyncio
import json
import logging
import random
from collections.abc import AsyncGenerator
from typing import Any

from pydantic import BaseModel, ValidationError

import metrics
import spend_guard
from errors import UpstreamError, log_failure, overloaded, timed_out, unusable_answer
from gemini_client import GeminiClient
from prompts import Prompt
from request_log import note
from schemas import TokenUsage
from settings import Settings

logger = logging.getLogger(__name__)

BACKOFF_MAX_SECONDS = 4.0


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
        self._backoff_seconds = settings.gemini_retry_backoff_seconds
        self._slots = asyncio.Semaphore(settings.gemini_max_concurrency)
        self._queue_wait = settings.gemini_queue_wait_seconds  # then 503
        metrics.GEMINI_MAX_CONCURRENCY.set(settings.gemini_max_concurrency)

    async def _take_slot(self, prompt: Prompt) -> None:
        try:
            async with asyncio.timeout(self._queue_wait):
                await self._slots.acquire()
        except TimeoutError:
            note(gemini_attempts=0, gemini_outcome=503)
            metrics.GEMINI_REFUSED.labels(prompt.id).inc()
            raise overloaded() from None

    async def answer(self, prompt: Prompt, body: BaseModel) -> Any:
        """The prompt's validated answer for this validated request body; raises UpstreamError."""
        note(prompt=prompt.id)
        system, user = prompt.messages(body.model_dump(by_alias=True))
        await self._take_slot(prompt)
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
            await spend_guard.record(tally.tokens)  # every attempt's tokens, to the caller's and the deployment's day

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
                delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt, self._backoff_seconds)
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

    async def open_stream(self, prompt: Prompt, body: BaseModel) -> "Stream":
        """A slot for one streamed answer, or UpstreamError (503) when none frees up in time: that refusal is an
        ordinary HTTP answer. The caller must call the stream's close() whether or not it was consumed."""
        note(prompt=prompt.id, stream=True)
        system, user = prompt.messages(body.model_dump(by_alias=True))
        await self._take_slot(prompt)
        metrics.GEMINI_IN_FLIGHT.inc()
        metrics.STREAMS_IN_FLIGHT.inc()
        return Stream(self, prompt, system, user)

    def _release(self) -> None:
        metrics.STREAMS_IN_FLIGHT.dec()
        metrics.GEMINI_IN_FLIGHT.dec()
        self._slots.release()


class Stream:
    """One streamed answer, holding its concurrency slot until close(). `events()` gives the server-sent
    events: `delta` for each piece of text, then exactly one `result` (the same body the plain call answers)
    or `error` (`{"status", "detail"}`: what the plain call would have answered)."""

    def __init__(self, calls: GeminiCalls, prompt: Prompt, system: str, user: str) -> None:
        self._calls = calls
        self._prompt = prompt
        self._system = system
        self._user = user
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._calls._release()

    async def events(self) -> AsyncGenerator[bytes, None]:  # noqa: UP043 - Python 3.11 needs both arguments
        """Raises nothing but cancellation: every failure becomes an `error` event. Closing this generator (the
        client left) closes the connection to Gemini."""
        calls, prompt = self._calls, self._prompt
        tally = _Tally(prompt.id)
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + calls._timeout
        sent = False  # a delta went out: from here on, nothing may be retried
        ended = False  # the last event went out
        usage: TokenUsage | None = None  # what the current attempt cost so far
        try:
            for attempt in range(1, calls._attempts + 1):
                note(gemini_attempts=attempt)
                usage, texts = None, []
                pieces = calls._client.stream(prompt.call, self._system, self._user)
                try:
                    try:
                        while True:
                            async with asyncio.timeout_at(deadline):  # never around a yield: see below
                                piece = await anext(pieces, None)
                            if piece is None:
                                break
                            usage = piece.usage or usage
                            if piece.text:
                                if not sent:
                                    sent = True
                                    metrics.STREAM_FIRST_DELTA.labels(prompt.id).observe(loop.time() - started)
                                    note(first_delta_ms=round((loop.time() - started) * 1000, 1))
                                texts.append(piece.text)
                                yield event("delta", {"text": piece.text})
                    finally:
                        await pieces.aclose()  # type: ignore[attr-defined]  # closes the connection to Gemini
                    value = _parse(prompt, "".join(texts), usage)
                except UpstreamError as exc:
                    tally.attempt_ended(exc.status_code, exc.usage or usage)
                    usage = None  # counted
                    if sent or not exc.retryable or attempt == calls._attempts:
                        raise
                    backoff = calls._backoff_seconds
                    delay = exc.retry_after if exc.retry_after is not None else _backoff(attempt, backoff)
                    if loop.time() + delay >= deadline:
                        raise
                    logger.warning(
                        "gemini attempt failed before the first delta, retrying",
                        extra={"fields": {"prompt": prompt.id, "attempt": attempt, "cause": exc.cause}},
                    )
                    await asyncio.sleep(delay)
                else:
                    tally.attempt_ended("ok", usage)
                    ended = True
                    note(stream_end="result")
                    await spend_guard.record(tally.tokens)
                    yield b"event: result\ndata: " + prompt.answer.dump_json(value) + b"\n\n"
                    return
        except TimeoutError:  # the deadline passed while waiting for Gemini's next piece
            tally.attempt_ended(504, usage)
            error = timed_out()
        except UpstreamError as exc:
            error = exc
        except BaseException:  # cancelled, or closed at a yield: the client left
            if not ended:
                tally.attempt_ended("cancelled", usage)
                note(stream_end="cancelled")
            # What the stream cost so far still counts against the budgets, even though the client left.
            await asyncio.shield(spend_guard.record(tally.tokens))
            raise
        log_failure(error)
        await spend_guard.record(tally.tokens)
        ended = True
        note(stream_end="error", status_sent=error.status_code)
        yield event("error", {"status": error.status_code, "detail": error.detail})


def event(name: str, data: dict[str, Any]) -> bytes:
    """One server-sent event. JSON never holds a raw newline, so `data` is one line."""
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def _parse(prompt: Prompt, text: str, usage: TokenUsage | None) -> Any:
    if not text:
        error = unusable_answer("empty text")
    else:
        try:
            return prompt.parse_answer(text)
        except ValidationError as exc:
            error = unusable_answer(f"did not match the schema: {exc.error_count()} errors")
    error.usage = usage  # it cost its tokens all the same
    raise error


def _backoff(attempt: int, first: float) -> float:
    """Exponential back-off with jitter, so replicas that failed together do not retry together."""
    ceiling = min(BACKOFF_MAX_SECONDS, first * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)
