"""Prometheus metrics of this replica, served at `GET /metrics` (not reachable through Nginx).

Each replica counts only its own requests; Prometheus scrapes every replica and adds them up.
Label values come from short fixed sets (route templates, status codes, outcomes), never from
what a client sends, so a scan of random paths cannot create new series.
"""

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Scope

from schemas import TokenUsage

disable_created_metrics()  # the *_created series only double what Prometheus already knows

UNMATCHED = "unmatched"  # the route label shared by every path no route knows

HTTP_REQUESTS = Counter(
    "http_requests", "HTTP requests answered, by route template, method and status.", ["route", "method", "status"]
)
HTTP_DURATION = Histogram(
    "http_request_duration_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    # Most time is Gemini's: from a fast refusal to the end of a long, retried call.
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60),
)
# The prompt label is a prompt file's id: a fixed set, read at start-up.
GEMINI_ATTEMPTS = Counter(
    "gemini_attempts",
    "Gemini calls made, by prompt and outcome: ok, or the HTTP status we answered for it.",
    ["prompt", "outcome"],
)
# Their sum is Gemini's total; prompt tokens are billed at one price, answer and thinking at another.
GEMINI_TOKENS = Counter(
    "gemini_tokens", "Tokens Gemini reported, by prompt and kind: prompt, answer, thinking.", ["prompt", "kind"]
)
TOKEN_KINDS = ("prompt", "answer", "thinking")
# All prompts share the slots: GEMINI_MAX_CONCURRENCY is one cap per replica.
GEMINI_IN_FLIGHT = Gauge("gemini_calls_in_flight", "Requests holding one of the GEMINI_MAX_CONCURRENCY slots.")
GEMINI_MAX_CONCURRENCY = Gauge("gemini_max_concurrency", "GEMINI_MAX_CONCURRENCY: slots this replica has.")
STREAMS_IN_FLIGHT = Gauge("gemini_streams_in_flight", "Streamed answers being sent (each also holds a slot).")
STREAM_FIRST_DELTA = Histogram(
    "gemini_stream_first_delta_seconds",
    "From a streamed request holding its slot to its first piece of text sent, by prompt.",
    ["prompt"],
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30),
)
GEMINI_REFUSED = Counter(
    "gemini_refused_at_cap", "Requests answered 503 because every slot stayed busy, by prompt.", ["prompt"]
)

# Gemini's 429s by kind: per_minute (retried after its RetryInfo), daily (the day's quota is spent),
# unknown (no RetryInfo: treated as spent), not_on_tier (limit 0: the model is not on the key's tier).
GEMINI_QUOTA = Counter("gemini_quota_refusals", "Gemini's 429 answers, by kind of quota.", ["kind"])
QUOTA_KINDS = ("per_minute", "daily", "unknown", "not_on_tier")
# The model that really answered (Gemini's modelVersion): a deprecated id may be served by a newer model,
# billed at its price. Values come from Gemini, not from clients: a short set.
GEMINI_ANSWERS_BY_MODEL = Counter(
    "gemini_answers_by_model",
    "Gemini answers, by prompt and the modelVersion Gemini reported.",
    ["prompt", "model_version"],
)
for _kind in QUOTA_KINDS:
    GEMINI_QUOTA.labels(_kind)


def register_prompt(prompt_id: str) -> None:
    """Create the prompt's series at 0, so rates work before its first call."""
    for kind in TOKEN_KINDS:
        GEMINI_TOKENS.labels(prompt_id, kind)
    GEMINI_REFUSED.labels(prompt_id)
    STREAM_FIRST_DELTA.labels(prompt_id)


def route_of(scope: Scope) -> str:
    """The route template a request matched ("/api/breakdown-task"), never the raw path."""
    # Starlette's router records the route it handed the request to: read it, rather than matching the path
    # against every route again (one more route per prompt file) on every request. Requests it never
    # routed (a CORS preflight answered by the middleware, an error before routing) are matched below.
    routed = scope.get("route")
    if routed is not None:
        return getattr(routed, "path", UNMATCHED)
    for route in scope["app"].router.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:  # PARTIAL: the path matched, the method did not (405, CORS preflight)
            return getattr(route, "path", UNMATCHED)
    return UNMATCHED


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    route = route_of(scope)
    HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
    HTTP_DURATION.labels(route).observe(seconds)


def observe_attempt(prompt_id: str, outcome: str | int, usage: TokenUsage | None) -> None:
    GEMINI_ATTEMPTS.labels(prompt_id, str(outcome)).inc()
    if usage is not None:
        for kind in TOKEN_KINDS:
            GEMINI_TOKENS.labels(prompt_id, kind).inc(getattr(usage, kind))


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
