"""The public keys a token issuer signs with, from its JWKS URL: fetched once, cached, refetched sparingly.

PyJWT parses the keys; fetching and caching them is ours, because it must hold under attack and
outage:
- one fetch at a time, and every request that needs it waits for that one (never a fetch of its own);
- a request waits at most `WAIT_SECONDS` for it: a slow or unreachable issuer gets callers a quick 503,
  not a hung request; the fetch itself gives up after `FETCH_DEADLINE_SECONDS` in all, however the
  issuer dribbles its answer;
- keys older than `REFRESH_AFTER_SECONDS` are refetched in the background while still in use, so
  callers do not wait for the hourly refresh; keys fetched less than `MAX_AGE_SECONDS` ago stay in use
  while the JWKS URL is down;
- a token with an unknown `kid` may trigger a refetch (the issuer rotated its keys), but at most one
  fetch, or failed try, starts per `MIN_FETCH_INTERVAL_SECONDS`, so a flood of made-up kids never
  becomes a flood of requests to the issuer.
"""

import asyncio
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from jwt import PyJWK, PyJWTError

logger = logging.getLogger(__name__)

REFRESH_AFTER_SECONDS = 1800.0  # then refetched in the background, the cached keys still in use meanwhile
MAX_AGE_SECONDS = 3600.0  # then no longer used (Firebase asks to cache its App Check keys 6 h at most)
MIN_FETCH_INTERVAL_SECONDS = 5.0  # between the starts of two fetches
FETCH_DEADLINE_SECONDS = 4.0  # one whole fetch, OIDC discovery included, shorter than the interval
WAIT_SECONDS = 1.0  # the longest a request waits for a fetch before its 503
MAX_BYTES = 1_000_000  # a key set, or a discovery document, is a few kilobytes

# Which token algorithms each type of key can check (RFC 7518 section 3.1): any RSA one for an RSA key,
# the one of its curve for an EC key, EdDSA for an Ed25519/Ed448 key.
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "Ed25519": "EdDSA", "Ed448": "EdDSA"}


class UnknownKey(Exception):
    """The token names a key the issuer does not publish (or no longer does)."""


class KeysUnavailable(Exception):
    """No usable keys cached and none could be fetched in time: nobody can be verified until they can."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("no signing keys")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


@dataclass(frozen=True)
class VerifyingKey:
    jwk: PyJWK
    # The token algorithms it may check: those its type allows, and of those only the one the key set
    # names for it, if it names one. Checked before verifying: a mismatch is a refusal, never an error.
    algorithms: frozenset[str]


def secure_url(url: str) -> str:
    """Keys must come over https: plain http only to this machine (local development and the tests)."""
    parsed = urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname or parsed.scheme == "http" and parsed.hostname in LOOPBACK:
        return url
    raise ValueError("must be an https:// URL (http:// only for localhost)")


LOOPBACK = ("localhost", "127.0.0.1", "::1")


async def get_json(url: str) -> Any:
    """GET a JSON document of at most MAX_BYTES. No time limit of its own: the caller sets one for the whole."""
    async with (
        httpx.AsyncClient(timeout=None) as client,
        client.stream("GET", url, headers={"Accept": "application/json"}) as reply,
    ):
        reply.raise_for_status()
        body = bytearray()
        async for chunk in reply.aiter_bytes():
            body += chunk
            if len(body) > MAX_BYTES:
                raise ValueError(f"{url} answered more than {MAX_BYTES} bytes")
    return json.loads(body)


class KeySet:
    """Signing keys by `kid`, from `source`: the JWKS URL, or an async function that finds it (OIDC
    discovery). Either way it is reached at most once per fetch, within the fetch's deadline."""

    def __init__(self, source: str | Callable[[], Awaitable[str]]) -> None:
        self._source = source
        self._found_url: str | None = None
        self._keys: dict[str, VerifyingKey] = {}
        self._fetched_at = -math.inf  # time.monotonic() of the last successful fetch
        self._started_at = -math.inf  # ... and of the start of the last try, successful or not
        self._fetch: asyncio.Task[None] | None = None  # the fetch in flight, shared by all who wait for it

    async def get(self, kid: str) -> VerifyingKey:
        age = time.monotonic() - self._fetched_at
        if age >= REFRESH_AFTER_SECONDS:
            self._start_fetch()  # in the background: the request goes on with the cached keys
        if age >= MAX_AGE_SECONDS or kid not in self._keys:
            fetch = self._start_fetch()
            if fetch is not None:
                # asyncio.wait neither cancels the fetch when this wait times out, nor when this request
                # is cancelled: the other requests waiting for it still get its result.
                await asyncio.wait([fetch], timeout=WAIT_SECONDS)
            if time.monotonic() - self._fetched_at >= MAX_AGE_SECONDS:
                raise KeysUnavailable(retry_after=self._started_at + MIN_FETCH_INTERVAL_SECONDS - time.monotonic())
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey from None

    def _start_fetch(self) -> asyncio.Task[None] | None:
        """The fetch in flight, or a new one if the interval allows; None if neither."""
        if self._fetch is None and time.monotonic() - self._started_at >= MIN_FETCH_INTERVAL_SECONDS:
            self._started_at = time.monotonic()
            self._fetch = asyncio.create_task(self._refresh())
        return self._fetch

    async def _jwks_url(self) -> str:
        if isinstance(self._source, str):
            return self._source
        if self._found_url is None:  # found once; the https rule for configured URLs holds for it too
            self._found_url = secure_url(await self._source())
        return self._found_url

    async def _refresh(self) -> None:
        try:
            async with asyncio.timeout(FETCH_DEADLINE_SECONDS):
                url = await self._jwks_url()
                self._keys = parse_keys(await get_json(url), url)
            self._fetched_at = time.monotonic()
            logger.info("signing keys fetched", extra={"fields": {"keys": len(self._keys)}})
        except Exception as exc:  # nobody awaits this task's errors: whatever went wrong, the try failed
            # The cause names our own JWKS or discovery URL: for the log only.
            cause = f"no complete answer within {FETCH_DEADLINE_SECONDS} s" if isinstance(exc, TimeoutError) else exc
            logger.warning("signing keys could not be fetched", extra={"fields": {"cause": str(cause)}})
        finally:
            self._fetch = None


def parse_keys(document: Any, url: str) -> dict[str, VerifyingKey]:
    """The signing keys of a JWKS document that have a `kid` and that PyJWT can use."""
    keys = {}
    for data in document["keys"]:
        if not isinstance(data, dict) or not data.get("kid") or data.get("use", "sig") != "sig":
            continue
        try:
            jwk = PyJWK(data)
        except PyJWTError:
            continue  # a key type or curve PyJWT does not support: no token can name it
        if jwk.key_type == "RSA":
            algorithms = RSA_ALGORITHMS
        else:
            curve = CURVE_ALGORITHMS.get(str(data.get("crv")))
            algorithms = frozenset({curve} if curve else ())
        if data.get("alg"):
            algorithms &= {data["alg"]}
        keys[str(data["kid"])] = VerifyingKey(jwk, algorithms)
    if not keys:
        raise ValueError(f"{url} publishes no signing key with a kid")
    return keys
