"""The public keys a token issuer signs with, from its JWKS URL: fetched once, cached, refetched sparingly.

PyJWT's `PyJWKClient` fetches and parses the key set; the cache around it is ours, because it must
hold under attack and outage: a token with an unknown `kid` may trigger a refetch (the issuer rotated
its keys), but at most one fetch, or failed try, per `MIN_FETCH_INTERVAL_SECONDS`, so a flood of
made-up kids never becomes a flood of requests to the issuer; and keys fetched less than
`MAX_AGE_SECONDS` ago stay in use while the JWKS URL is down.
"""

import asyncio
import logging
import math
import time
from collections.abc import Callable

from jwt import PyJWK, PyJWKClient, PyJWTError

logger = logging.getLogger(__name__)

MAX_AGE_SECONDS = 3600.0  # then fetched again (Firebase asks to cache its App Check keys 6 h at most)
MIN_FETCH_INTERVAL_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 5.0


class UnknownKey(Exception):
    """The token names a key the issuer does not publish (or no longer does)."""


class KeysUnavailable(Exception):
    """No fresh keys cached and none could be fetched: nobody can be verified until they can."""

    def __init__(self, retry_after: float) -> None:
        super().__init__("no signing keys")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class KeySet:
    """Signing keys by `kid`. `locate()` gives the JWKS URL; it may block (OIDC discovery) and runs in a
    thread, like the fetch itself, so the event loop keeps serving other requests meanwhile."""

    def __init__(self, locate: Callable[[], str]) -> None:
        self._locate = locate
        self._url: str | None = None
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at = -math.inf  # time.monotonic() of the last successful fetch
        self._tried_at = -math.inf  # ... and of the last try, successful or not
        self._lock = asyncio.Lock()  # one fetch at a time; requests that waited reuse its result

    async def get(self, kid: str) -> PyJWK:
        if not self._fresh():
            await self._refresh(needed=lambda: not self._fresh())
        if kid not in self._keys:
            await self._refresh(needed=lambda: kid not in self._keys)
        try:
            return self._keys[kid]
        except KeyError:
            raise UnknownKey from None

    def _fresh(self) -> bool:
        return time.monotonic() - self._fetched_at < MAX_AGE_SECONDS

    async def _refresh(self, needed: Callable[[], bool]) -> None:
        """Fetch the keys if still `needed` and allowed now. Raises KeysUnavailable only when no fresh
        keys are left to use."""
        async with self._lock:
            if not needed():  # another request fetched them while this one waited for the lock
                return
            wait = self._tried_at + MIN_FETCH_INTERVAL_SECONDS - time.monotonic()
            if wait <= 0:
                self._tried_at = time.monotonic()
                try:
                    self._keys = await asyncio.to_thread(self._fetch)
                    self._fetched_at = time.monotonic()
                    return
                except (PyJWTError, OSError, ValueError, KeyError) as exc:
                    # The cause names our own JWKS or discovery URL: for the log only.
                    logger.warning("signing keys could not be fetched", extra={"fields": {"cause": str(exc)}})
                    wait = MIN_FETCH_INTERVAL_SECONDS
            if not self._fresh():
                raise KeysUnavailable(retry_after=wait)

    def _fetch(self) -> dict[str, PyJWK]:
        if self._url is None:
            self._url = self._locate()
        # PyJWKClient's own cache is off: the policy above is ours. It parses the set with PyJWKSet.
        jwk_set = PyJWKClient(self._url, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS).get_jwk_set()
        keys = {key.key_id: key for key in jwk_set.keys if key.key_id and key.public_key_use in ("sig", None)}
        if not keys:
            raise ValueError(f"{self._url} publishes no signing key with a kid")
        logger.info("signing keys fetched", extra={"fields": {"keys": len(keys)}})
        return keys
