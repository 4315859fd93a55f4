"""Only your registered app may call the API: each request carries a Firebase App Check token.

The frontend gets the token from the Firebase SDK (`getToken`) and sends it in the X-Firebase-AppCheck
header. It is verified as Firebase documents for custom backends: an RS256 JWT of type JWT, signed by
one of the keys at APP_CHECK_JWKS_URL, issued by https://firebaseappcheck.googleapis.com/<project
number> for an audience that includes projects/<project number>, and not expired. APP_CHECK_APP_IDS,
when set, also limits which of the project's apps (the token's `sub`) are admitted.
"""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode

from jwks import KeySet, KeysUnavailable, secure_url
from request_log import note
from token_check import DOCUMENTED_ERRORS, Refused, unauthorized, unavailable, verify

HEADER = "X-Firebase-AppCheck"
ISSUER_PREFIX = "https://firebaseappcheck.googleapis.com/"
# One answer for a missing token and a bad one.
MISSING = INVALID = "Missing or invalid App Check token."

# auto_error=False: a missing header gets our answer below, not FastAPI's. Also documents it in /docs.
token_header = APIKeyHeader(name=HEADER, auto_error=False, description="A Firebase App Check token")


class CallerSettings(BaseSettings):
    """The project whose apps may call the API, where its keys are, and optionally which of its apps (app
    ids, comma-separated; empty admits all of them). settings.Settings has these fields too: they are read
    with the others."""

    app_check_project_number: str = Field(default="{{ cookiecutter.firebase_project_number }}", pattern=r"^[0-9]+$")
    app_check_jwks_url: str = "https://firebaseappcheck.googleapis.com/v1/jwks"
    app_check_app_ids: Annotated[list[str], NoDecode] = []

    @field_validator("app_check_app_ids", mode="before")
    @classmethod
    def split_app_ids(cls, value: object) -> object:
        return [item.strip() for item in value.split(",") if item.strip()] if isinstance(value, str) else value

    @field_validator("app_check_jwks_url")
    @classmethod
    def https_only(cls, value: str) -> str:
        return secure_url(value)


class CallerCheck:
    """The FastAPI dependency of the API route: returns when the token is good, else raises 401 (or 503)."""

    headers: tuple[str, ...] = (HEADER,)  # request headers the browser may send for it (CORS)
    responses = DOCUMENTED_ERRORS  # added to the API's documented errors (/docs)

    def __init__(self, settings: CallerSettings) -> None:
        self._number = settings.app_check_project_number
        self._app_ids = frozenset(settings.app_check_app_ids)
        self._keys = KeySet(settings.app_check_jwks_url)

    async def __call__(self, request: Request, token: Annotated[str | None, Depends(token_header)]) -> None:
        if not token:
            raise unauthorized(MISSING, f"no {HEADER} header")
        try:
            claims = await verify(
                token,
                self._keys,
                algorithms=("RS256",),
                issuer=ISSUER_PREFIX + self._number,
                audience=f"projects/{self._number}",
                typ="JWT",
            )
        except Refused as exc:
            raise unauthorized(INVALID, exc.cause) from None
        except KeysUnavailable as exc:
            raise unavailable(exc) from None
        if self._app_ids and claims["sub"] not in self._app_ids:
            raise unauthorized(INVALID, "app id not in APP_CHECK_APP_IDS")
        note(app_id=claims["sub"])  # an app id is public (it is in the app's Firebase config)
        request.state.caller = f"app:{claims['sub']}"  # who spends, for the spend guard
