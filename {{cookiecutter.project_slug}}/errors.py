"""What can go wrong upstream, and the honest HTTP answer for each case.

Both SDK adapters raise these, so the client sees the same status and message whichever SDK runs.
`detail` is safe to show anyone; `cause` is for the server log only.
"""

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
    advice: str = ""  # what the operator must do when no setting names it (logged at ERROR too)
    upstream: str = ""  # "<status> <reason>" when Gemini itself answered with an error (doctor shows it)
    quota: str = ""  # for a 429, which kind (metrics.QUOTA_KINDS)

    def headers(self) -> dict[str, str] | None:
        if self.retry_after is None:
            return None
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


REJECTED = "Gemini rejected the request; check the server's model setting."
QUOTA_SPENT = "This service's daily Gemini quota is spent; retry after it resets."
QUOTA_ADVICE = "Gemini's quota for this key is spent: raise the quota or the key's tier in AI Studio (https://aistudio.google.com/usage)"
# Gemini's daily quotas reset at midnight Pacific time (https://ai.google.dev/gemini-api/docs/rate-limits).
QUOTA_RESET_ZONE = "America/Los_Angeles"


def from_status(
    code: int,
    cause: str,
    *,
    model: str,
    details: list[dict[str, Any]] | None = None,
    status: str = "",
    retry_after_header: str = "",
) -> UpstreamError:
    """Map Gemini's HTTP status and its google.rpc details to ours. Retry only what a second attempt can fix."""
    details = details or []
    reasons = [str(detail.get("reason")) for detail in details if "reason" in detail]
    upstream = " ".join(filter(None, [str(code), status, *reasons[:1]]))
    error = _map(code, cause, model, details, reasons, retry_after_header)
    error.upstream = upstream
    return error


def _map(
    code: int, cause: str, model: str, details: list[dict[str, Any]], reasons: list[str], header: str
) -> UpstreamError:
    # 401 is how Gemini answers a key it no longer takes (ACCESS_TOKEN_TYPE_UNSUPPORTED), 400 API_KEY_INVALID a
    # wrong one, 403 one without access: all a key problem.
    if "API_KEY_INVALID" in reasons or code in (401, 403):
        return UpstreamError(
            502, "The server is misconfigured: Gemini rejected its API key.", cause, setting="GEMINI_API_KEY"
        )
    if code == 404:  # Gemini's answer for a model id it does not serve: unknown, or retired
        return UpstreamError(
            502, REJECTED, f"GEMINI_MODEL={model} is not served by Gemini ({cause})", setting="GEMINI_MODEL"
        )
    if code == 429:
        return _quota(cause, model, details, _retry_delay(details, header))
    if code == 503:
        return UpstreamError(
            503, "Gemini is unavailable right now; retry later.", cause, True, _retry_delay(details, header)
        )
    if code >= 500:
        return failed(cause, retryable=code in (500, 502, 504))
    return UpstreamError(502, REJECTED, cause)


def _quota(cause: str, model: str, details: list[dict[str, Any]], retry_after: float | None) -> UpstreamError:
    """A 429 is a busy minute (RetryInfo says when to come back: retried) or a quota spent for the day
    (a per-day QuotaFailure, or no RetryInfo at all): then every retry fails until the reset."""
    violations = [
        violation
        for detail in details
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure")
        for violation in detail.get("violations", [])
        if isinstance(violation, dict)
    ]
    if any(str(violation.get("quotaValue")) == "0" for violation in violations) or "limit: 0," in cause:
        return UpstreamError(
            502,
            "The server is misconfigured: its Gemini model is not available to its key.",
            f"GEMINI_MODEL={model} is not available on this key's tier (quota limit 0): {cause}",
            setting="GEMINI_MODEL",
            quota="not_on_tier",
        )
    daily = any("PerDay" in str(violation.get("quotaId", "")) for violation in violations)
    if daily or retry_after is None:
        reset = seconds_to_quota_reset() if daily else None
        kind = "daily" if daily else "unknown"
        return UpstreamError(429, QUOTA_SPENT, cause, retry_after=reset, advice=QUOTA_ADVICE, quota=kind)
    return UpstreamError(
        429, "Gemini's rate limit was reached; retry later.", cause, True, retry_after, quota="per_minute"
    )


def seconds_to_quota_reset(now: datetime | None = None) -> float | None:
    """Seconds until the next midnight Pacific time; None without the time zone database."""
    try:
        zone = ZoneInfo(QUOTA_RESET_ZONE)
    except ZoneInfoNotFoundError:
        return None
    local = (now or datetime.now(zone)).astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), zone)
    return (midnight - local).total_seconds()


def _retry_delay(details: list[dict[str, Any]], header: str) -> float | None:
    """Gemini says how long to wait in a google.rpc.RetryInfo detail ("7s"), proxies in Retry-After."""
    for detail in details:
        delay = str(detail.get("retryDelay", detail.get("retry_delay", "")))
        if delay.endswith("s"):
            try:
                return float(delay[:-1])
            except ValueError:
                pass
    return float(header) if header.isdigit() else None


def rpc_details(body: Any) -> list[dict[str, Any]]:
    """The `details` of a google.rpc error body (or of its `error`), as dicts."""
    error = body.get("error", body) if isinstance(body, dict) else {}
    found = error.get("details") if isinstance(error, dict) else None
    return [detail for detail in found if isinstance(detail, dict)] if isinstance(found, list) else []


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
    elif exc.advice:  # nor here (a spent quota): the message says what to do
        logging.getLogger("app").error(f"gemini call failed: {exc.advice}", extra={"fields": fields})
    else:
        logging.getLogger("app").warning("gemini call failed", extra={"fields": fields})
