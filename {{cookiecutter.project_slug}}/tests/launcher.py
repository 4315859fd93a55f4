"""Runs `python -m uvicorn ...` and `python doctor.py ...` for the tests, as forks of one launcher process.

A fresh Python spends about a second of CPU importing FastAPI, the Gemini SDK, pydantic and the rest before
the app's own code runs; the tests start dozens of servers and doctor runs. The launcher (multiprocessing's
fork server) imports those libraries once; each run is a fork of it that sets its own environment and
working folder, imports the app's own modules and runs the same entry point the command line would (the
`__main__` of uvicorn, or the script), so a server starts in a fraction of that time. Everything the app
reads (settings, .env, prompts/) is read in the fork, as in a new process.
"""

from __future__ import annotations

import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from multiprocessing.process import BaseProcess
from pathlib import Path

# The libraries every run imports, loaded once in the launcher. Only libraries: the app's own modules read the
# environment when they are imported, and each run sets its own.
LIBRARIES = [
    "uvicorn.main",
    "uvicorn.protocols.http.httptools_impl",
    "uvicorn.loops.uvloop",
    "fastapi",
    "pydantic_settings",
    "dotpromptz",
    "prometheus_client",
    "httpx",
    "{{ 'google.genai' if cookiecutter.gemini_sdk == 'google-genai' else 'google.generativeai' }}",
{%- if cookiecutter.spend_guard == "yes" %}
    "redis.asyncio",
{%- endif %}
{%- if cookiecutter.caller_check != "none" %}
    "jwt",
    "cryptography.hazmat.primitives.asymmetric.rsa",
{%- endif %}
]
LAUNCHER = multiprocessing.get_context("forkserver")
LAUNCHER.set_forkserver_preload(LIBRARIES)


def start(args: list[str], cwd: Path, env: dict[str, str], stdout: Path, stderr: Path | None = None) -> BaseProcess:
    """Start what `python ARGS` would (`-m module ...` or `script.py ...`) in `cwd` with exactly `env`, its
    output to `stdout` (and `stderr`, else the same file)."""
    process = LAUNCHER.Process(target=_run, args=(args, str(cwd), env, str(stdout), str(stderr or stdout)))
    process.start()
    return process


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Like subprocess.run(["python", *args], capture_output=True, text=True), run through the launcher."""
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        process = start(args, cwd, env, out, err)
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(args, timeout)
        return subprocess.CompletedProcess(args, process.exitcode, out.read_text(), err.read_text())


def _run(args: list[str], cwd: str, env: dict[str, str], stdout: str, stderr: str) -> None:
    """In the fork: the file descriptors, folder, environment and sys.path that `python ARGS` would have."""
    out = os.open(stdout, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    err = out if stderr == stdout else os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if args[0] == "-m":
        sys.argv = args[1:]
        sys.path.insert(0, cwd)  # `python -m` looks in the current folder first
        runpy.run_module(args[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(args)
        sys.path.insert(0, str(Path(cwd, args[0]).resolve().parent))  # the script's folder first
        runpy.run_path(args[0], run_name="__main__")
