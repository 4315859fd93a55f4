"""Only signed-in users may call the API: each request carries the user's OpenID Connect ID token.

The frontend sends the token it got at sign-in (Firebase Auth's `getIdToken()`, Google Sign-In, Auth0,
Clerk, ...) as `Authorization: Bearer <token>`. It must be signed by one of the issuer's keys (found
through OIDC_ISSUER's /.well-known/openid-configuration, or at OIDC_JWKS_URL), with a public-key
algorithm, issued by OIDC_ISSUER for OIDC_AUDIENCE, and not expired. The request's log line gets a
one-way hash of the user's `sub`, so one user's requests can be told apart without naming them.
"""

import hashlib
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from jwks import KeySet, KeysUnavailable, get_json, secure_url
from request_log import note
from token_check import ASYMMETRIC_ALGORITHMS, DOCUMENTED_ERRORS, Refused, unauthorized, unavailable, verify

HEADER = "Authorization"
MISSING = "Sign in first: this API needs a bearer token."
INVALID = "Invalid or expired sign-in token; sign in again."

# auto_error=False: a missing token gets our answer below, not FastAPI's. Also documents it in /docs.
bearer = HTTPBearer(auto_error=False, description="The signed-in user's ID token")


class CallerSettings(BaseSettings):
    """Who issues the ID tokens, for whom, and where its keys are (unset: found through the issuer's
    /.well-known/openid-configuration). settings.Settings has these fields too: they are read with the others."""

    # Exactly as the tokens' `iss` says it, trailing slash included if it has one (Auth0's do).
    oidc_issuer: str = "{{ cookiecutter.oidc_issuer }}"
    oidc_audience: str = Field(default="{{ cookiecutter.oidc_audience }}", min_length=1)
    oidc_jwks_url: str | None = None

    @field_validator("oidc_issuer", "oidc_jwks_url")
    @classmethod
    def https_only(cls, value: str | None) -> str | None:
        return None if value is None else secure_url(value)


async def discover_jwks_url(issuer: str) -> str:
    """The issuer's JWKS URL from its discovery document, which must name the same issuer (OIDC Discovery 4.3)."""
    config = await get_json(issuer.removesuffix("/") + "/.well-known/openid-configuration")
    if config.get("issuer") != issuer:
        raise ValueError(f"the discovery document of {issuer} names another issuer")
    return str(config["jwks_uri"])


class CallerCheck:
    """The FastAPI dependency of the API route: returns when the token is good, else raises 401 (or 503)."""

    headers: tuple[str, ...] = (HEADER,)  # request headers the browser may send for it (CORS)
    responses = DOCUMENTED_ERRORS  # added to the API's documented errors (/docs)

    def __init__(self, settings: CallerSettings) -> None:
        self._issuer = settings.oidc_issuer
        self._audience = settings.oidc_audience
        self._keys = KeySet(settings.oidc_jwks_url or (lambda: discover_jwks_url(self._issuer)))

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
