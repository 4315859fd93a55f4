"""The generated README is the spec: its commands are run here as written, and the ports it names agree.

"Try it without a Gemini key" must work on a fresh bake with nothing but its own virtual environment: the
fake Gemini and the app started by the README's lines, then the README's request. The Compose variant is the
bake's scripts/smoke_stack.py, which the engine tier runs.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.helpers import free_port, project_venv, wait_for_http

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


def test_try_it_without_a_key_works_as_written(
    bake: Callable[..., Path], shell: Callable[..., subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    port = free_port()
    project = bake(port=str(port))
    venv = project_venv(project, "3.12")
    readme = (project / "README.md").read_text()
    servers, (request,) = code_blocks(section(readme, "Try it without a Gemini key"))
    fake, app = servers
    assert "--port 9000" in fake and f"--port {port}" in app
    shell(fake, project, venv)
    app_process = shell(app, project, venv)
    wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=60, process=app_process)
    answer = subprocess.run(
        ["bash", "-c", request], check=True, cwd=project, capture_output=True, text=True, timeout=60
    )
    subtasks = json.loads(answer.stdout)
    assert 2 <= len(subtasks) <= 5 and all(item["title"] for item in subtasks), answer.stdout


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
