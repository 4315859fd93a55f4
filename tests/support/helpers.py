"""Shared helpers for the template's tests: baking, cached virtual environments, processes."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
VENV_CACHE = Path(os.environ.get("TEMPLATE_VENV_CACHE", Path.home() / ".cache" / "gemini-backend-template" / "venvs"))
DEFAULTS = {"project_slug": "ai-task-manager-backend", "port": "8000", "backend_replicas": "3"}


def find_python(version: str) -> str | None:
    """An interpreter of `version` (e.g. "3.12"): on PATH, else in pyenv, else None."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found:
        try:
            subprocess.run([found, "-c", "pass"], check=True, capture_output=True, timeout=30)
            return found
        except (subprocess.SubprocessError, OSError):
            pass
    for candidate in sorted((Path.home() / ".pyenv" / "versions").glob(f"{version}.*/bin/python{version}")):
        return str(candidate)
    return None


def requirements_text(project: Path, name: str = "requirements-dev.txt") -> str:
    """The file's lines with `-r` includes expanded, so the hash changes when any pin does."""
    lines = []
    for line in (project / name).read_text().splitlines():
        if line.startswith("-r "):
            lines.append(requirements_text(project, line[3:].strip()))
        else:
            lines.append(line)
    return "\n".join(lines)


def project_venv(project: Path, python_version: str) -> Path:
    """A venv with the project's pinned requirements, cached by (Python version, pins)."""
    python = find_python(python_version)
    if python is None:
        raise LookupError(f"no Python {python_version} interpreter on this machine")
    pins = requirements_text(project)
    key = hashlib.sha256(f"{python_version}\n{pins}".encode()).hexdigest()[:16]
    venv = VENV_CACHE / f"py{python_version}-{key}"
    ready = venv / ".ready"
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test runs build each venv once
        if not ready.exists():
            _build_venv(project, python, venv, pins)
    return venv


def _build_venv(project: Path, python: str, venv: Path, pins: str) -> None:
    ready = venv / ".ready"
    shutil.rmtree(venv, ignore_errors=True)
    uv = [sys.executable, "-m", "uv"]
    subprocess.run([*uv, "venv", "--quiet", "--python", python, str(venv)], check=True)
    subprocess.run(
        [*uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "-r", "requirements-dev.txt"],
        check=True,
        cwd=project,
    )
    ready.write_text(pins)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM, so a server can finish cleanly; SIGKILL if it has not ended within `timeout`."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_http(url: str, timeout: float = 20.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def unrendered_markers(project: Path) -> list[str]:
    """Files that still hold Jinja syntax meant for cookiecutter."""
    found = []
    for path in project.rglob("*"):
        if path.is_file() and "node_modules" not in path.parts:
            try:
                text = path.read_text()
            except UnicodeDecodeError:
                continue
            if "{{ cookiecutter" in text or "{{cookiecutter" in text or "{%" in text:
                found.append(str(path.relative_to(project)))
    return found


def certificate_summary(tls: ssl.SSLSocket) -> str:
    """ "serial=...\nissuer=..." of the certificate the peer of this TLS socket presented."""
    pem = ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True) or b"")
    command = ["openssl", "x509", "-noout", "-serial", "-issuer"]
    return subprocess.run(command, input=pem, capture_output=True, text=True, check=False).stdout.strip()


# The bake's spend guard (spend_guard=yes, the default) off: every limit 0, so a backend needs no Redis. For
# the tiers that run backends without a Redis and test something else; the bake's own tests/test_spend_guard.py
# and the engine tier (a real Redis service) test the guard. A bake with spend_guard=no ignores these.
SPEND_GUARD_OFF = {
    "SPEND_TOKENS_PER_DAY": "0",
    "SPEND_TOKENS_PER_CALLER_PER_DAY": "0",
    "SPEND_REQUESTS_PER_CALLER_PER_MINUTE": "0",
}
