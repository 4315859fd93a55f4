"""One Gemini call through google-genai's async client, with its failures mapped to ours."""

import json
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

import httpx2
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from errors import UpstreamError, failed, from_status, rpc_details, timed_out, unreachable, unusable_answer
from schemas import Answer, CallSpec, Piece, TokenUsage
from settings import Settings
from structured_output import gemini_schema

SDK = "google-genai"
logger = logging.getLogger(__name__)
T = TypeVar("T")


class GeminiClient:
    def __init__(self, settings: Settings) -> None:
        self._model = settings.gemini_model
        self._thinking_level = settings.gemini_thinking_level
        self._client = genai.Client(
            api_key=settings.gemini_api_key.get_secret_value(),
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url,
                api_version="v1beta",
                # The SDK needs a timeout of its own (it has none); the request's deadline is
                # enforced around the call, this only stops a connection that is left hanging.
                timeout=int(settings.gemini_timeout_seconds * 1000),
            ),
        )
        self._configs: dict[CallSpec, types.GenerateContentConfig] = {}

    def _config(self, call: CallSpec) -> types.GenerateContentConfig:
        """The prompt's config, built on its first call: building one per call costs CPU on every request."""
        config = self._configs.get(call)
        if config is None:
            wanted = call.config
            # The prompt's level, else GEMINI_THINKING_LEVEL; left out when both are empty, so the model
            # thinks as much as it does by default.
            level = wanted.thinking_level or self._thinking_level
            thinking = types.ThinkingConfig(thinking_level=types.ThinkingLevel(level.upper())) if level else None
            config = self._configs[call] = types.GenerateContentConfig(
                response_mime_type="application/json" if call.response_schema is not None else None,
                response_json_schema=gemini_schema(call.response_schema),
                temperature=wanted.temperature,
                top_p=wanted.top_p,
                top_k=wanted.top_k,
                max_output_tokens=wanted.max_output_tokens,
                stop_sequences=wanted.stop_sequences,
                seed=wanted.seed,
                presence_penalty=wanted.presence_penalty,
                frequency_penalty=wanted.frequency_penalty,
                automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),  # no tools here
                thinking_config=thinking,
            )
        return config

    def _request(self, call: CallSpec, system: str) -> tuple[types.GenerateContentConfig, str]:
        config = self._config(call)
        if system:  # a copy without validation: cheap, and the prompt's config stays as built
            config = config.model_copy(update={"system_instruction": system})
        return config, call.model or self._model

    async def generate(self, call: CallSpec, system: str, user: str, timeout: float) -> Answer:
        """One attempt. Returns the answer's text and usage; raises UpstreamError. The caller enforces `timeout`."""
        config, model = self._request(call, system)
        response = await self._call(
            self._client.aio.models.generate_content(model=model, contents=user, config=config), model
        )
        usage = _usage(response.usage_metadata)
        try:
            return Answer(_answer_text(response), usage, response.model_version or "")
        except UpstreamError as exc:
            exc.usage = usage  # a blocked or truncated answer still cost its tokens
            raise

    async def stream(self, call: CallSpec, system: str, user: str) -> AsyncIterator[Piece]:
        """One streamed attempt: its pieces as Gemini sends them; raises UpstreamError (with the usage known so
        far). The caller enforces the deadline and closes this iterator, which closes the connection to Gemini."""
        config, model = self._request(call, system)
        usage: TokenUsage | None = None
        finished = False
        chunks: AsyncIterator[types.GenerateContentResponse] | None = None
        try:
            chunks = await self._call(
                self._client.aio.models.generate_content_stream(model=model, contents=user, config=config), model
            )
            while (chunk := await self._call(anext(chunks, None), model)) is not None:
                usage = _usage(chunk.usage_metadata) or usage
                text, finished = _piece(chunk)
                yield Piece(text, usage)
            if not finished:  # the SDK ends quietly when the connection is cut mid-stream
                raise unreachable("the stream ended before Gemini finished its answer")
        except UpstreamError as exc:
            exc.usage = exc.usage or usage  # what the chunks so far cost
            raise
        finally:
            if chunks is not None:
                await chunks.aclose()  # type: ignore[attr-defined]  # an async generator: closes the connection

    async def check_model(self, model: str | None = None) -> list[str]:
        """The generation methods Gemini says the model (GEMINI_MODEL by default) supports (a models
        `get`: costs no tokens)."""
        model = model or self._model
        found = await self._call(self._client.aio.models.get(model=model), model)
        return list(found.supported_actions or [])

    async def _call(self, call: Awaitable[T], model: str) -> T:
        """Await one request to Gemini, with whatever it raises mapped to an UpstreamError."""
        try:
            return await call
        except genai_errors.APIError as exc:
            raise _from_api_error(exc, model) from None
        except httpx2.TimeoutException as exc:
            raise timed_out(f"{type(exc).__name__}") from None
        except httpx2.TransportError as exc:
            raise unreachable(f"{type(exc).__name__}: {exc}") from None
        except json.JSONDecodeError:
            raise unusable_answer("not JSON") from None
        except Exception as exc:  # anything else the SDK raises: log it whole, answer 502
            logger.exception("unexpected error from google-genai")
            raise failed(type(exc).__name__) from None

    async def aclose(self) -> None:
        await self._client.aio.aclose()


def _answer_text(response: types.GenerateContentResponse) -> str:
    text, _ = _piece(response)  # a whole answer is checked as its last chunk is
    if not text:
        raise unusable_answer("empty text")
    return text


def _piece(chunk: types.GenerateContentResponse) -> tuple[str, bool]:
    """One streamed chunk's (or a whole answer's) text and whether it is the last; raises UpstreamError when
    Gemini stopped for another reason than the answer being complete (blocked, cut at the token limit)."""
    if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
        raise unusable_answer(f"blocked: {chunk.prompt_feedback.block_reason}")
    if not chunk.candidates:
        raise unusable_answer("no candidates")
    candidate = chunk.candidates[0]
    if candidate.finish_reason not in (None, types.FinishReason.STOP):
        raise unusable_answer(f"finish reason {candidate.finish_reason}")
    parts = candidate.content.parts if candidate.content and candidate.content.parts else []
    # Thinking models may add parts marked `thought` (a summary of their thinking): not the answer.
    return "".join(part.text for part in parts if part.text and not part.thought), candidate.finish_reason is not None


def _usage(metadata: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage | None:
    if metadata is None or not metadata.total_token_count:
        return None  # Gemini reported nothing
    return TokenUsage(
        prompt=metadata.prompt_token_count or 0,
        answer=metadata.candidates_token_count or 0,
        thinking=metadata.thoughts_token_count or 0,
        total=metadata.total_token_count or 0,
    )


def _from_api_error(exc: genai_errors.APIError, model: str) -> UpstreamError:
    headers = getattr(exc.response, "headers", None) or {}
    return from_status(
        exc.code or 502,
        f"gemini {exc.code} {exc.status}: {exc.message}",
        model=model,
        details=rpc_details(exc.details),
        status=exc.status or "",
        retry_after_header=headers.get("retry-after", ""),
    )
