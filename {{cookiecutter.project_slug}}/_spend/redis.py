"""Spend limits per caller and for the whole deployment, shared by every replica through Redis.

Before each Gemini call (a dependency of the API route, after the caller check) one Lua script checks
and counts, atomically: the deployment's tokens today, the caller's tokens today, the caller's requests
this minute. A spent limit answers 429 with Retry-After, and Gemini is not called. After the call
(gemini_calls.py) the tokens Gemini reported for every attempt, thinking included, are added to the
caller's day and the deployment's day. Days are UTC days; a limit of 0 is off.

How far a budget can overshoot: a request is admitted while today's count is below the budget, and what
it costs is known only when it ends. So the count passes the budget by at most the tokens of the requests
admitted before it was reached and still in flight then (per replica GEMINI_MAX_CONCURRENCY calls and the
requests waiting up to 2 s for one), never by a request admitted after: the check and the count are one
script, which Redis runs alone. Minutes are fixed windows: across a minute's end a caller may get up to
twice SPEND_REQUESTS_PER_CALLER_PER_MINUTE within 60 s.

Who is a caller: the identity the caller check put on `request.state.caller` (an OIDC subject's one-way
hash, an App Check app id), else the client's address (uvicorn takes it from Nginx's X-Forwarded-For).
"""

import asyncio
import logging
import math
import time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from prometheus_client import Counter, Gauge
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from request_log import note
from schemas import TokenUsage

logger = logging.getLogger("app.spend_guard")

STORE_DOWN_RETRY_AFTER = 5  # seconds a client is told to wait when the store is down (refuse)
DAY_KEY_SECONDS = 2 * 86400  # a day's counts stay a day longer, for `python doctor.py` and a look back
MINUTE_KEY_SECONDS = 120


class SpendSettings(BaseSettings):
    """The guard's settings, from the environment and `.env` like settings.py's."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # The Compose service by default; a managed Redis works the same (rediss:// for TLS).
    redis_url: str = "redis://redis:6379/0"
    # Tokens (prompt, answer and thinking) all callers together may spend in one UTC day.
    spend_tokens_per_day: int = Field(default=5_000_000, ge=0)
    # Tokens one caller may spend in one UTC day.
    spend_tokens_per_caller_per_day: int = Field(default=200_000, ge=0)
    # Requests one caller may make in one minute. Nginx's per-address rate plus its burst: the guard never
    # refuses what Nginx admits from one address, and still holds a caller who rotates addresses.
    spend_requests_per_caller_per_minute: int = Field(default={{ cookiecutter.rate_limit_per_minute | int + 10 }}, ge=0)
    # What to do while Redis is down or slow: refuse (503, nothing is spent) or allow (unguarded, WARNING).
    spend_guard_when_store_down: Literal["refuse", "allow"] = "refuse"
    # Every Redis call is short: a slow or absent Redis costs a request at most this long (a stopped Redis
    # refuses at once; the deadline is for one that hangs), each socket operation half of it. It is wall
    # time, so it must outlast a busy host's stalls: on 2 CPUs, while a replica started during a rolling
    # restart, every request of the others took 0.5-0.75 s longer for a moment, and a 0.5 s deadline
    # refused some of them with 503 (the template's engine tier). Raise it for a Redis far away.
    spend_guard_timeout_seconds: float = Field(default=1.5, gt=0, le=10)


def load_spend_settings() -> SpendSettings:
    """Read the guard's settings, or stop the process with one line that says what to fix."""
    try:
        return SpendSettings()
    except ValidationError as exc:
        problems = "; ".join(f"{'_'.join(map(str, e['loc'])).upper()} {e['msg']}" for e in exc.errors())
        raise SystemExit(f"Configuration error: {problems}. Set it in the environment or in .env.") from None


# KEYS: the deployment's tokens today, the caller's tokens today, the caller's requests this minute.
# ARGV: the three limits (0: off), the minute key's lifetime. Returns {verdict, deployment's tokens today}.
CHECK_SCRIPT = """
local spent = tonumber(redis.call('GET', KEYS[1]) or 0)
local per_day, per_caller, per_minute = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if per_day > 0 and spent >= per_day then return {'deployment_day', spent} end
if per_caller > 0 and tonumber(redis.call('GET', KEYS[2]) or 0) >= per_caller then return {'caller_day', spent} end
if per_minute > 0 then
  if tonumber(redis.call('GET', KEYS[3]) or 0) >= per_minute then return {'caller_minute', spent} end
  redis.call('INCR', KEYS[3])
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
return {'ok', spent}
"""

# KEYS: the deployment's tokens today, the caller's tokens today. ARGV: tokens, the keys' lifetime.
# Returns the deployment's tokens today.
RECORD_SCRIPT = """
redis.call('INCRBY', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[2])
local spent = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return spent
"""

LIMITS = {  # what a refusal says, by the limit that was reached
    "deployment_day": "The whole deployment's daily token budget is spent; retry after midnight UTC.",
    "caller_day": "Your daily token budget (per caller) is spent; retry after midnight UTC.",
    "caller_minute": "Too many requests from you (per caller) this minute; retry in a minute.",
}
STORE_DOWN = "The spend guard cannot check your budget right now; retry shortly."

TOKENS_COUNTED = Counter(
    "spend_guard_tokens_counted", "Tokens the guard added to today's counts, by window.", ["window"]
)
REFUSALS = Counter("spend_guard_refusals", "Requests refused with 429, by the limit reached.", ["limit"])
ERRORS = Counter("spend_guard_errors", "Redis calls that failed or timed out, by step: check, record.", ["step"])
SPENT_TODAY = Gauge("spend_guard_deployment_tokens_today", "The deployment's tokens today (UTC), as last read.")
LIMIT = Gauge("spend_guard_limit", "The guard's limits (0: off), by limit.", ["limit"])
for window in ("caller_day", "deployment_day"):
    TOKENS_COUNTED.labels(window)  # present at 0 from the start, so rates work before the first call
for limit in LIMITS:
    REFUSALS.labels(limit)
for step in ("check", "record"):
    ERRORS.labels(step)


def day_key(day: str, caller: str | None = None) -> str:
    """`spend:2026-12-02:tokens` (the deployment) or `spend:2026-12-02:tokens:<caller>`."""
    return f"spend:{day}:tokens" + (f":{caller}" if caller else "")


def caller_of(request: Request) -> str:
    """The identity the caller check established, else the client's address."""
    caller = getattr(request.state, "caller", None)
    if caller:
        return str(caller)
    return f"ip:{request.client.host if request.client else 'unknown'}"


@dataclass(frozen=True)
class Ticket:
    """An admitted request: whose tokens record() adds up when its Gemini call ends."""

    guard: "SpendGuard"
    caller: str


# Set by the dependency and read by record() in the same request (one asyncio task per request).
admitted: ContextVar[Ticket | None] = ContextVar("spend_ticket", default=None)


class SpendGuard:
    """The API route's dependency: returns when the caller may spend, else raises 429 (or 503)."""

    def __init__(self, settings: SpendSettings | None = None) -> None:
        self.settings = settings or load_spend_settings()
        # One immediate retry: after a Redis restart a pooled connection is dead, a new one is fine. The
        # deadline bounds both attempts together, EVALSHA and the script's reload after a Redis restart.
        self._deadline = self.settings.spend_guard_timeout_seconds
        self._redis = Redis.from_url(
            self.settings.redis_url,
            socket_timeout=self._deadline / 2,
            socket_connect_timeout=self._deadline / 2,
            retry=Retry(NoBackoff(), 1),
            decode_responses=True,
        )
        self._check = self._redis.register_script(CHECK_SCRIPT)  # EVALSHA, reloaded when Redis lost it
        self._record = self._redis.register_script(RECORD_SCRIPT)
        self._limits = (
            self.settings.spend_tokens_per_day,
            self.settings.spend_tokens_per_caller_per_day,
            self.settings.spend_requests_per_caller_per_minute,
        )
        for name, value in zip(("deployment_day", "caller_day", "caller_minute"), self._limits, strict=True):
            LIMIT.labels(name).set(value)

    @property
    def active(self) -> bool:
        """With every limit at 0 the guard is off and never calls Redis."""
        return any(self._limits)

    async def __call__(self, request: Request) -> None:
        if not self.active:
            return
        caller = caller_of(request)
        now = time.time()
        day = _utc(now).strftime("%Y-%m-%d")
        minute = _utc(now).strftime("%Y-%m-%dT%H:%M")
        keys = [day_key(day), day_key(day, caller), f"spend:{minute}:requests:{caller}"]
        try:
            async with asyncio.timeout(self._deadline):
                verdict, spent = await self._check(keys=keys, args=[*self._limits, MINUTE_KEY_SECONDS])
        except (RedisError, OSError, TimeoutError) as exc:
            self._store_failed("check", exc)  # raises 503 with refuse; with allow the request goes on
        else:
            SPENT_TODAY.set(int(spent))
            if verdict != "ok":
                REFUSALS.labels(verdict).inc()
                note(spend_refused=verdict)
                window = 60 if verdict == "caller_minute" else 86400
                retry_after = max(1, math.ceil(window - now % window))  # until that window starts anew
                raise HTTPException(429, LIMITS[verdict], headers={"Retry-After": str(retry_after)})
        admitted.set(Ticket(self, caller))

    async def add(self, caller: str, tokens: int) -> None:
        day = _utc(time.time()).strftime("%Y-%m-%d")
        try:
            async with asyncio.timeout(self._deadline):
                spent = await self._record(keys=[day_key(day), day_key(day, caller)], args=[tokens, DAY_KEY_SECONDS])
        except (RedisError, OSError, TimeoutError) as exc:
            # The answer is ready: it goes out all the same. These tokens are missing from today's counts.
            ERRORS.labels("record").inc()
            fields = {"tokens": tokens, "cause": _cause(exc)}
            logger.error("spend guard could not count tokens", extra={"fields": fields})
            return
        SPENT_TODAY.set(int(spent))
        TOKENS_COUNTED.labels("caller_day").inc(tokens)
        TOKENS_COUNTED.labels("deployment_day").inc(tokens)

    def _store_failed(self, step: str, exc: BaseException) -> None:
        ERRORS.labels(step).inc()
        fields = {"cause": _cause(exc), "redis": _where(self.settings.redis_url)}
        if self.settings.spend_guard_when_store_down == "allow":
            logger.warning("spend guard off: Redis unavailable, request allowed unguarded", extra={"fields": fields})
            note(spend_guard="off")
            return
        logger.error("spend guard: Redis unavailable, request refused", extra={"fields": fields})
        raise HTTPException(503, STORE_DOWN, headers={"Retry-After": str(STORE_DOWN_RETRY_AFTER)})

    async def report(self) -> list[tuple[bool, str, str]]:
        """For doctor.py: Redis reachable, and today's spend against each budget."""
        if not self.active:
            return []  # every SPEND_ limit is 0: the guard is off and needs no Redis
        where = _where(self.settings.redis_url)
        day = _utc(time.time()).strftime("%Y-%m-%d")
        try:
            async with asyncio.timeout(2):
                await self._redis.ping()
                spent = int(await self._redis.get(day_key(day)) or 0)
                callers = [key async for key in self._redis.scan_iter(day_key(day, "*"), count=1000)]
                top = max([int(value or 0) for value in await self._redis.mget(callers)] if callers else [0])
        except (RedisError, OSError, TimeoutError) as exc:
            mode = self.settings.spend_guard_when_store_down
            verdict = f"Redis at {where} does not answer ({_cause(exc)}); meanwhile the API will {mode}"
            return [(False, "spend store", verdict)]
        finally:
            await self._redis.aclose()
        per_day, per_caller, per_minute = self._limits
        return [
            (True, "spend store", f"Redis at {where} answers"),
            (
                True,
                "spend today",
                f"{day} UTC: deployment {spent} of {_limit(per_day)} tokens; top caller of {len(callers)} "
                f"{top} of {_limit(per_caller)} tokens; {_limit(per_minute)} requests per caller per minute",
            ),
        ]


async def record(tokens: TokenUsage) -> None:
    """What a request's Gemini attempts cost (gemini_calls.py), added to its caller's and the deployment's day."""
    ticket = admitted.get()
    spent = max(tokens.total, tokens.prompt + tokens.answer + tokens.thinking)
    if ticket is not None and spent > 0:
        await ticket.guard.add(ticket.caller, spent)


def _utc(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


def _cause(exc: BaseException) -> str:
    """The error's class and Redis's own words (e.g. `ResponseError: DENIED ...`), for the log."""
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _limit(value: int) -> str:
    return "no limit" if value == 0 else str(value)


def _where(url: str) -> str:
    """host:port of a Redis URL, never its password."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}"
