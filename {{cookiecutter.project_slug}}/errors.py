"""What can go wrong upstream, and the honest HTTP answer for each case.

Both SDK adapters raise these, so the client sees the same status and message whichever SDK runs.
`detail` is safe to show anyone; `cause` is for the server log only.
"""

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from schemas import TokenUsage


@dataclass
class UpstreamError(Exception):
    status_code: int
    detail: str
    cause: str = ""
    retryable: bool = False  # worth another attempt within the request's deadline
    retry_after: float | None = None  # seconds, when Gemini said how long to wait
    setting: str | None = None  # the setting the operator must fix (logged at ERROR): no retry can help
    usage: TokenUsage | None = None  # tokens an unusable answer still cost

    def headers(self) -> dict[str, str] | None:
        if self.retry_after is None:
            return None
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


REJECTED = "Gemini rejected the request; check the server's model setting."


def from_status(
    code: int, cause: str, *, model: str, key_rejected: bool = False, retry_after: float | None = None
) -> UpstreamError:
    """Map Gemini's HTTP status to ours. Retry only what a second attempt can fix."""
    if key_rejected or code in (401, 403):
        return UpstreamError(
            502, "The server is misconfigured: Gemini rejected its API key.", cause, setting="GEMINI_API_KEY"
        )
    if code == 404:  # Gemini's answer for a model id it does not serve: unknown, or retired
        return UpstreamError(
            502, REJECTED, f"GEMINI_MODEL={model} is not served by Gemini ({cause})", setting="GEMINI_MODEL"
        )
    if code == 429:
        if retry_after is None:
            return UpstreamError(503, "Gemini is busy; retry later.", cause, retryable=True)
        return UpstreamError(429, "Gemini's rate limit was reached; retry later.", cause, True, retry_after)
    if code == 503:
        return UpstreamError(503, "Gemini is unavailable right now; retry later.", cause, True, retry_after)
    if code >= 500:
        return failed(cause, retryable=code in (500, 502, 504))
    return UpstreamError(502, REJECTED, cause)


def failed(cause: str, retryable: bool = False) -> UpstreamError:
    return UpstreamError(502, "Gemini failed to answer.", cause, retryable)


def unreachable(cause: str) -> UpstreamError:
    return UpstreamError(502, "Could not reach Gemini.", cause, retryable=True)


def timed_out(cause: str = "deadline passed") -> UpstreamError:
    return UpstreamError(504, "Gemini did not answer in time.", cause)


def unusable_answer(what: str) -> UpstreamError:
    """Blocked, empty, truncated or malformed answers: Gemini answered, but not with what the prompt asks for."""
    return UpstreamError(502, f"Gemini's answer was unusable ({what}).", what)


def overloaded() -> UpstreamError:
    return UpstreamError(503, "The server is busy; retry shortly.", "concurrency cap reached", retry_after=1)


def validation_problems(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A 422's detail: where each problem is and what it is, never the value sent. A field name the client
    made up is named, with what cannot be encoded (a lone surrogate) replaced by "?"."""
    return [
        {
            "loc": [
                part.encode("utf-8", "replace").decode() if isinstance(part, str) else part for part in error["loc"]
            ],
            "msg": error["msg"],
            "type": error["type"],
        }
        for error in errors
    ]


def log_failure(exc: UpstreamError) -> None:
    """Log a failed call once: the cause for the operator, at ERROR when only the operator can mend it."""
    fields = {"status": exc.status_code, "cause": exc.cause}
    if exc.setting:  # no retry can mend it: the operator must (`python doctor.py` checks it)
        logging.getLogger("app").error(f"gemini call failed: fix {exc.setting}", extra={"fields": fields})
    else:
        logging.getLogger("app").warning("gemini call failed", extra={"fields": fields})
