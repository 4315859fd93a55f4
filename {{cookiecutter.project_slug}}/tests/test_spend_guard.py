"""The spend guard (spend_guard.py) against a real redis-server, shared by two real uvicorn processes."""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import launcher
import pytest
from conftest import PROJECT, Server, log_lines, server_env, start_server, stop_server
from fake_gemini import DEFAULT_USAGE, FakeGemini
from redis_server import REDIS_SERVER, RedisServer

if REDIS_SERVER is None:
    pytest.skip(
        "redis-server is not installed (Debian: apt-get install redis-server): the spend guard is tested "
        "against a real Redis only",
        allow_module_level=True,
    )
{%- if cookiecutter.caller_check != "none" %}

from caller_keys import JwksServer, SigningKey, proof, server_settings, valid_claims  # noqa: E402
{%- endif %}

pytestmark = pytest.mark.slow  # a redis-server and backends of their own in every test
TASK = {"title": "Write the quarterly report"}
PER_REQUEST = DEFAULT_USAGE["totalTokenCount"]  # what the fake Gemini says each answer cost: 121 tokens
BUDGET = 3 * PER_REQUEST - 1  # three requests fit below it, the fourth finds it spent
# SPEND_GUARD_TIMEOUT_SECONDS for the outage tests: a frozen Redis is waited for this long (1.5 s by default).
STORE_TIMEOUT = 0.3
{%- if cookiecutter.caller_check == "none" %}

# Who is a caller with no caller check: the client's address, which Nginx passes on in X-Forwarded-For
# (uvicorn believes it from 127.0.0.1, where Nginx would be).
CALLER_SETTINGS: dict[str, str] = {}


def identity(name: str) -> dict[str, str]:
    return {"X-Forwarded-For": {"alice": "203.0.113.7", "bob": "203.0.113.8", "carol": "203.0.113.9"}[name]}
{%- else %}

# Who is a caller: the identity the caller check proved. Two of them, both from this one address.
KEY = SigningKey()
JWKS = JwksServer(KEY)
CALLER_SETTINGS = server_settings(JWKS)


def identity(name: str) -> dict[str, str]:
    claims = valid_claims(JWKS)
{%- if cookiecutter.caller_check == "firebase_app_check" %}
    claims["sub"] = claims["sub"].rsplit(":", 1)[0] + ":" + name  # another app of the same project
{%- else %}
    claims["sub"] = name  # another signed-in user
{%- endif %}
    return proof(KEY.sign(claims))
{%- endif %}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis").start()
    yield server
    if server.process is not None:
        server.resume()  # in case a test stopped while Redis was paused
    server.stop()


Start = Callable[..., Server]


@pytest.fixture
def backend(fake: FakeGemini, redis_server: RedisServer, tmp_path: Path) -> Iterator[Start]:
    """Starts backends on the shared Redis; each gets the spend settings it is given (the rest off)."""
    fake.reset()
    started: list[Server] = []

    def start(**settings: str) -> Server:
        env = server_env(fake, **CALLER_SETTINGS, REDIS_URL=redis_server.url, **settings)
        server = start_server(tmp_path, env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_server(server)


def post(server: Server, who: str = "alice") -> httpx.Response:
    return httpx.post(f"{server.url}/api/breakdown-task", json=TASK, headers=identity(who), timeout=30)


def seconds_to_midnight_utc() -> int:
    return math.ceil(86400 - time.time() % 86400)


def test_caller_day_budget_holds_across_two_backends(backend: Start, fake: FakeGemini) -> None:
    one, two = (
        backend(SPEND_TOKENS_PER_CALLER_PER_DAY=str(BUDGET)),
        backend(SPEND_TOKENS_PER_CALLER_PER_DAY=str(BUDGET)),
    )
    assert [post(server).status_code for server in (one, two, one)] == [200, 200, 200]
    for server in (two, one):  # spent on both: neither backend counted alone
        refused = post(server)
        assert refused.status_code == 429
        assert "per caller" in refused.json()["detail"] and "daily token budget" in refused.json()["detail"]
        assert abs(int(refused.headers["Retry-After"]) - seconds_to_midnight_utc()) <= 2
    assert fake.count == 3  # a refused request never reaches Gemini
    assert post(one, "bob").status_code == 200  # another caller still gets answers
    assert fake.count == 4


def test_deployment_budget_refuses_everyone_once_spent(
    backend: Start, fake: FakeGemini, redis_server: RedisServer
) -> None:
    one, two = backend(SPEND_TOKENS_PER_DAY=str(BUDGET)), backend(SPEND_TOKENS_PER_DAY=str(BUDGET))
    assert [post(s, who).status_code for s, who in ((one, "alice"), (two, "bob"), (one, "bob"))] == [200] * 3
    assert redis_server.tokens_today() == 3 * PER_REQUEST  # every attempt's tokens, thinking included
    for server, who in ((one, "alice"), (two, "bob"), (two, "carol")):
        refused = post(server, who)
        assert refused.status_code == 429 and "whole deployment" in refused.json()["detail"]
        assert abs(int(refused.headers["Retry-After"]) - seconds_to_midnight_utc()) <= 2
    assert fake.count == 3
    metrics = httpx.get(f"{two.url}/metrics").text
    assert 'spend_guard_refusals_total{limit="deployment_day"} 2.0' in metrics
    assert f"spend_guard_deployment_tokens_today {3 * PER_REQUEST}.0" in metrics


def test_counts_survive_a_backend_restart_and_a_redis_restart(
    backend: Start, fake: FakeGemini, redis_server: RedisServer
) -> None:
    settings = {"SPEND_TOKENS_PER_CALLER_PER_DAY": str(BUDGET)}
    one = backend(**settings)
    assert [post(one).status_code for _ in range(4)] == [200, 200, 200, 429]
    stop_server(one)
    again = backend(**settings)
    assert post(again).status_code == 429  # the count is in Redis, not in the process
    redis_server.stop()
    redis_server.start()  # appendonly: the counts come back from disk
    assert redis_server.tokens_today() == 3 * PER_REQUEST
    assert post(again).status_code == 429
    assert post(again, "bob").status_code == 200
    assert fake.count == 4


def test_requests_per_minute_per_caller_with_retry_after_until_the_next_minute(backend: Start) -> None:
    if time.time() % 60 > 50:  # all three requests in one minute window
        time.sleep(61 - time.time() % 60)
    server = backend(SPEND_REQUESTS_PER_CALLER_PER_MINUTE="2")
    assert [post(server).status_code for _ in range(2)] == [200, 200]
    refused = post(server)
    assert refused.status_code == 429 and "this minute" in refused.json()["detail"]
    assert abs(int(refused.headers["Retry-After"]) - math.ceil(60 - time.time() % 60)) <= 1
    assert post(server, "bob").status_code == 200


def test_two_identities_are_counted_apart(backend: Start, fake: FakeGemini) -> None:
    server = backend(SPEND_TOKENS_PER_CALLER_PER_DAY=str(PER_REQUEST))
    assert post(server, "alice").status_code == 200
    assert post(server, "alice").status_code == 429
    assert post(server, "bob").status_code == 200
    assert post(server, "bob").status_code == 429
    assert fake.count == 2


def test_overshoot_stays_within_the_requests_in_flight(
    backend: Start, fake: FakeGemini, redis_server: RedisServer
) -> None:
    """Bursts of CONCURRENT requests at the edge: admitted while below the budget, counted when they end."""
    concurrent, budget = 12, 10 * PER_REQUEST
    server = backend(SPEND_TOKENS_PER_DAY=str(budget))
    fake.latency = 0.2  # long enough that a whole burst is in flight at once
    statuses: list[int] = []
    try:
        while 429 not in statuses:
            with ThreadPoolExecutor(concurrent) as pool:
                statuses += pool.map(lambda _: post(server).status_code, range(concurrent))
    finally:
        fake.latency = 0.0  # the fake is shared by the whole session
    spent = redis_server.tokens_today()
    assert spent == statuses.count(200) * PER_REQUEST == fake.count * PER_REQUEST  # refused ones cost nothing
    # The stated bound (README): below the budget when the last request was admitted, plus what the
    # requests in flight then cost.
    assert budget <= spent <= budget - 1 + concurrent * PER_REQUEST
    assert post(server).status_code == 429 and fake.count == statuses.count(200)


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_redis_down_refuse_answers_503_fast_then_recovers(
    backend: Start, fake: FakeGemini, redis_server: RedisServer, outage: str
) -> None:
    server = backend(SPEND_TOKENS_PER_DAY="1000000", SPEND_GUARD_TIMEOUT_SECONDS=str(STORE_TIMEOUT))
    assert post(server).status_code == 200
    redis_server.stop() if outage == "stopped" else redis_server.pause()
    for _ in range(3):
        started = time.monotonic()
        refused = post(server)
        took = time.monotonic() - started
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "5", refused.text
        assert took < STORE_TIMEOUT + 0.5, f"503 after {took:.2f} s"  # the deadline, with a margin: never hung
    assert fake.count == 1  # nothing is spent while the guard cannot count
    errors = [line for line in log_lines(server) if line["level"] == "ERROR"]
    assert errors and all("spend guard" in line["message"] for line in errors)
    assert 'spend_guard_errors_total{step="check"} 3.0' in httpx.get(f"{server.url}/metrics").text
    redis_server.start() if outage == "stopped" else redis_server.resume()
    assert post(server).status_code == 200  # by itself: no backend restart
    assert fake.count == 2


def test_redis_down_allow_passes_with_a_warning_then_counts_again(
    backend: Start, fake: FakeGemini, redis_server: RedisServer
) -> None:
    server = backend(
        SPEND_TOKENS_PER_DAY="1000000",
        SPEND_GUARD_WHEN_STORE_DOWN="allow",
        SPEND_GUARD_TIMEOUT_SECONDS=str(STORE_TIMEOUT),
    )
    redis_server.stop()
    started = time.monotonic()
    assert post(server).status_code == 200
    assert time.monotonic() - started < 2 * STORE_TIMEOUT + 0.5  # the check's and the count's deadlines, not a hang
    assert any(line["level"] == "WARNING" and "spend guard off" in line["message"] for line in log_lines(server))
    redis_server.start()
    assert post(server).status_code == 200
    assert redis_server.tokens_today() == PER_REQUEST  # counted again: only the unguarded request is missing


def doctor(redis_url: str, fake: FakeGemini, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), **server_env(fake, **CALLER_SETTINGS)}
    env |= {"REDIS_URL": redis_url, "SPEND_TOKENS_PER_DAY": "5000"}
    return launcher.run([str(PROJECT / "doctor.py")], cwd=cwd, env=env)


def test_doctor_prints_todays_spend_and_fails_without_redis(
    backend: Start, fake: FakeGemini, redis_server: RedisServer, tmp_path: Path
) -> None:
    assert post(backend(SPEND_TOKENS_PER_DAY="5000")).status_code == 200
    result = doctor(redis_server.url, fake, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"deployment {PER_REQUEST} of 5000 tokens" in result.stdout
    redis_server.stop()
    result = doctor(redis_server.url, fake, tmp_path)
    assert result.returncode == 1 and "FAIL  spend store" in result.stdout, result.stdout
