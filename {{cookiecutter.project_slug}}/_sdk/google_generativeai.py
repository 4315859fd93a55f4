"""One Gemini call through google-generativeai (past end of life), with its failures mapped to ours.

This SDK has no working async REST client, so each call runs in a worker thread. It gets an
explicit timeout and no retry of its own (its default retry can keep going for minutes);
the caller retries within the request's deadline instead.
"""

import json
import logging
import warnings
from typing import Any

import anyio
import requests

with warnings.catch_warnings():  # it announces its end of life on import; the README says so once
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai
from google.api_core import exceptions as api_exceptions
from google.protobuf import json_format

from errors import UpstreamError, failed, from_status, timed_out, unreachable, unusable_answer
from schemas import RESPONSE_JSON_SCHEMA
from settings import Settings

logger = logging.getLogger(__name__)


class GeminiClient:
    def __init__(self, settings: Settings, system_instruction: str) -> None:
        client_options = {"api_endpoint": settings.gemini_base_url} if settings.gemini_base_url else None
        genai.configure(
            api_key=settings.gemini_api_key.get_secret_value(), transport="rest", client_options=client_options
        )
        self._model = genai.GenerativeModel(
            settings.gemini_model,
            system_instruction=system_instruction,
            generation_config=genai.GenerationConfig(
                response_mime_type="application/json", response_schema=_openapi_schema(RESPONSE_JSON_SCHEMA)
            ),
        )
        # Threads for blocking calls; sized like the concurrency cap (anyio's default is 40).
        self._threads = anyio.CapacityLimiter(settings.gemini_max_concurrency)

    async def generate(self, user_text: str, timeout: float) -> str:
        """One attempt. Returns the answer's text; raises UpstreamError."""
        return await anyio.to_thread.run_sync(self._generate, user_text, timeout, limiter=self._threads)

    def _generate(self, user_text: str, timeout: float) -> str:
        try:
            response = self._model.generate_content(
                user_text, request_options={"timeout": max(timeout, 0.001), "retry": None}
            )
        except api_exceptions.GoogleAPICallError as exc:
            raise _from_api_error(exc) from None
        except requests.Timeout as exc:
            raise timed_out(type(exc).__name__) from None
        except requests.ConnectionError as exc:
            raise unreachable(type(exc).__name__) from None
        except (json.JSONDecodeError, requests.JSONDecodeError, json_format.ParseError):
            raise unusable_answer("not JSON") from None
        except Exception as exc:  # anything else the SDK raises: log it whole, answer 502
            logger.exception("unexpected error from google-generativeai")
            raise failed(type(exc).__name__) from None
        if response.prompt_feedback and response.prompt_feedback.block_reason:
            raise unusable_answer(f"blocked: {response.prompt_feedback.block_reason.name}")
        if not response.candidates:
            raise unusable_answer("no candidates")
        candidate = response.candidates[0]
        if candidate.finish_reason.name not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
            raise unusable_answer(f"finish reason {candidate.finish_reason.name}")
        text = "".join(part.text for part in candidate.content.parts if part.text)
        if not text:
            raise unusable_answer("empty text")
        return text

    async def aclose(self) -> None:
        pass  # the SDK keeps no connections that need closing


# The schema fields this SDK's Schema message has, by their JSON Schema names.
SCHEMA_FIELDS = {"type": "type_", "items": "items", "properties": "properties", "required": "required",
                 "maxItems": "max_items", "minItems": "min_items", "description": "description"}


def _openapi_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """This SDK takes Gemini's older schema form: upper-case types, `nullable` instead of
    `anyOf: [.., null]`, and no string lengths (those are still checked when the answer is parsed)."""
    if "anyOf" in schema:
        options = [option for option in schema["anyOf"] if option.get("type") != "null"]
        return {**_openapi_schema(options[0]), "nullable": True}
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


def _from_api_error(exc: api_exceptions.GoogleAPICallError) -> UpstreamError:
    # str(exc) names the upstream URL: log only the code and Gemini's own message.
    details = [detail for detail in (exc.details or []) if isinstance(detail, dict)]
    key_rejected = any(detail.get("reason") == "API_KEY_INVALID" for detail in details)
    message = str(exc.message).split(": ", 1)[-1]  # it starts with the method and the upstream URL
    return from_status(
        exc.code or 502,
        f"gemini {exc.code}: {message}",
        key_rejected=key_rejected,
        retry_after=_retry_after(details, exc.response),
    )


def _retry_after(details: list[dict[str, Any]], response: Any) -> float | None:
    for detail in details:
        delay = str(detail.get("retryDelay", detail.get("retry_delay", "")))
        if delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                pass
    header = response.headers.get("retry-after", "") if response is not None else ""
    return float(header) if header.isdigit() else None
