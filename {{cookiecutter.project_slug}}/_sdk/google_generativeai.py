"""One Gemini call through google-generativeai (past end of life), with its failures mapped to ours.

This SDK has no working async REST client, so each call runs in a worker thread. It gets an
explicit timeout and no retry of its own (its default retry can keep going for minutes);
the caller retries within the request's deadline instead.

Streams use the SDK's own REST streaming call (the JSON-array form of `streamGenerateContent`) one chunk
per thread hop, through its low-level client: `GenerativeModel.generate_content(stream=True)` hands each
chunk over only once the next one has arrived, and cannot be stopped while a thread waits on it.
"""

import json
import logging
import socket
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, TypeVar

import anyio
import requests

with warnings.catch_warnings():  # it announces its end of life on import; the README says so once
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai
from google.api_core import exceptions as api_exceptions
from google.generativeai import client as genai_client
from google.protobuf import json_format

from errors import UpstreamError, failed, from_status, rpc_details, timed_out, unreachable, unusable_answer
from schemas import Answer, CallSpec, Piece, TokenUsage
from settings import Settings
from structured_output import gemini_schema

SDK = "google-generativeai"
logger = logging.getLogger(__name__)
T = TypeVar("T")


class GeminiClient:
    def __init__(self, settings: Settings) -> None:
        if settings.gemini_thinking_level:
            # This SDK's GenerationConfig has no thinking field: say so once, rather than pretend.
            logger.warning(
                "GEMINI_THINKING_LEVEL is ignored: google-generativeai cannot send a thinking level",
                extra={"fields": {"gemini_thinking_level": settings.gemini_thinking_level}},
            )
        self._model_name = settings.gemini_model
        self._timeout = settings.gemini_timeout_seconds
        client_options = {"api_endpoint": settings.gemini_base_url} if settings.gemini_base_url else None
        genai.configure(
            api_key=settings.gemini_api_key.get_secret_value(), transport="rest", client_options=client_options
        )
        self._configs: dict[CallSpec, dict[str, Any]] = {}
        # Threads for blocking calls; sized like the concurrency cap (anyio's default is 40).
        self._threads = anyio.CapacityLimiter(settings.gemini_max_concurrency)

    def _config(self, call: CallSpec) -> dict[str, Any]:
        """The prompt's generation config in this SDK's form, built on its first call."""
        config = self._configs.get(call)
        if config is None:
            ignored = [name for name in UNSENDABLE if getattr(call.config, name) is not None]
            if ignored:  # this SDK has no field for them: say so once, rather than pretend
                logger.warning(
                    "prompt config ignored: google-generativeai cannot send it",
                    extra={"fields": {"prompt": call.name, "ignored": ignored}},
                )
            config = call.config.model_dump(exclude_none=True, exclude=set(UNSENDABLE))
            if call.response_schema is not None:
                schema = _openapi_schema(gemini_schema(call.response_schema))
                config.update(response_mime_type="application/json", response_schema=schema)
            self._configs[call] = config
        return config

    async def generate(self, call: CallSpec, system: str, user: str, timeout: float) -> Answer:
        """One attempt. Returns the answer's text and usage; raises UpstreamError."""
        return await anyio.to_thread.run_sync(self._generate, call, system, user, timeout, limiter=self._threads)

    async def check_model(self, model: str | None = None) -> list[str]:
        """The generation methods Gemini says the model (GEMINI_MODEL by default) supports (a models
        `get`: costs no tokens)."""
        options = {"timeout": self._timeout, "retry": None}
        name = model or self._model_name
        found = await anyio.to_thread.run_sync(self._call, genai.get_model, name, options, name, limiter=self._threads)
        return list(found.supported_generation_methods)

    async def stream(self, call: CallSpec, system: str, user: str) -> AsyncIterator[Piece]:
        """One streamed attempt: its pieces as Gemini sends them; raises UpstreamError (with the usage known so
        far). The caller enforces the deadline and closes this iterator, which closes the connection to Gemini."""
        model = call.model or self._model_name
        usage: TokenUsage | None = None
        finished = False
        chunks: Any = None
        try:
            chunks = await anyio.to_thread.run_sync(self._open_stream, call, system, user, model, limiter=self._threads)
            while True:
                # abandon_on_cancel: a client that leaves must not wait for Gemini's next chunk; the connection
                # is shut below, which ends the thread's read at once.
                chunk = await anyio.to_thread.run_sync(
                    self._next_chunk, chunks, model, limiter=self._threads, abandon_on_cancel=True
                )
                if chunk is None:
                    break
                usage = _usage(chunk.usage_metadata) or usage
                text, finished = _piece(chunk)
                yield Piece(text, usage)
            if not finished:
                raise unreachable("the stream ended before Gemini finished its answer")
        except UpstreamError as exc:
            exc.usage = exc.usage or usage  # what the chunks so far cost
            raise
        finally:
            if chunks is not None:
                _shut(chunks)

    def _open_stream(self, call: CallSpec, system: str, user: str, model: str) -> Any:
        generative_model = self._model(call, system, model)
        request = generative_model._prepare_request(contents=user, tools=None, tool_config=None)
        client = genai_client.get_default_generative_client()
        # The request's deadline is enforced around the stream; this only stops a connection left hanging.
        with _mapped(model):
            return client.stream_generate_content(request, timeout=self._timeout, retry=None)

    def _next_chunk(self, chunks: Iterator[Any], model: str) -> Any:
        with _mapped(model):
            try:
                return next(chunks, None)
            except ValueError as exc:  # "Unfinished stream": the connection closed mid-answer
                raise unreachable(f"stream cut: {str(exc)[:40]}") from None

    def _model(self, call: CallSpec, system: str, model: str) -> Any:
        return genai.GenerativeModel(model, system_instruction=system or None, generation_config=self._config(call))

    def _generate(self, call: CallSpec, system: str, user: str, timeout: float) -> Answer:
        model = call.model or self._model_name
        generative_model = self._model(call, system, model)
        options = {"timeout": max(timeout, 0.001), "retry": None}
        response = self._call(generative_model.generate_content, user, options, model)
        usage = _usage(response.usage_metadata)
        try:
            text = _answer_text(response, json_expected=call.response_schema is not None)
            return Answer(text, usage, response._result.model_version)
        except UpstreamError as exc:
            exc.usage = usage  # a blocked or truncated answer still cost its tokens
            raise

    def _call(self, method: Callable[..., T], argument: Any, request_options: dict[str, Any], model: str) -> T:
        """One blocking request to Gemini, with whatever it raises mapped to an UpstreamError."""
        with _mapped(model):
            return method(argument, request_options=request_options)

    async def aclose(self) -> None:
        pass  # the SDK keeps no connections that need closing


@contextmanager
def _mapped(model: str) -> Iterator[None]:
    """Whatever the SDK raises in the block, mapped to an UpstreamError."""
    try:
        yield
    except UpstreamError:
        raise
    except api_exceptions.GoogleAPICallError as exc:
        raise _from_api_error(exc, model) from None
    except requests.Timeout as exc:
        raise timed_out(type(exc).__name__) from None
    # ChunkedEncodingError: the connection closed in the middle of a chunked body, as Gemini sends its streams.
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise unreachable(type(exc).__name__) from None
    except (json.JSONDecodeError, requests.JSONDecodeError, json_format.ParseError):
        raise unusable_answer("not JSON") from None
    except Exception as exc:  # anything else the SDK raises: log it whole, answer 502
        logger.exception("unexpected error from google-generativeai")
        raise failed(type(exc).__name__) from None


def _shut(chunks: Any) -> None:
    """Close a stream's connection now, even while a thread waits on it. The SDK's cancel() only closes the
    socket's file, which does not wake a blocked read, so Gemini would keep answering: shut the socket down."""
    with suppress(Exception):  # private attributes of requests/urllib3/http.client: best effort, then cancel()
        sock = chunks._response.raw._fp.fp.raw._sock
        sock.shutdown(socket.SHUT_RDWR)
    with suppress(Exception):
        chunks.cancel()


def _answer_text(response: Any, json_expected: bool) -> str:
    if response.prompt_feedback and response.prompt_feedback.block_reason:
        raise unusable_answer(f"blocked: {response.prompt_feedback.block_reason.name}")
    if not response.candidates:
        raise unusable_answer("no candidates")
    candidate = response.candidates[0]
    if candidate.finish_reason.name not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise unusable_answer(f"finish reason {candidate.finish_reason.name}")
    texts = [part.text for part in candidate.content.parts if part.text]
    text = "".join(texts)
    # This SDK's Part has no `thought` field and drops it, so a thinking model's thought summary (a part
    # before the answer) would read as answer text. A JSON answer tells them apart: when the parts together
    # are not JSON but the last one is, the parts before it were thoughts. (A text answer cannot tell.)
    if json_expected and len(texts) > 1 and not _is_json(text) and _is_json(texts[-1]):
        text = texts[-1]
    if not text:
        raise unusable_answer("empty text")
    return text


def _piece(chunk: Any) -> tuple[str, bool]:
    """One streamed chunk's text and whether it is the last; raises UpstreamError when Gemini stopped for another
    reason than the answer being complete (blocked, cut at the token limit)."""
    if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
        raise unusable_answer(f"blocked: {chunk.prompt_feedback.block_reason.name}")
    if not chunk.candidates:
        raise unusable_answer("no candidates")
    candidate = chunk.candidates[0]
    reason = candidate.finish_reason.name
    if reason not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        raise unusable_answer(f"finish reason {reason}")
    return "".join(part.text for part in candidate.content.parts if part.text), reason == "STOP"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# A prompt's config fields this SDK's GenerationConfig has no field for.
UNSENDABLE = ("seed", "thinking_level")
# The schema fields this SDK's Schema message has, by their JSON Schema names.
SCHEMA_FIELDS = {
    "type": "type_",
    "items": "items",
    "properties": "properties",
    "required": "required",
    "maxItems": "max_items",
    "minItems": "min_items",
    "description": "description",
    "enum": "enum",
    "format": "format_",
}


def _openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """This SDK takes Gemini's older schema form: upper-case types, `nullable` instead of
    `anyOf: [.., null]`, and no string lengths (those are still checked when the answer is parsed)."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return {**_openapi_schema(options[0]), "nullable": True}
    if isinstance(schema.get("type"), list):  # ["string", "null"]: the other spelling of the same
        kinds = [kind for kind in schema["type"] if kind != "null"]
        return {**_openapi_schema({**schema, "type": kinds[0]}), "nullable": "null" in schema["type"]}
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type":
            value = value.upper()
        elif key == "items":
            value = _openapi_schema(value)
        elif key == "properties":
            value = {name: _openapi_schema(sub) for name, sub in value.items()}
        if key in SCHEMA_FIELDS:
            converted[SCHEMA_FIELDS[key]] = value
    return converted


def _usage(metadata: Any) -> TokenUsage | None:
    if not metadata.total_token_count:
        return None  # Gemini reported nothing (this SDK shows a missing block as zeros)
    # This SDK's message has no thoughtsTokenCount and drops it; with no tools in play, Gemini's
    # total is prompt + answer + thinking, so thinking tokens are what the total has beyond the rest.
    counted = metadata.prompt_token_count + metadata.candidates_token_count
    return TokenUsage(
        prompt=metadata.prompt_token_count,
        answer=metadata.candidates_token_count,
        thinking=max(metadata.total_token_count - counted, 0),
        total=metadata.total_token_count,
    )


def _from_api_error(exc: api_exceptions.GoogleAPICallError, model: str) -> UpstreamError:
    # str(exc) names the upstream URL: log only the code and Gemini's own message.
    message = str(exc.message).split(": ", 1)[-1]  # it starts with the method and the upstream URL
    response = exc.response
    try:
        body = response.json() if response is not None else {}
    except ValueError:
        body = {}
    error = body.get("error", {}) if isinstance(body, dict) else {}
    status = str(error.get("status", "")) if isinstance(error, dict) else ""
    details = rpc_details(body) or [detail for detail in (exc.details or []) if isinstance(detail, dict)]
    return from_status(
        exc.code or 502,
        f"gemini {exc.code} {status}: {message}".replace("  ", " "),
        model=model,
        details=details,
        status=status,
        retry_after_header=response.headers.get("retry-after", "") if response is not None else "",
    )
