"""The caller check (caller_check.py) against real tokens, real keys and a real JWKS server.

Each refused request must get its answer before anything is spent: the fake Gemini's counter stays at 0,
and no piece of the token reaches the log.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from caller_keys import JwksServer, SigningKey, forge_hs256, proof, server_settings, valid_claims
from conftest import Server, log_lines, server_env, start_server, stop_server
from fake_gemini import FakeGemini

from jwks import MIN_FETCH_INTERVAL_SECONDS
from settings import Settings

API = "/api/breakdown-task"
TASK = {"title": "Plan the offsite"}
ALLOWED_ORIGIN = Settings.model_fields["allowed_origins"].default[0]
{%- if cookiecutter.caller_check == "firebase_app_check" %}
HEADER = "X-Firebase-AppCheck"
DETAIL = "Missing or invalid App Check token."
MISSING_DETAIL = INVALID_DETAIL = DETAIL
{%- else %}
HEADER = "Authorization"
MISSING_DETAIL = "Sign in first: this API needs a bearer token."
INVALID_DETAIL = "Invalid or expired sign-in token; sign in again."
{%- endif %}


class Caller:
    """A JWKS server publishing `key`, and a backend that trusts it."""

    def __init__(self, jwks: JwksServer, key: SigningKey, server: Server) -> None:
        self.jwks, self.key, self.server = jwks, key, server
        self.sent: list[str] = []  # every token sent: none of it may show up in the log

    def claims(self, **changes: Any) -> dict[str, Any]:
        return {**valid_claims(self.jwks), **changes}

    def post(self, headers: dict[str, str], token: str | None = None) -> httpx.Response:
        if token is not None:
            self.sent.append(token)
        return httpx.post(f"{self.server.url}{API}", json=TASK, headers=headers, timeout=30)

    def post_token(self, token: str) -> httpx.Response:
        return self.post(proof(token), token)

    def assert_nothing_of_the_tokens_logged(self) -> None:
        time.sleep(0.2)  # the request's log line is written just after its answer
        log = self.server.log()
        for token in self.sent:
            for part in token.split("."):
                pieces = [part[i : i + 16] for i in range(0, max(1, len(part) - 15), 8)]
                assert not any(len(piece) >= 12 and piece in log for piece in pieces), "a token reached the log"


def start_caller(tmp_path: Path, fake: FakeGemini, jwks_down: bool = False, **settings: str) -> Caller:
    key = SigningKey()
    jwks = JwksServer(key)
    jwks.down = jwks_down
    server = start_server(tmp_path, server_env(fake, **server_settings(jwks), **settings))
    return Caller(jwks, key, server)


def stop_caller(caller: Caller) -> None:
    stop_server(caller.server)
    caller.jwks.stop()


@pytest.fixture(scope="module")
def caller(fake: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Caller]:
    running = start_caller(tmp_path_factory.mktemp("caller"), fake)
    yield running
    stop_caller(running)


@pytest.fixture
def fresh(fake: FakeGemini, tmp_path: Path) -> Iterator[Callable[..., Caller]]:
    """fresh(**settings): a backend of its own, with nothing cached yet."""
    started: list[Caller] = []

    def start(jwks_down: bool = False, **settings: str) -> Caller:
        started.append(start_caller(tmp_path, fake, jwks_down, **settings))
        return started[-1]

    yield start
    for running in started:
        stop_caller(running)


def test_a_valid_token_gets_suggestions_and_one_gemini_call(caller: Caller, fake: FakeGemini) -> None:
    fake.reset()
    response = caller.post_token(caller.key.sign(caller.claims()))
    assert response.status_code == 200, response.text
    assert len(response.json()) == 3
    assert fake.count == 1
    assert caller.jwks.fetches == 1  # fetched once...
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200
    assert caller.jwks.fetches == 1  # ...and cached
    caller.assert_nothing_of_the_tokens_logged()


def now() -> int:
    return int(time.time())


# name -> the headers of a request the API must refuse, made from the caller's key and a stranger's key.
REFUSALS: dict[str, Callable[[Caller, SigningKey], dict[str, str]]] = {
    "missing": lambda c, other: {},
    "malformed": lambda c, other: proof("not-a-token"),
    "three-garbage-parts": lambda c, other: proof("abc.def.ghi"),
    "alg-none": lambda c, other: proof(jwt_none(c.claims(), c.key.kid)),
    "hs256-with-the-public-key-as-secret": lambda c, other: proof(
        forge_hs256(c.claims(), c.key.kid, c.key.public_pem())
    ),
    "wrong-issuer": lambda c, other: proof(c.key.sign(c.claims(iss="https://issuer.example.com/1"))),
    "wrong-audience": lambda c, other: proof(c.key.sign(c.claims(aud="projects/999"))),
    "expired": lambda c, other: proof(c.key.sign(c.claims(iat=now() - 7200, exp=now() - 60))),
    "not-yet-valid": lambda c, other: proof(c.key.sign(c.claims(nbf=now() + 600))),
    "no-expiry": lambda c, other: proof(c.key.sign({k: v for k, v in c.claims().items() if k != "exp"})),
    "signed-by-another-key-under-a-known-kid": lambda c, other: proof(other.sign(c.claims(), kid=c.key.kid)),
    "no-kid": lambda c, other: proof(c.key.sign(c.claims(), kid=None)),
{%- if cookiecutter.caller_check == "firebase_app_check" %}
    "typ-not-jwt": lambda c, other: proof(c.key.sign(c.claims(), typ="at+jwt")),
    "rs512-not-rs256": lambda c, other: proof(c.key.sign(c.claims(), algorithm="RS512")),
{%- else %}
    "basic-not-bearer": lambda c, other: {"Authorization": "Basic dXNlcjpwYXNz"},
{%- endif %}
}


def jwt_none(claims: dict[str, Any], kid: str) -> str:
    import jwt

    return jwt.encode(claims, None, algorithm="none", headers={"kid": kid})


# Refusals that carry no token at all: the answer says one is needed.
NO_TOKEN = ("missing", "basic-not-bearer")


@pytest.mark.parametrize("name", REFUSALS)
def test_refused_without_a_gemini_call(caller: Caller, fake: FakeGemini, name: str) -> None:
    fake.reset()
    headers = REFUSALS[name](caller, SigningKey())
    token = headers.get(HEADER, "").removeprefix("Bearer ") or None
    response = caller.post(headers, token)
    assert response.status_code == 401
    assert response.json() == {"detail": MISSING_DETAIL if name in NO_TOKEN else INVALID_DETAIL}
{%- if cookiecutter.caller_check == "oidc" %}
    assert response.headers["www-authenticate"].startswith("Bearer")
{%- endif %}
    assert fake.count == 0
    caller.assert_nothing_of_the_tokens_logged()


def test_an_unknown_kid_refetches_at_most_once_then_401(caller: Caller, fake: FakeGemini) -> None:
    fake.reset()
    before = caller.jwks.fetches
    stranger = SigningKey()
    assert caller.post_token(stranger.sign(caller.claims())).status_code == 401
    assert caller.jwks.fetches - before <= 1
    for _ in range(5):
        assert caller.post_token(SigningKey().sign(caller.claims())).status_code == 401
    assert caller.jwks.fetches - before <= 1  # the next unknown kids wait for the interval
    assert fake.count == 0


def test_a_burst_of_random_kids_causes_a_handful_of_fetches(caller: Caller, fake: FakeGemini) -> None:
    fake.reset()
    before = caller.jwks.fetches
    key = SigningKey()  # one key signs them all (2048-bit keys are slow to make), each under a random kid
    tokens = [key.sign(caller.claims(), kid=secrets.token_hex(8)) for _ in range(200)]
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda token: caller.post_token(token).status_code, tokens))
    assert statuses == [401] * 200
    assert caller.jwks.fetches - before <= 3
    assert fake.count == 0


def test_keys_in_the_cache_outlive_a_jwks_outage(caller: Caller, fake: FakeGemini) -> None:
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200  # the keys are cached
    caller.jwks.down = True
    try:
        fake.reset()
        assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200
        assert caller.post_token(SigningKey().sign(caller.claims())).status_code == 401  # still refused
        assert fake.count == 1
    finally:
        caller.jwks.down = False


def test_no_keys_at_all_is_503_with_retry_after(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh(jwks_down=True)
    fake.reset()
    first = caller.post_token(caller.key.sign(caller.claims()))
    assert first.status_code == 503
    assert first.json() == {"detail": "Cannot verify callers right now; retry later."}
    assert 1 <= int(first.headers["retry-after"]) <= MIN_FETCH_INTERVAL_SECONDS
    tries = caller.jwks.fetches + caller.jwks.discoveries
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 503
    assert caller.jwks.fetches + caller.jwks.discoveries == tries  # no new try before the interval
    assert fake.count == 0
    caller.assert_nothing_of_the_tokens_logged()


def test_a_rotated_key_is_picked_up(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh()
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200
    new_key = SigningKey()
    caller.jwks.keys.append(new_key)  # the issuer publishes a new key and starts signing with it
    time.sleep(MIN_FETCH_INTERVAL_SECONDS)
    assert caller.post_token(new_key.sign(caller.claims())).status_code == 200
    assert caller.jwks.fetches == 2


def test_other_routes_ask_no_proof(caller: Caller) -> None:
    for path in ("/", "/healthz", "/docs", "/openapi.json", "/metrics"):
        assert httpx.get(f"{caller.server.url}{path}").status_code == 200, path
    schema = httpx.get(f"{caller.server.url}/openapi.json").json()
    assert schema["paths"]["/api/breakdown-task"]["post"]["security"]  # /docs shows what the API asks for
    assert "401" in schema["paths"]["/api/breakdown-task"]["post"]["responses"]


def test_cors_admits_the_proof_header_from_allowed_origins_only(caller: Caller) -> None:
    def preflight(origin: str) -> httpx.Response:
        headers = {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": f"content-type,{HEADER.lower()}",
        }
        return httpx.options(f"{caller.server.url}{API}", headers=headers)

    allowed = preflight(ALLOWED_ORIGIN)
    assert allowed.status_code == 200
    assert HEADER.lower() in allowed.headers["access-control-allow-headers"].lower()
    refused = preflight("https://evil.example")
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
{%- if cookiecutter.caller_check == "firebase_app_check" %}


def test_app_ids_limit_which_apps_may_call(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh(APP_CHECK_APP_IDS="1:111:web:other, 1:222:web:another")
    fake.reset()
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 401
    response = caller.post_token(caller.key.sign(caller.claims(sub="1:222:web:another")))
    assert response.status_code == 200
    assert fake.count == 1
    rid = response.headers["x-request-id"]
    (line,) = [line for line in log_lines(caller.server) if line.get("request_id") == rid and "app_id" in line]
    assert line["app_id"] == "1:222:web:another"  # app ids are public: the log names the app
{%- else %}


def test_the_log_holds_a_hash_of_the_user_never_the_user(caller: Caller) -> None:
    user = "alice-8c1f0e6d9a"
    response = caller.post_token(caller.key.sign(caller.claims(sub=user)))
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    (line,) = [line for line in log_lines(caller.server) if line.get("request_id") == rid and "caller" in line]
    assert len(line["caller"]) == 16
    assert user not in caller.server.log()


def test_a_configured_jwks_url_skips_discovery(fresh: Callable[..., Caller]) -> None:
    key = SigningKey()
    with JwksServer(key) as elsewhere:
        caller = fresh(OIDC_JWKS_URL=elsewhere.jwks_url)
        assert caller.post_token(key.sign(caller.claims())).status_code == 200
        assert elsewhere.fetches == 1 and caller.jwks.discoveries == 0
{%- endif %}
