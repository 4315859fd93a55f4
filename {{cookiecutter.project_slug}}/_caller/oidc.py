"""Only signed-in users may call the API: each request carries the user's OpenID Connect ID token.

The frontend sends the token it got at sign-in (Firebase Auth's `getIdToken()`, Google Sign-In, Auth0,
Clerk, ...) as `Authorization: Bearer <token>`. It must be signed by one of the issuer's keys (found
through OIDC_ISSUER's /.well-known/openid-configuration, or at OIDC_JWKS_URL), with a public-key
algorithm, issued by OIDC_ISSUER for OIDC_AUDIENCE, and not expired. The request's log line gets a
one-way hash of the user's `sub`, so one user's requests can be told apart without naming them.
"""

import hashlib
import json
import urllib.request
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from jwks import FETCH_TIMEOUT_SECONDS, KeySet, KeysUnavailable
from request_log import note
from settings import Settings
from token_check import ASYMMETRIC_ALGORITHMS, DOCUMENTED_ERRORS, Refused, unauthorized, unavailable, verify

HEADER = "Authorization"
MISSING = "Sign in first: this API needs a bearer token."
INVALID = "Invalid or expired sign-in token; sign in again."

# auto_error=False: a missing token gets our answer below, not FastAPI's. Also documents it in /docs.
bearer = HTTPBearer(auto_error=False, description="The signed-in user's ID token")


def discover_jwks_url(issuer: str) -> str:
    """The issuer's JWKS URL from its discovery document, which must name the same issuer (OIDC Discovery 4.3)."""
    with urllib.request.urlopen(f"{issuer}/.well-known/openid-configuration", timeout=FETCH_TIMEOUT_SECONDS) as reply:
        config = json.load(reply)
    if config.get("issuer") != issuer:
        raise ValueError(f"the discovery document of {issuer} names another issuer")
    return str(config["jwks_uri"])


class CallerCheck:
    """The FastAPI dependency of the API route: returns when the token is good, else raises 401 (or 503)."""

    headers: tuple[str, ...] = (HEADER,)  # request headers the browser may send for it (CORS)
    responses = DOCUMENTED_ERRORS  # added to the API's documented errors (/docs)

    def __init__(self, settings: Settings) -> None:
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        jwks_url = settings.oidc_jwks_url
        self._keys = KeySet(lambda: jwks_url or discover_jwks_url(self._issuer))

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> None:
        # RFC 6750: a missing token gets the scheme alone; a bad one also says invalid_token.
        if credentials is None:
            raise unauthorized(MISSING, "no bearer token", {"WWW-Authenticate": "Bearer"})
        try:
            claims = await verify(
                credentials.credentials,
                self._keys,
                algorithms=ASYMMETRIC_ALGORITHMS,
                issuer=self._issuer,
                audience=self._audience,
            )
        except Refused as exc:
            raise unauthorized(INVALID, exc.cause, {"WWW-Authenticate": 'Bearer error="invalid_token"'}) from None
        except KeysUnavailable as exc:
            raise unavailable(exc) from None
        caller = hashlib.sha256(f"{self._issuer} {claims['sub']}".encode()).hexdigest()[:16]
        note(caller=caller)  # the same user gives the same hash; the hash gives no name back
        request.state.caller = f"user:{caller}"  # who spends, for the spend guard
