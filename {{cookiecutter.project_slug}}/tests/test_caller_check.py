"""The caller check (caller_check.py) against real tokens, real keys and a real JWKS server.

Each refused request must get its answer before anything is spent: the fake Gemini's counter stays at 0,
and no piece of the token reaches the log.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from caller_keys import TOKEN_TYPE, JwksServer, SigningKey, forge_hs256, proof, server_settings, valid_claims
from conftest import Server, log_lines, server_env, start_server, stop_server
from fake_gemini import FakeGemini

import jwks
from caller_check import HEADER, INVALID, MISSING
from jwks import FETCH_DEADLINE_SECONDS, MIN_FETCH_INTERVAL_SECONDS
from settings import Settings

API = "/api/breakdown-task"
TASK = {"title": "Plan the offsite"}
ALLOWED_ORIGIN = Settings.model_fields["allowed_origins"].default[0]
# A request waits about a second for keys being fetched, then gets its 503: this leaves room for a busy machine.
KEY_WAIT_BOUND_SECONDS = 2.5


class Caller:
    """A JWKS server publishing `key` (RSA) and `ec_key`, and a backend that trusts it."""

    def __init__(self, jwks: JwksServer, key: SigningKey, server: Server) -> None:
        self.jwks, self.key, self.server = jwks, key, server
        self.ec_key = jwks.keys[1]
        self.sent: list[str] = []  # every token sent: none of it may show up in the log

    def claims(self, **changes: Any) -> dict[str, Any]:
        return {**valid_claims(self.jwks), **changes}

    def post(self, headers: dict[str, str], token: str | None = None) -> httpx.Response:
        if token is not None:
            self.sent.append(token)
        response = httpx.post(f"{self.server.url}{API}", json=TASK, headers=headers, timeout=30)
        self.server.note(response)  # assert_nothing_of_the_tokens_logged() waits for its log line
        return response

    def post_token(self, token: str) -> httpx.Response:
        return self.post(proof(token), token)

    def timed_post(self, token: str) -> tuple[int | None, float]:
        """(status, seconds) of one request; status None when no answer came within 15 s."""
        started = time.monotonic()
        try:
            response = httpx.post(f"{self.server.url}{API}", json=TASK, headers=proof(token), timeout=15)
        except httpx.TimeoutException:
            return None, time.monotonic() - started
        self.sent.append(token)
        self.server.note(response)
        return response.status_code, time.monotonic() - started

    def tries(self) -> int:
        """Requests the backend made to the issuer: discovery and JWKS fetches."""
        return self.jwks.fetches + self.jwks.discoveries

    def assert_nothing_of_the_tokens_logged(self) -> None:
        log_lines(self.server)  # every answer's log line written
        log = self.server.log()
        for token in self.sent:
            for part in token.split("."):
                pieces = [part[i : i + 16] for i in range(0, max(1, len(part) - 15), 8)]
                assert not any(len(piece) >= 12 and piece in log for piece in pieces), "a token reached the log"


def start_caller(
    tmp_path: Path, fake: FakeGemini, jwks_down: bool = False, jwks: JwksServer | None = None, **settings: str
) -> Caller:
    """A backend trusting `jwks` (by default a new JWKS server publishing a new RSA and a new EC key)."""
    if jwks is None:
        jwks = JwksServer(SigningKey(), SigningKey("EC"))
    jwks.down = jwks_down
    server = start_server(tmp_path, server_env(fake, **server_settings(jwks), **settings))
    return Caller(jwks, jwks.keys[0], server)


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

    def start(jwks_down: bool = False, jwks: JwksServer | None = None, **settings: str) -> Caller:
        started.append(start_caller(tmp_path, fake, jwks_down, jwks, **settings))
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
    "basic-not-bearer": lambda c, other: {"Authorization": "Basic dXNlcjpwYXNz"},
    # The token's algorithm must be the one its key is for: the JWKS says RS256 for the RSA key, ES256 for the EC one.
    "rs512-for-an-rs256-key": lambda c, other: proof(c.key.sign(c.claims(), algorithm="RS512")),
    "ps256-for-an-rs256-key": lambda c, other: proof(c.key.sign(c.claims(), algorithm="PS256")),
    "es256-naming-an-rsa-key": lambda c, other: proof(c.ec_key.sign(c.claims(), kid=c.key.kid)),
    "rs256-naming-an-ec-key": lambda c, other: proof(c.key.sign(c.claims(), kid=c.ec_key.kid)),
}
if TOKEN_TYPE:
    REFUSALS["typ-not-" + TOKEN_TYPE.lower()] = lambda c, other: proof(c.key.sign(c.claims(), typ="at+jwt"))


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
    assert response.json() == {"detail": MISSING if name in NO_TOKEN else INVALID}
    if HEADER == "Authorization":  # a bearer token's refusal names the scheme (RFC 6750)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert fake.count == 0
    caller.assert_nothing_of_the_tokens_logged()
    assert "Traceback" not in caller.server.log()


def fetches_allowed(seconds: float) -> int:
    """The most fetches the interval allows in `seconds`: one at once, then one per interval. Bounding by the
    time a test really took keeps it right on a slow machine."""
    return 1 + int(seconds / MIN_FETCH_INTERVAL_SECONDS) + 1


def test_an_unknown_kid_refetches_at_most_once_then_401(caller: Caller, fake: FakeGemini) -> None:
    fake.reset()
    key = SigningKey()  # one stranger's key, under new kids
    tokens = [key.sign(caller.claims(), kid=secrets.token_hex(8)) for _ in range(6)]
    started, before = time.monotonic(), caller.jwks.fetches
    assert caller.post_token(tokens[0]).status_code == 401
    assert caller.jwks.fetches - before <= 1
    for token in tokens[1:]:
        assert caller.post_token(token).status_code == 401
    # The next unknown kids wait for the interval.
    assert caller.jwks.fetches - before <= fetches_allowed(time.monotonic() - started) - 1
    assert fake.count == 0


@pytest.mark.slow
def test_a_burst_of_random_kids_causes_a_handful_of_fetches(caller: Caller, fake: FakeGemini) -> None:
    fake.reset()
    key = SigningKey()  # one key signs them all (2048-bit keys are slow to make), each under a random kid
    tokens = [key.sign(caller.claims(), kid=secrets.token_hex(8)) for _ in range(200)]
    started, before = time.monotonic(), caller.jwks.fetches
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(lambda token: caller.post_token(token).status_code, tokens))
    fetches, seconds = caller.jwks.fetches - before, time.monotonic() - started
    assert statuses == [401] * 200
    assert fetches <= fetches_allowed(seconds), f"{fetches} fetches in {seconds:.1f} s"
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


@pytest.mark.slow
def test_no_keys_at_all_is_503_with_retry_after(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh(jwks_down=True)
    fake.reset()
    first = caller.post_token(caller.key.sign(caller.claims()))
    assert first.status_code == 503
    assert first.json() == {"detail": "Cannot verify callers right now; retry later."}
    assert 1 <= int(first.headers["retry-after"]) <= MIN_FETCH_INTERVAL_SECONDS
    started, tries = time.monotonic(), caller.tries()
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 503
    if time.monotonic() - started < MIN_FETCH_INTERVAL_SECONDS - 1:  # else a slow machine let the interval pass
        assert caller.tries() == tries  # no new try before the interval
    assert fake.count == 0
    caller.assert_nothing_of_the_tokens_logged()


@pytest.mark.slow
def test_a_slow_jwks_gets_every_waiting_caller_a_quick_503(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh()
    caller.jwks.delay = 30  # the issuer answers, but far too late
    token = caller.key.sign(caller.claims())
    with ThreadPoolExecutor(10) as pool:
        results = list(pool.map(lambda _: caller.timed_post(token), range(10)))
    assert [status for status, _ in results] == [503] * 10
    slowest = max(seconds for _, seconds in results)
    assert slowest < KEY_WAIT_BOUND_SECONDS, f"a caller waited {slowest:.1f} s"
    assert caller.tries() == 1  # the callers shared one fetch
    assert fake.count == 0


@pytest.mark.slow
def test_a_trickling_jwks_cannot_hold_requests(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh()
    caller.jwks.trickle = 0.5  # one byte every half second: each read succeeds, the whole never arrives
    status, seconds = caller.timed_post(caller.key.sign(caller.claims()))
    assert status == 503
    assert seconds < KEY_WAIT_BOUND_SECONDS, f"the caller waited {seconds:.1f} s"
    # The fetch itself gives up at its deadline for the whole answer, however often a byte arrives.
    deadline = time.monotonic() + FETCH_DEADLINE_SECONDS + 5
    while "no complete answer within" not in caller.server.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "no complete answer within" in caller.server.log()
    assert fake.count == 0


def test_keys_due_for_a_refetch_are_used_while_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    key = SigningKey()
    with JwksServer(key) as issuer:

        async def scenario() -> float:
            keys = jwks.KeySet(issuer.jwks_url)
            await keys.get(key.kid)  # fetched and cached
            monkeypatch.setattr(jwks, "REFRESH_AFTER_SECONDS", 0.0)  # as if they had been cached for the hour...
            monkeypatch.setattr(jwks, "MIN_FETCH_INTERVAL_SECONDS", 0.0)
            issuer.delay = 3  # ...and the issuer were slow to answer
            started = time.monotonic()
            await keys.get(key.kid)
            seconds = time.monotonic() - started
            while issuer.fetches < 2:  # the refetch runs in the background
                await asyncio.sleep(0.05)
            return seconds

        assert asyncio.run(scenario()) < 0.5


@pytest.mark.slow
def test_a_rotated_key_is_picked_up(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh()
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200
    new_key = SigningKey()
    caller.jwks.keys.append(new_key)  # the issuer publishes a new key and starts signing with it
    token = new_key.sign(caller.claims())
    deadline = time.monotonic() + MIN_FETCH_INTERVAL_SECONDS + 10
    while (status := caller.post_token(token).status_code) == 401 and time.monotonic() < deadline:
        time.sleep(0.5)  # refused until the interval since the last fetch has passed
    assert status == 200
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_a_configured_jwks_url_skips_discovery(fresh: Callable[..., Caller]) -> None:
    key = SigningKey()
    with JwksServer(key) as elsewhere:
        caller = fresh(OIDC_JWKS_URL=elsewhere.jwks_url)
        assert caller.post_token(key.sign(caller.claims())).status_code == 200
        assert elsewhere.fetches == 1 and caller.jwks.discoveries == 0


@pytest.mark.slow
def test_a_discovered_jwks_url_must_be_https_too(fresh: Callable[..., Caller], fake: FakeGemini) -> None:
    caller = fresh()
    fake.reset()
    # Plain http to a host that is not this machine's loopback name (127.0.0.2 still reaches this machine).
    with JwksServer(caller.key, host="127.0.0.2") as elsewhere:
        caller.jwks.discovered_jwks_url = elsewhere.jwks_url
        assert caller.post_token(caller.key.sign(caller.claims())).status_code == 503
        assert elsewhere.fetches == 0
    assert "must be an https:// URL" in caller.server.log()
    assert fake.count == 0


@pytest.mark.slow
def test_an_issuer_ending_in_a_slash_is_compared_as_configured(fresh: Callable[..., Caller]) -> None:
    auth0_style = "https://tenant.auth0.com/"
    assert Settings(gemini_api_key="k", oidc_issuer=auth0_style).oidc_issuer == auth0_style  # kept as configured
    issuer = JwksServer(SigningKey(), SigningKey("EC"))
    issuer.issuer = f"{issuer.url}/"  # discovery is still at <issuer without its slash>/.well-known/...
    caller = fresh(jwks=issuer)
    assert caller.post_token(caller.key.sign(caller.claims())).status_code == 200
    assert caller.post_token(caller.key.sign(caller.claims(iss=issuer.url))).status_code == 401  # another issuer
{%- endif %}
