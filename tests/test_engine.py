"""The generated stack on a real Docker engine (root): build, `up --wait`, hardening, secrets, the API
through the published port (a second prompt file's endpoint too), and zero failed requests and zero lost streams
while replicas are scaled, restarted and stopped.

Base images are stand-ins built here (tests/support/engine.py says how); the bake itself is unmodified. Two
bakes: Python 3.11 with a non-default port, replica count and balancing method runs the bake's own
smoke script (the same one its CI `stack` job runs); Python 3.13 with the other defaults runs
everything else. Rate limits are baked high there, so they never throttle the load.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.engine import ComposeStack, Engine, Load, StreamLoad, engine_unavailable, percentile, run, stream
from support.helpers import certificate_summary
from test_stack import SECOND_PROMPT

OIDC_ANSWERS = {"caller_check": "oidc", "oidc_issuer": "https://securetoken.google.com/p", "oidc_audience": "p"}
OWN_CERT_ANSWERS = {"https": "own_certificate", "domain": "localhost"}
SMOKE_ANSWERS = {"python_version": "3.11", "port": "18081", "backend_replicas": "4", "load_balancing": "round_robin"}
STACK_ANSWERS = {
    "python_version": "3.13",
    "port": "18080",
    "rate_limit_per_minute": "100000",
    "global_rate_limit_per_minute": "1000000",
}
URL = f"http://127.0.0.1:{STACK_ANSWERS['port']}"
API = f"{URL}/api/breakdown-task"
KEY = "engine-tier-key-4d1c9b7e-never-in-an-image"
FAKE_LATENCY = 0.1  # seconds; the added latency below is measured against it
# A streamed answer comes in this many pieces this far apart (after FAKE_LATENCY): about 2.2 s a stream,
# long enough that stopping a replica meets streams it is serving.
STREAM_CHUNKS, CHUNK_DELAY = 8, 0.3

pytestmark = [pytest.mark.root, pytest.mark.engine]


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    reason = engine_unavailable()
    if reason:
        pytest.skip(f"real-engine tier skipped: {reason}")
    with Engine() as running:
        yield running


@pytest.fixture(scope="module")
def stack(engine: Engine, bake: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeStack]:
    baked = bake(**STACK_ANSWERS)
    project = tmp_path_factory.mktemp("engine-stack") / baked.name  # bakes are shared by the session
    shutil.copytree(baked, project)
    # A second prompt file, as a user adds one (the generated README's "Add your own endpoint"): built into
    # the image with the seed's, so POST /api/summarize is served by every replica.
    (project / "prompts" / "summarize.prompt").write_text(SECOND_PROMPT)
    engine.standins(project)
    # The spend guard stays on (every request is checked and counted in the stack's Redis) but its per-caller
    # day budget is off: the load below is one caller (the host's address) making thousands of requests.
    (project / ".env").write_text(f"GEMINI_API_KEY={KEY}\nSPEND_TOKENS_PER_CALLER_PER_DAY=0\n")
    fake = {"FAKE_GEMINI_LATENCY": str(FAKE_LATENCY), "FAKE_GEMINI_STREAM_CHUNKS": str(STREAM_CHUNKS),
            "FAKE_GEMINI_CHUNK_DELAY": str(CHUNK_DELAY)}  # fmt: skip
    running = ComposeStack(engine, project, env=fake)
    running.down()  # leftovers of an interrupted run
    try:
        seconds = running.up()
        print(f"\nengine tier: up --build --wait to healthy in {seconds:.1f} s", file=sys.stderr)
        yield running
    finally:
        running.down()


def post(title: str = "Plan a trip", **kwargs: Any) -> httpx.Response:
    return httpx.post(API, json={"title": title}, timeout=30, **kwargs)


def exec_in(container: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run("docker", "exec", container, *argv, check=check)


def fake_push(stack: ComposeStack, faults: list[dict[str, Any]]) -> None:
    code = (
        "import json, sys, urllib.request; urllib.request.urlopen(urllib.request.Request("
        "'http://127.0.0.1:9000/_fake/push', data=sys.argv[1].encode(), method='POST'))"
    )
    stack.compose("exec", "-T", "fake-gemini", "python", "-c", code, json.dumps(faults))


# ---------------------------------------------------------------- the bake's own smoke script


def run_smoke(project: Path) -> subprocess.CompletedProcess[str]:
    """The bake's own smoke script, as its CI `stack` job runs it."""
    command = [sys.executable, "scripts/smoke_stack.py"]
    return subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=600, check=False)


def smoke_containers() -> str:
    """Containers the smoke script's Compose project left behind (it must leave none)."""
    label = "label=com.docker.compose.project=ai-task-manager-backend-smoke"
    return run("docker", "ps", "-a", "-q", "--filter", label).stdout.strip()


def test_smoke_script_of_the_bake_passes(engine: Engine, bake: Any) -> None:
    """What the generated CI's `stack` job runs: up --wait, health, one answer, spread, down."""
    project = bake(**SMOKE_ANSWERS)
    engine.standins(project)
    result = run_smoke(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 requests reached 4 replicas (expected 4)" in result.stdout
    assert "smoke test passed" in result.stdout
    assert not (project / ".env").exists(), "the throwaway .env is removed again"
    assert smoke_containers() == "", "the smoke project is torn down"


def test_spend_guard_holds_across_replicas_and_a_redis_restart(engine: Engine, bake: Any) -> None:
    """spend_guard=yes (the default) on the engine: every replica checks and counts in the one `redis`
    service, the stand-in of the pinned official image, so a caller's day budget holds across replicas,
    another address is another caller, and the counts outlive a restart of Redis (append-only volume)."""
    project = bake(**SMOKE_ANSWERS)
    engine.standins(project)
    per_request = 121  # what the fake Gemini reports for each answer
    (project / ".env").write_text(f"GEMINI_API_KEY={KEY}\nSPEND_TOKENS_PER_CALLER_PER_DAY={3 * per_request - 1}\n")
    stack = ComposeStack(engine, project)
    stack.down()
    try:
        stack.up()
        stack.wait_healthy(4)
        # Straight to Nginx from two addresses of this host (through the published port both would be the
        # network's gateway): with no caller check, an address is a caller.
        (nginx,) = stack.containers("nginx")
        url = f"http://{nginx.address}:8080/api/breakdown-task"
        first, second = stack.client_addresses(2)

        def post_from(address: str) -> httpx.Response:
            with httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=30) as client:
                return client.post(url, json={"title": "Plan a trip"})

        replies = [post_from(first) for _ in range(7)]
        assert [r.status_code for r in replies] == [200] * 3 + [429] * 4
        assert "per caller" in replies[-1].json()["detail"] and int(replies[-1].headers["Retry-After"]) > 0
        refused_by = {
            entry["upstream_addr"]
            for entry in stack.access_entries([r.headers["X-Request-ID"] for r in replies[3:]]).values()
        }
        assert len(refused_by) == 4, refused_by  # round robin: every replica refused, none counted alone
        assert post_from(second).status_code == 200  # another address is another caller
        day = time.strftime("%Y-%m-%d", time.gmtime())
        spent = stack.compose("exec", "-T", "redis", "redis-cli", "GET", f"spend:{day}:tokens").stdout.strip()
        assert spent == str(4 * per_request)
        (redis,) = stack.containers("redis")
        assert exec_in(redis.id, "id", "-u").stdout.strip() == "999"
        stack.compose("restart", "redis")
        stack.compose("up", "--detach", "--wait", "--wait-timeout", "60", "redis")
        assert post_from(first).status_code == 429  # the count came back from the append-only file
        assert post_from(second).status_code == 200
    finally:
        stack.down()
        (project / ".env").unlink(missing_ok=True)  # the smoke script writes its own


def test_smoke_script_of_a_bake_with_a_caller_check_and_https_passes(engine: Engine, bake: Any) -> None:
    """With caller_check=oidc the script has no token: every call must be refused by a replica (401). With
    https=own_certificate it makes a throwaway certificate, checks over HTTPS on 443, and removes it."""
    project = bake(**SMOKE_ANSWERS, **OIDC_ANSWERS, **OWN_CERT_ANSWERS)
    result = run_smoke(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    the API refuses a call without proof" in result.stdout
    assert "4 requests reached 4 replicas (expected 4)" in result.stdout
    assert "ok    nginx answers /healthz on https://127.0.0.1" in result.stdout
    assert "ok    plain HTTP sends a POST to HTTPS (308) without serving it" in result.stdout
    assert not (project / "certs").exists(), "the throwaway certificate is removed again"


def test_smoke_script_fails_when_the_stack_does_not_answer(engine: Engine, bake: Any, tmp_path: Path) -> None:
    """The script is not a rubber stamp: with the API location removed from nginx.conf it exits 1."""
    project = bake(**SMOKE_ANSWERS)
    broken = tmp_path / "broken"
    run("cp", "-r", str(project), str(broken))
    conf = broken / "nginx" / "nginx.conf"
    conf.write_text(conf.read_text().replace("location /api/ {", "location /not-the-api/ {"))
    result = run_smoke(broken)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL  the API answers with 0 sub-tasks" in result.stderr
    assert smoke_containers() == "", "torn down after a failure too"


# ---------------------------------------------------------------- HTTPS with Let's Encrypt, against Pebble

LE_DOMAIN = "api.tasks.dev"
LE_ANSWERS = {"python_version": "3.13", "backend_replicas": "2", "https": "letsencrypt", "domain": LE_DOMAIN,
              "acme_email": "ops@tasks.dev"}  # fmt: skip


def served_certificate() -> str:
    """Serial and issuer of the certificate nginx serves on the published port 443."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # read it, whoever issued it
    try:
        with (
            socket.create_connection(("127.0.0.1", 443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=LE_DOMAIN) as tls,
        ):
            return certificate_summary(tls)
    except OSError:
        return ""


def test_letsencrypt_on_the_engine_against_pebble(engine: Engine, bake: Any, tmp_path: Path) -> None:
    """The letsencrypt bake's Compose stack, unmodified but for the CA: certbot (the pinned image's release)
    gets Pebble's certificate through nginx, nginx switches to it and to a forced renewal by itself."""
    project = bake(**LE_ANSWERS)
    engine.standins(project)
    try:
        pebble_image = engine.pebble_image()
    except LookupError as exc:
        pytest.skip(str(exc))
    pebble = tmp_path / "pebble"
    pebble.mkdir()
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", "/CN=pebble", "-addext", "subjectAltName=DNS:pebble",
        "-keyout", str(pebble / "key.pem"), "-out", str(pebble / "cert.pem"))  # fmt: skip
    (pebble / "config.json").write_text(json.dumps({"pebble": {
        "listenAddress": "0.0.0.0:14000", "managementListenAddress": "0.0.0.0:15000",
        "certificate": "/pebble/cert.pem", "privateKey": "/pebble/key.pem",
        "httpPort": 8080,  # nginx's plain-HTTP port inside the network (80 on the host)
        "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": False,
    }}))  # fmt: skip
    # Test-only: Pebble on the stack's network, certbot pointed at it, and nginx known there by the domain.
    override = tmp_path / "compose.pebble.yaml"
    override.write_text(json.dumps({"services": {
        "pebble": {"image": pebble_image, "volumes": [f"{pebble}:/pebble:ro"], "networks": ["stack"],
                   "environment": {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"}},
        "certbot": {"environment": {"ACME_DIRECTORY": "https://pebble:14000/dir",
                                    "REQUESTS_CA_BUNDLE": "/pebble/cert.pem"},
                    "volumes": [f"{pebble}:/pebble:ro"], "depends_on": ["pebble"]},
        "nginx": {"environment": {"TLS_CHECK_SECONDS": "2"},  # the check interval, 60 s by default
                  "networks": {"stack": {"aliases": [LE_DOMAIN]}}},
    }}))  # fmt: skip
    (project / ".env").write_text(f"GEMINI_API_KEY={KEY}\n")
    stack = ComposeStack(engine, project, files=["compose.yaml", "compose.fake.yaml", str(override)])
    stack.down()
    try:
        seconds = stack.up()
        deadline = time.monotonic() + 120
        while "Pebble Intermediate" not in served_certificate():
            assert time.monotonic() < deadline, stack.compose("logs", "--tail", "40", "certbot", "nginx").stdout
            time.sleep(1)
        issued = served_certificate()
        print(f"\nengine tier, letsencrypt: up in {seconds:.1f} s, Pebble's certificate served", file=sys.stderr)

        root = tmp_path / "pebble-root.pem"
        url = "https://pebble:15000/roots/0"
        root.write_text(stack.compose("exec", "-T", "pebble", "wget", "-qO-", "--no-check-certificate", url).stdout)
        verified = ssl.create_default_context(cafile=str(root))
        with httpx.Client(verify=verified, timeout=30) as client:  # trusts Pebble's root only, checks the name
            answer = client.post("https://127.0.0.1/api/breakdown-task", json={"title": "Plan a trip"},
                                 extensions={"sni_hostname": LE_DOMAIN})  # fmt: skip
        assert answer.status_code == 200 and 2 <= len(answer.json()) <= 5
        assert answer.headers["strict-transport-security"] == "max-age=63072000"
        plain = httpx.post("http://127.0.0.1/api/breakdown-task", json={"title": "Plain"}, timeout=10)
        assert plain.status_code == 308 and plain.headers["location"] == f"https://{LE_DOMAIN}/api/breakdown-task"

        certbot, nginx = stack.containers("certbot")[0], stack.containers("nginx")[0]
        info = json.loads(run("docker", "inspect", certbot.id, nginx.id).stdout)
        assert info[0]["HostConfig"]["ReadonlyRootfs"] and info[1]["HostConfig"]["ReadonlyRootfs"]
        status = exec_in(certbot.id, "cat", "/proc/1/status").stdout
        assert re.search(r"(?m)^Uid:\s+0\s", status)
        assert re.search(r"(?m)^CapEff:\s+0000000000000003$", status), "only CHOWN and DAC_OVERRIDE"
        logs = "\n".join(stack.logs("certbot"))
        assert "no certificate for" not in logs, "certbot waited for nginx rather than failing a validation"
        assert any("certificate changed, nginx reloaded" in line for line in stack.logs("nginx"))

        # A forced renewal, as the README gives it: served by the same nginx container, never restarted.
        started = info[1]["State"]["StartedAt"]
        stack.compose("exec", "-T", "certbot", "certbot", "renew", "--force-renewal", "--no-random-sleep-on-renew")
        deadline = time.monotonic() + 60
        while served_certificate() in ("", issued):
            assert time.monotonic() < deadline, stack.compose("logs", "--tail", "40", "certbot", "nginx").stdout
            time.sleep(1)
        assert "Pebble Intermediate" in served_certificate()
        after = json.loads(run("docker", "inspect", nginx.id).stdout)[0]
        assert after["State"]["StartedAt"] == started and after["RestartCount"] == 0
    finally:
        stack.down()
        (project / ".env").unlink(missing_ok=True)


# ---------------------------------------------------------------- the running stack


def test_every_service_is_healthy_and_hardened(stack: ComposeStack) -> None:
    backends = stack.wait_healthy(3)
    for replica in backends:
        assert exec_in(replica.id, "id", "-u").stdout.strip() == "10001"
        status = exec_in(replica.id, "cat", "/proc/1/status").stdout
        assert re.search(r"(?m)^Uid:\s+10001\s", status), "even PID 1 (the init) is unprivileged"
        assert re.search(r"(?m)^CapEff:\s+0+$", status) and re.search(r"(?m)^CapBnd:\s+0+$", status), status
        assert re.search(r"(?m)^NoNewPrivs:\s+1$", status)
        denied = exec_in(replica.id, "python", "-c", "open('/app/x', 'w')", check=False)
        assert denied.returncode != 0 and "Read-only file system" in denied.stderr
        exec_in(replica.id, "python", "-c", "open('/tmp/x', 'w').write('ok')")  # /tmp is a tmpfs
    (nginx,) = stack.containers("nginx")
    assert nginx.health == "healthy"
    status = exec_in(nginx.id, "cat", "/proc/1/status").stdout
    assert re.search(r"(?m)^Uid:\s+101\s", status), "nginx runs as 101"
    assert re.search(r"(?m)^CapEff:\s+0+$", status)
    denied = exec_in(nginx.id, "sh", "-c", "echo x > /etc/nginx/x", check=False)
    assert denied.returncode != 0


def test_the_image_holds_no_key_no_env_and_no_tests(stack: ComposeStack) -> None:
    image = f"{stack.project.name}-backend"
    container = run("docker", "create", image).stdout.strip()
    try:
        exported = subprocess.run(["docker", "export", container], capture_output=True, check=True).stdout
    finally:
        run("docker", "rm", container)
    with tarfile.open(fileobj=io.BytesIO(exported)) as archive:
        names = archive.getnames()
    app = sorted(name for name in names if name.startswith("app/"))
    assert "app/main.py" in app and "app/gemini_client.py" in app
    assert not any(name.endswith(".env") or "/.env" in name for name in names), "no .env anywhere in the image"
    assert not any(name.startswith(("app/tests", "app/frontend", "app/nginx", "app/scripts")) for name in app), app
    assert KEY.encode() not in exported, "the key is not in any file of the image"
    history = run("docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image).stdout
    config = run("docker", "image", "inspect", image).stdout
    assert KEY not in history and KEY not in config and "GEMINI_API_KEY" not in config
    # ...and reaches the container only when it runs, from .env.
    replica = stack.containers()[0]
    assert exec_in(replica.id, "printenv", "GEMINI_API_KEY").stdout.strip() == KEY


def test_api_answers_through_the_published_port_from_every_replica(stack: ComposeStack) -> None:
    replies = [post(f"Task {i}") for i in range(9)]
    assert [r.status_code for r in replies] == [200] * 9
    assert all(2 <= len(r.json()) <= 5 and r.json()[0]["title"] for r in replies)
    ids = [r.headers["x-request-id"] for r in replies]
    entries = stack.access_entries(ids)
    addresses = {f"{c.address}:8000" for c in stack.containers() if c.state == "running"}
    assert Counter(e["upstream_addr"] for e in entries.values()).keys() == addresses, "every replica answered"

    # One request id in both logs; the backend logs the client address nginx saw (not nginx's own).
    backend_lines = {
        line["request_id"]: line for line in stack.json_logs("backend") if line.get("message") == "request"
    }
    for rid in ids:
        access, line = entries[rid], backend_lines[rid]
        assert line["status"] == 200 and line["path"] == "/api/breakdown-task"
        assert line["client"] == access["remote_addr"] != "10.213.57.2"


def test_a_second_prompt_endpoint_through_the_published_port(stack: ComposeStack) -> None:
    """A prompt file added to prompts/ before the build is an endpoint of every replica, behind the same Nginx:
    it answers through the published port, spread over the replicas, logged by the backend under its prompt
    id with Nginx's request id, and it streams too (deltas, then its `result`)."""
    replies = [httpx.post(f"{URL}/api/summarize", json={"text": f"Text {i}"}, timeout=30) for i in range(6)]
    assert [(r.status_code, r.json()) for r in replies] == [(200, {"text": "A plain text answer."})] * 6
    ids = [r.headers["x-request-id"] for r in replies]
    entries = stack.access_entries(ids)
    addresses = {f"{c.address}:8000" for c in stack.containers() if c.state == "running"}
    assert {e["upstream_addr"] for e in entries.values()} == addresses, "every replica served the new endpoint"
    lines = {line["request_id"]: line for line in stack.json_logs("backend") if line.get("request_id") in ids}
    assert {(lines[i]["path"], lines[i]["prompt"], lines[i]["status"]) for i in ids} == {
        ("/api/summarize", "summarize", 200)
    }

    with httpx.Client(timeout=30) as client:
        streamed = stream(client, f"{URL}/api/summarize", {"text": "A text to stream"})
    assert streamed.status == 200 and streamed.deltas >= 2, streamed
    assert (streamed.end, streamed.answer) == ("result", {"text": "A plain text answer."}), streamed


def test_internal_endpoints_stay_inside_the_network(stack: ComposeStack) -> None:
    for path in ("/docs", "/openapi.json", "/metrics", "/", "/healthz/../docs"):
        reply = httpx.get(URL + path, timeout=10)
        assert reply.status_code == 404, path
        assert reply.json() == {"detail": "Not Found"}
        entry = stack.access_entries([reply.headers["x-request-id"]])[reply.headers["x-request-id"]]
        assert entry["upstream_addr"] == "", f"{path} never reached a replica"
    # Inside the network a replica still serves them (the README shows how to reach /docs).
    (nginx,) = stack.containers("nginx")
    inside = exec_in(nginx.id, "wget", "-q", "-O", "-", "http://backend:8000/openapi.json").stdout
    assert json.loads(inside)["paths"]["/api/breakdown-task"]
    metrics = exec_in(nginx.id, "wget", "-q", "-O", "-", "http://backend:8000/metrics").stdout
    assert "http_requests_total" in metrics and "gemini_calls_in_flight" in metrics


def test_docs_reachable_as_the_readme_says(stack: ComposeStack) -> None:
    """README: `docker compose run --rm --publish 127.0.0.1:8001:8000 backend` serves /docs locally."""
    runner = subprocess.Popen(
        ["docker", "compose", "-f", "compose.yaml", "-f", "compose.fake.yaml", "run", "--rm", "--no-deps",
         "--name", "docs-check", "--publish", "127.0.0.1:18001:8000", "backend"],
        cwd=stack.project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = httpx.get("http://127.0.0.1:18001/docs", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "the one-off backend did not answer"
                time.sleep(0.5)
        assert reply.status_code == 200 and "swagger-ui" in reply.text
    finally:
        run("docker", "rm", "--force", "docs-check", check=False)
        runner.wait(60)


def test_stopped_replica_finishes_its_requests_in_flight(stack: ComposeStack) -> None:
    replicas = stack.wait_healthy(3)
    fake_push(stack, [{"kind": "slow", "delay": 3}] * 6)
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(post, f"Slow {i}") for i in range(6)]
        time.sleep(1.0)  # all six are with the fake now, two per replica (least_conn)
        victim = replicas[0]
        stopping = pool.submit(run, "docker", "stop", victim.id)
        replies = [f.result() for f in futures]
        stopping.result()
    assert [r.status_code for r in replies] == [200] * 6
    entries = stack.access_entries([r.headers["x-request-id"] for r in replies])
    by_victim = [e for e in entries.values() if e["upstream_addr"] == f"{victim.address}:8000"]
    assert len(by_victim) >= 1, "the stopped replica was serving some of them, and answered them itself"
    assert all("," not in e["upstream_addr"] for e in entries.values()), "nothing had to be re-sent"
    exit_code = run("docker", "inspect", "--format", "{{.State.ExitCode}}", victim.id).stdout.strip()
    # uvicorn re-raises the SIGTERM it handled once it is done (143); a SIGKILL after the grace period is 137.
    assert exit_code in ("0", "143"), f"uvicorn finished after its requests, not killed: {exit_code}"
    run("docker", "start", victim.id)
    stack.wait_healthy(3)


def test_a_replica_stopped_right_after_it_started_stops_at_once(stack: ComposeStack) -> None:
    before = {c.id for c in stack.containers()}
    stack.compose("up", "--detach", "--no-recreate", "--scale", "backend=4", "backend")
    (newest,) = [c for c in stack.containers() if c.id not in before]
    start = time.monotonic()
    run("docker", "stop", "--time", "40", newest.id)
    seconds = time.monotonic() - start
    state = json.loads(run("docker", "inspect", "--format", "{{json .State}}", newest.id).stdout)
    print(f"\nengine tier: stop right after start took {seconds:.1f} s, exit code {state['ExitCode']}", file=sys.stderr)
    assert state["ExitCode"] != 137 and not state["OOMKilled"], "stopped by SIGTERM, not killed after the grace period"
    run("docker", "rm", newest.id)
    stack.wait_healthy(3)
    # Nginx may still hold the gone replica's address from DNS (valid=2s) with no failure against it: it
    # never served, so it never refused. Let that expire, so the next test starts from a settled stack.
    time.sleep(3)


def stalls_and_losses(stack: ComposeStack, since: int) -> list[str]:
    """Nginx's error-log lines (after line `since`) for a request that waited on a connect timeout, or
    that nginx gave up on because the replica set changed while it was being re-sent."""
    lines = [line for line in stack.logs("nginx") if not line.startswith("{")][since:]
    return [line for line in lines if "while connecting to upstream" in line and "timed out" in line
            or "no live upstreams" in line]  # fmt: skip


def test_a_stop_under_light_traffic_stalls_and_loses_nothing(stack: ComposeStack) -> None:
    """One client, one request at a time: a stopping replica may see no request before it exits, and its
    address stays in nginx's DNS cache for a while after. No request may wait on that address."""
    replicas = stack.wait_healthy(3)
    since = len([line for line in stack.logs("nginx") if not line.startswith("{")])
    try:
        with Load(API, concurrency=1) as load:
            time.sleep(2)
            run("docker", "stop", replicas[0].id)
            time.sleep(8)  # past the drain, the exit and nginx's next DNS refresh
            outcomes = load.stop()
    finally:
        run("docker", "start", replicas[0].id)
    slowest = max(o.seconds for o in outcomes)
    print(f"\nengine tier, stop under light traffic: {len(outcomes)} requests, slowest {slowest * 1000:.0f} ms",
          file=sys.stderr)  # fmt: skip
    assert [o for o in outcomes if o.status != 200] == []
    assert stalls_and_losses(stack, since) == []
    stack.wait_healthy(3)


def test_zero_failed_requests_and_lost_streams_while_scaling_restarting_and_stopping(stack: ComposeStack) -> None:
    """C=16 plain requests and 4 streaming clients for the whole sequence: scale 3 -> 5 -> 2, restart each
    replica in turn, stop one. A replica that stops finishes the streams it serves before it exits: every
    stream ends with its `result` (one that ends without `result` or `error` is lost)."""
    stack.wait_healthy(3)
    since = len([line for line in stack.logs("nginx") if not line.startswith("{")])
    steps: list[tuple[str, float, float]] = []
    stops: list[tuple[str, float]] = []  # (a stopped replica's upstream address, when its stop began)

    def step(name: str, action: Any, stopping: Any = None) -> None:
        """`stopping`: gives the replicas the action stops, once it is done (scale-down: the ones now gone)."""
        before = {f"{c.address}:8000" for c in stack.containers() if c.state == "running"}
        start = time.monotonic()
        print(f"\n{time.strftime('%H:%M:%S', time.gmtime())} {name}", file=sys.stderr)
        action()
        steps.append((name, start, time.monotonic()))
        if stopping is not None:
            stops.extend((address, start) for address in stopping(before))
        time.sleep(2)

    def gone(before: set[str]) -> set[str]:
        return before - {f"{c.address}:8000" for c in stack.containers() if c.state == "running"}

    # Straight to Nginx from 16 addresses of this host: Nginx counts a client's burst per millisecond, and
    # through the published port all 16 would be one client (the gateway) firing in step, so now and then
    # one got Nginx's 429 however high the baked rate. That is the limiter doing its job, not a lost request.
    # The streams go through the published port, as a browser's do: 4 clients, a stream every ~2 s each.
    (nginx,) = stack.containers("nginx")
    api = f"http://{nginx.address}:8080/api/breakdown-task"
    with Load(api, concurrency=16, sources=stack.client_addresses(16)) as load, StreamLoad(API, 4) as streaming:
        time.sleep(2)
        step("scale 3 -> 5", lambda: stack.compose("up", "--detach", "--no-recreate", "--wait", "--scale", "backend=5"))
        step("scale 5 -> 2", lambda: stack.compose("up", "--detach", "--no-recreate", "--wait", "--scale", "backend=2"),
             gone)  # fmt: skip
        for replica in stack.wait_healthy(2):
            step(f"restart {replica.name}", lambda r=replica: (run("docker", "restart", r.id), stack.wait_healthy(2)),
                 lambda _, r=replica: [f"{r.address}:8000"])  # fmt: skip
        victim = stack.wait_healthy(2)[0]
        step(f"stop {victim.name}", lambda: run("docker", "stop", victim.id), lambda _: [f"{victim.address}:8000"])
        outcomes = load.stop()
        streams = streaming.stop()  # each client finishes the stream it is reading

    failed = [o for o in outcomes if o.status != 200]
    during = [o for o in outcomes if steps[0][1] <= o.started <= steps[-1][2]]
    added = [max(0.0, o.seconds - FAKE_LATENCY) * 1000 for o in during]
    entries = stack.access_entries([o.request_id for o in outcomes + streams if o.request_id], timeout=30)
    resent = [e for e in entries.values() if "," in e["upstream_addr"]]
    lost = [s for s in streams if s.status in (0, 200) and not s.end]
    refused = [s for s in streams if s.status not in (0, 200)]
    first = [s.first_delta * 1000 for s in streams if s.first_delta is not None]
    streamed_during = streams_during(streams, steps)
    first_during = [s.first_delta * 1000 for s in streamed_during if s.first_delta is not None]
    straddled = [
        s for s in streams
        if any(entries.get(s.request_id, {}).get("upstream_addr") == address and s.started < began < s.started + s.seconds
               for address, began in stops)
    ]  # fmt: skip
    report = (
        f"\nengine tier, rolling operations under C=16: {len(outcomes)} requests, {len(failed)} failed; "
        f"during the operations ({len(during)}) added latency p50 {percentile(added, 0.5):.0f} ms, "
        f"p99 {percentile(added, 0.99):.0f} ms, max {max(added, default=0):.0f} ms; "
        f"{len(resent)} re-sent to another replica; {len(stalls_and_losses(stack, since))} waited a connect timeout; "
        "steps: " + ", ".join(f"{name} {end - start:.1f} s" for name, start, end in steps) +
        f"\nengine tier, streams beside them (4 clients, {STREAM_CHUNKS} pieces {CHUNK_DELAY} s apart): "
        f"{len(streams)} streams, {len(lost)} lost, {len(refused)} refused, "
        f"{sum(s.end == 'error' for s in streams)} ended with error, {len(straddled)} in flight on a replica "
        f"when its stop began ({sum(bool(s.end) for s in straddled)} of them ended); time to first delta through the stack (fake: {FAKE_LATENCY * 1000:.0f} ms) "
        f"p50 {percentile(first, 0.5):.0f} ms, p99 {percentile(first, 0.99):.0f} ms, "
        f"during the operations p50 {percentile(first_during, 0.5):.0f} ms, p99 {percentile(first_during, 0.99):.0f} ms"
    )  # fmt: skip
    print(report, file=sys.stderr)
    for line in stalls_and_losses(stack, since):
        print(f"  {line[:20]} {line.split('upstream: ')[-1][:60]}", file=sys.stderr)
    for o in (failed + lost + refused)[:8]:  # when it failed, how, and what the replica logged for it
        when = next((f"during {name}" for name, start, end in steps if start <= o.started <= end), "between steps")
        print(f"  {when}: {o}", file=sys.stderr)
        for line in stack.json_logs("backend"):
            if o.request_id and line.get("request_id") == o.request_id:
                print(f"    backend: {line}", file=sys.stderr)
    assert not failed, f"{len(failed)} failed, e.g. {failed[:5]}\n{report}"
    assert not lost, f"{len(lost)} streams lost, e.g. {lost[:5]}\n{report}"
    assert not refused, f"{len(refused)} streams refused, e.g. {refused[:5]}\n{report}"
    assert {s.end for s in streams} == {"result"}, report
    assert all(s.deltas >= 2 and 2 <= len(s.answer) <= 5 for s in streams), report
    assert straddled, f"no stop met a stream in flight: the streams proved nothing\n{report}"
    # Connect-timeout waits are reported, not asserted (they are, under light traffic, above): a replica
    # that scaling or a restart has just started is in Docker's DNS ~0.3 s before its address answers, and
    # a request nginx sends there in that moment waits proxy_connect_timeout (300 ms) once, then goes to
    # another replica. Seen in about one run of three, a handful of requests, all answered.
    assert not [line for line in stalls_and_losses(stack, since) if "no live upstreams" in line]
    assert len(during) > 16 * len(steps), "the load ran during every operation"
    assert len(streamed_during) >= len(steps), "streams ran during the operations"
    assert all(len(e["upstream_addr"].split(",")) <= 3 for e in resent), "re-sending is bounded"


def streams_during(streams: list[Any], steps: list[tuple[str, float, float]]) -> list[Any]:
    """The streams in flight at some time between the first operation's start and the last one's end."""
    return [s for s in streams if s.started <= steps[-1][2] and s.started + s.seconds >= steps[0][1]]
