"""The generated README is the spec: its commands are run here as written, and the ports it names agree.

"Try it without a Gemini key" must work on a fresh bake with nothing but its own virtual environment: the
fake Gemini (with a caller check, also its test keys) and the app started by the README's lines, then the
README's request. The Compose variant is the bake's scripts/smoke_stack.py, which the engine tier runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.helpers import free_port, project_venv, wait_for_http
from test_generation import APP_CHECK, OIDC

pytestmark = pytest.mark.bake


def section(readme: str, title: str) -> str:
    """The text of a `## title` section, up to the next `## ` heading."""
    start = readme.index(f"\n## {title}\n")
    end = readme.find("\n## ", start + 1)
    return readme[start : end if end != -1 else None]


def code_blocks(text: str) -> list[list[str]]:
    """Each ```bash block's command lines."""
    return [block.strip().splitlines() for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL)]


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Start a README line with bash in the bake's folder, the bake's venv first on PATH (as `activate` does)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(line: str, project: Path, venv: Path) -> subprocess.Popen[bytes]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GEMINI_", "PYTEST_"))}
        env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
        log = (tmp_path / f"{len(started)}.log").open("wb")
        process = subprocess.Popen(
            ["bash", "-c", line], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


# (answers, the Python of a bake suite with the same pins, whose venv is cached, and the caller's header)
TRY_IT = {
    "no-caller-check": ({}, "3.12", None),
    "app-check": ({**APP_CHECK, "python_version": "3.11"}, "3.11", "X-Firebase-AppCheck"),
    "oidc": ({**OIDC, "python_version": "3.13"}, "3.13", "Authorization"),
}


@pytest.mark.parametrize("answers, python, header", TRY_IT.values(), ids=TRY_IT.keys())
def test_try_it_without_a_key_works_as_written(
    bake: Callable[..., Path],
    shell: Callable[..., subprocess.Popen[bytes]],
    answers: dict[str, str],
    python: str,
    header: str | None,
) -> None:
    """The README's servers started line by line as written (the fake; the caller check's keys; the app), then
    its request: sub-tasks. With a caller check the request carries the token the README's keys line wrote,
    and the same request without it is refused."""
    port = free_port()
    project = bake(port=str(port), **answers)
    venv = project_venv(project, python)
    readme = (project / "README.md").read_text()
    servers, (request,) = code_blocks(section(readme, "Try it without a Gemini key"))
    assert "--port 9000" in servers[0] and f"--port {port}" in servers[-1]
    assert len(servers) == (2 if header is None else 3)
    for line in servers:
        process = shell(line, project, venv)
    if header is not None:  # the keys line writes caller.json once its keys are served
        wait_for(lambda: (project / "caller.json").exists() and (project / "caller.json").read_text().endswith("\n"))
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=process)
    answer = subprocess.run(
        ["bash", "-c", request], check=True, cwd=project, capture_output=True, text=True, timeout=60
    )
    subtasks = json.loads(answer.stdout)
    assert 2 <= len(subtasks) <= 5 and all(item["title"] for item in subtasks), answer.stdout
    if header is not None:
        assert f'-H "{header}: $(python' in request  # the token is what caller_keys.py wrote
        printed = json.loads((project / "caller.json").read_text())["headers"]
        assert list(printed) == [header]
        body = {"title": "Plan the team offsite"}
        refused = httpx.post(f"http://127.0.0.1:{port}/api/breakdown-task", json=body, timeout=30)
        assert refused.status_code == 401, refused.text
        (project / "caller.json").unlink()  # the next run of the same bake waits for its own


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize(
    "answers", [{"port": "8080"}, {"port": "8123", "https": "own_certificate", "domain": "localhost"}]
)
def test_local_run_and_the_stack_name_one_port(bake: Callable[..., Path], answers: dict[str, str]) -> None:
    """Following "Run it locally" and then the frontend's .env.example reaches the backend (or the README
    says which URL to use instead, when HTTPS makes the stack's URL another)."""
    project = bake(**answers)
    readme = (project / "README.md").read_text()
    (local,) = code_blocks(section(readme, "Run it locally"))
    assert local[-1] == f"uvicorn main:app --reload --port {answers['port']}"
    frontend = (project / "frontend" / ".env.example").read_text()
    if "https" not in answers:
        assert f"VITE_BACKEND_URL=http://localhost:{answers['port']}\n" in frontend
        assert f'"{answers["port"]}:8080"' in (project / "compose.yaml").read_text()
    else:
        assert f"`http://localhost:{answers['port']}` for a local run" in section(readme, "Run it locally")


def test_readme_names_the_pythons_that_work(bake: Callable[..., Path]) -> None:
    local = section((bake() / "README.md").read_text(), "Run it locally")
    assert "python3 -m venv .venv" in local and "3.11 to 3.13" in local
