"""Smoke test of the production stack on Docker: up, healthy, one answer, spread over replicas, down.

    python scripts/smoke_stack.py

It runs compose.yaml with compose.fake.yaml (a fake Gemini instead of Google's: no key, no cost) as a
separate Compose project, `{{ cookiecutter.project_slug }}-smoke`, so it never touches a stack you run. It uses the same
{% if cookiecutter.https == "off" %}port ({{ cookiecutter.port }}){% else %}ports (80 and 443){% endif %} and subnet, so stop your own stack first. Without a .env it writes one with a throwaway key
and deletes it afterwards{% if cookiecutter.https == "own_certificate" %}; likewise a throwaway certificate in certs/
when there is none{% endif %}. Standard library only; exits 1 on the first failed check, 0 when all pass.
"""

import http.client
import json
import secrets
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
COMPOSE = ["docker", "compose", "-p", "{{ cookiecutter.project_slug }}-smoke", "-f", "compose.yaml", "-f", "compose.fake.yaml"]
HTTPS = "{{ cookiecutter.https }}"  # off, letsencrypt or own_certificate
URL = "http://127.0.0.1:{{ cookiecutter.port }}" if HTTPS == "off" else "https://127.0.0.1"
# This checks the stack, not the certificate (a temporary or throwaway one here): no verification.
CONTEXT = None if HTTPS == "off" else ssl._create_unverified_context()  # noqa: S323
REPLICAS = {{ cookiecutter.backend_replicas }}
# ip_hash sends every request of one client to the same replica; the others spread them out.
SPREADS = {{ "False" if cookiecutter.load_balancing == "ip_hash" else "True" }}
# Requests for the spread check; the per-client rate limit allows a burst of 10 after the first.
SPREAD_REQUESTS = min(REPLICAS, 10)
# With a caller check ({{ cookiecutter.caller_check }}) this script has no proof to send: a replica must refuse the call
# with 401, which shows the check is in force (the project's own tests make verified calls).
CALLER_CHECK = {{ "False" if cookiecutter.caller_check == "none" else "True" }}
API_STATUS = 401 if CALLER_CHECK else 200


class SmokeFailure(Exception):
    pass


def compose(*args: str, check: bool = True) -> str:
    result = subprocess.run([*COMPOSE, *args], cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise SmokeFailure(f"docker compose {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def call(method: str, path: str, body: object = None) -> tuple[int, dict[str, str], object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30, context=CONTEXT) as reply:
            return reply.status, dict(reply.headers), json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read() or b"null")


def check(ok: bool, what: str) -> None:
    if not ok:
        raise SmokeFailure(what)
    print(f"ok    {what}")  # noqa: T201 - a command-line tool


def access_log(request_ids: set[str]) -> dict[str, dict]:
    """Nginx's JSON access-log entries for these ids (it may take a moment to write them)."""
    found: dict[str, dict] = {}
    for _ in range(20):
        for line in compose("logs", "--no-color", "--no-log-prefix", "nginx").splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("request_id") in request_ids:
                    found[entry["request_id"]] = entry
        if len(found) == len(request_ids):
            break
        time.sleep(0.5)
    return found


def smoke() -> None:
    started = time.monotonic()
    compose("up", "--build", "--detach", "--wait", "--wait-timeout", "180")
    check(True, f"stack up and healthy in {time.monotonic() - started:.0f} s")

    status, _, _ = call("GET", "/healthz")
    check(status == 200, f"nginx answers /healthz on {URL}")
    if HTTPS != "off":
        plain = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
        plain.request("POST", "/api/breakdown-task", body=b"{}")
        redirect = plain.getresponse()
        check(redirect.status == 308, "plain HTTP sends a POST to HTTPS (308) without serving it")

    status, headers, body = call("POST", "/api/breakdown-task", {"title": "Plan a team offsite"})
    if CALLER_CHECK:
        check(status == 401 and isinstance(body, dict) and body.get("detail"), "the API refuses a call without proof")
    else:
        titles = [item.get("title") for item in body] if isinstance(body, list) else []
        check(status == 200 and 2 <= len(titles) <= 5 and all(titles), f"the API answers with {len(titles)} sub-tasks")

    ids = set()
    for i in range(SPREAD_REQUESTS):
        status, headers, _ = call("POST", "/api/breakdown-task", {"title": f"Task {i}"})
        check(status == API_STATUS, f"request {i + 1} of {SPREAD_REQUESTS} answered {API_STATUS}")
        ids.add(headers.get("X-Request-ID", headers.get("x-request-id", "")))
    replicas = {entry["upstream_addr"] for entry in access_log(ids).values()}
    expected = SPREAD_REQUESTS if SPREADS else 1
    reached = f"{SPREAD_REQUESTS} requests reached {len(replicas)} replicas (expected {expected})"
    check(len(replicas) == expected, reached)


def main() -> int:
    env_file = PROJECT_DIR / ".env"
    made_env = not env_file.exists()
    if made_env:  # the fake accepts any key; this one is never used anywhere else
        env_file.write_text(f"GEMINI_API_KEY=smoke-{secrets.token_hex(8)}\n")
    certs = PROJECT_DIR / "certs"
    made_folder = not certs.exists()
    made_certs = HTTPS == "own_certificate" and not (certs / "fullchain.pem").exists()
    if made_certs:  # a throwaway pair; its key is made readable for nginx (uid 101) and deleted afterwards
        script = ["sh", "scripts/self_signed_cert.sh", "{{ cookiecutter.domain }}", "certs", "1"]
        subprocess.run(script, cwd=PROJECT_DIR, check=True)
        (certs / "privkey.pem").chmod(0o644)
    try:
        smoke()
        print("smoke test passed")  # noqa: T201
        return 0
    except SmokeFailure as failure:
        print(f"FAIL  {failure}", file=sys.stderr)  # noqa: T201
        print(compose("logs", "--no-color", "--tail", "30", check=False), file=sys.stderr)  # noqa: T201
        return 1
    finally:
        compose("down", "--volumes", "--remove-orphans", "--timeout", "60", check=False)
        if made_env:
            env_file.unlink()
        if made_certs:
            for name in ("fullchain.pem", "privkey.pem"):
                (certs / name).unlink()
            if made_folder:
                certs.rmdir()


if __name__ == "__main__":
    sys.exit(main())
