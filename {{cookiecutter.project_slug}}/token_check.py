"""Verify a caller's signed token (a JWT) and turn a refusal into its HTTP answer.

What both caller checks share; caller_check.py says which header carries the token and which claims
it must hold. PyJWT checks the signature and the claims: no signature code of ours.
"""

import logging
from typing import Any

import jwt
from fastapi import HTTPException

from jwks import KeySet, KeysUnavailable, UnknownKey

logger = logging.getLogger(__name__)

# At most a few seconds of clock difference between the issuer and this server.
LEEWAY_SECONDS = 5
# What a caller check adds to the API's documented errors (main.py merges them in).
DOCUMENTED_ERRORS: dict[int | str, str] = {
    401: "The caller's token is missing or invalid.",
    503: "Gemini or this server is busy, or callers cannot be verified right now; retry later.",
}
# Public-key algorithms only: with a shared-secret one (HS256), anyone holding the public key could sign.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

# PyJWT's messages for these are fixed texts: safe to log. Others could quote the token, so only their type is.
_SAFE_MESSAGES = (
    jwt.ExpiredSignatureError,
    jwt.ImmatureSignatureError,
    jwt.InvalidIssuerError,
    jwt.InvalidAudienceError,
    jwt.MissingRequiredClaimError,
    jwt.InvalidSignatureError,
    jwt.InvalidAlgorithmError,
)


class Refused(Exception):
    """The token is not acceptable. `cause` is for the log: it never holds the token or its claims."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


async def verify(
    token: str,
    keys: KeySet,
    *,
    algorithms: tuple[str, ...],
    issuer: str,
    audience: str,
    typ: str | None = None,
) -> dict[str, Any]:
    """The token's claims, once its signature, issuer, audience and times are checked. Raises Refused,
    or KeysUnavailable when there are no keys to check it with."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise Refused(f"malformed token ({type(exc).__name__})") from None
    # Checked before any key is looked up: "none", HS256 and the like never reach the key set.
    if header.get("alg") not in algorithms:
        raise Refused("algorithm not allowed")
    if typ is not None and header.get("typ") != typ:
        raise Refused(f"header typ is not {typ}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Refused("no kid in the header")
    try:
        key = await keys.get(kid)
    except UnknownKey:
        raise Refused("unknown kid") from None
    # An RSA key cannot check an ES256 signature (PyJWT would fail with an error, not a refusal), and a key
    # published for RS256 must not accept PS256.
    if header["alg"] not in key.algorithms:
        raise Refused("algorithm does not match the key")
    try:
        return jwt.decode(
            token,
            key.jwk.key,
            algorithms=[header["alg"]],
            issuer=issuer,
            audience=audience,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.PyJWTError as exc:
        cause = str(exc) if isinstance(exc, _SAFE_MESSAGES) else type(exc).__name__
        raise Refused(cause) from None


def unauthorized(detail: str, cause: str, headers: dict[str, str] | None = None) -> HTTPException:
    """401 with a short, safe `detail`; the concrete cause goes to the log only."""
    logger.warning("caller refused", extra={"fields": {"status": 401, "cause": cause}})
    return HTTPException(401, detail, headers=headers)


def unavailable(exc: KeysUnavailable) -> HTTPException:
    logger.error("caller refused: no signing keys to verify with", extra={"fields": {"status": 503}})
    return HTTPException(503, "Cannot verify callers right now; retry later.", headers=exc.headers())
