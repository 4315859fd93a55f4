"""Hostile template answers stop generation with one line naming the field and write nothing: through the
real cookiecutter command (from another folder, with -f, aimed at an existing folder) and through pytest-cookies.
Every rule's wording is tested in-process in test_hooks.py; here the whole run must leave no trace.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.helpers import ROOT

TOOLS = Path(sys.executable).parent  # the template's tooling venv: cookiecutter


HOSTILE: list[tuple[str, str]] = [
    ("project_slug", "../escape"),
    ("project_slug", "../escape/deeper"),
    ("project_slug", "a/b"),
    ("project_slug", ".."),
    ("project_slug", ""),
    ("allowed_origins", 'http://a.example"'),
    ("allowed_origins", "http://a.example\nhttp://b.example"),
    ("allowed_origins", "http://a.example/path"),
    ("project_name", "x" * 10_000),
    ("project_name", 'A "quoted" name'),
    ("port", "0"),
    ("port", "65536"),
    ("port", "80a"),
    ("backend_replicas", "0"),
    ("backend_replicas", "33"),
    ("backend_replicas", "-1"),
    ("gemini_model", "gemini 2.5 flash"),
    ("gemini_model", "models/../gemini"),
]
HOSTILE_IDS = [f"{field}={value[:20]!r}" for field, value in HOSTILE]


def snapshot(*folders: Path) -> set[str]:
    return {str(path) for folder in folders for path in folder.rglob("*")}


def assert_one_line_naming(output: str, field: str) -> None:
    """The hook's message comes first (cookiecutter's own report of the failed hook follows it)."""
    # project_slug is derived from project_name: a name too long for a folder may be named either way.
    fields = ("project_name", "project_slug") if field == "project_name" else (field,)
    lines = output.strip().splitlines()
    assert lines and lines[0].startswith(tuple(f"ERROR: {name}=" for name in fields)), output[:2000]
    assert len(lines[0]) < 400, lines[0]


@pytest.mark.parametrize(("field", "value"), HOSTILE, ids=HOSTILE_IDS)
def test_hostile_answer_is_refused_by_the_cli(tmp_path: Path, field: str, value: str) -> None:
    area = tmp_path / "area"  # everything the run could reach: the output folder, its parent, the cwd
    out, cwd = area / "parent" / "out", area / "cwd"
    out.mkdir(parents=True)
    cwd.mkdir()
    before = snapshot(area)
    run = subprocess.run(
        [str(TOOLS / "cookiecutter"), "--no-input", "-o", str(out), str(ROOT), f"{field}={value}"],
        check=False,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": str(tmp_path)},  # no user config, no replay file in the real home
    )
    assert run.returncode != 0, run.stdout
    assert_one_line_naming(run.stderr + run.stdout, field)
    assert snapshot(area) == before, sorted(snapshot(area) - before)


def test_hostile_slug_aimed_at_an_existing_folder_is_refused_by_name(tmp_path: Path) -> None:
    """`../escape` where ../escape exists: cookiecutter must not even look there (it would say
    "directory already exists" instead of naming the field, or with -f run the hooks inside it)."""
    area = tmp_path / "area"
    out, cwd, target = area / "parent" / "out", area / "cwd", area / "parent" / "escape"
    for folder in (out, cwd, target):
        folder.mkdir(parents=True)
    (target / "keep.txt").write_text("mine\n")
    before = snapshot(area)
    for extra in ([], ["-f"]):
        run = subprocess.run(
            [str(TOOLS / "cookiecutter"), "--no-input", *extra, "-o", str(out), str(ROOT), "project_slug=../escape"],
            check=False,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert run.returncode != 0
        assert_one_line_naming(run.stderr + run.stdout, "project_slug")
        assert snapshot(area) == before, sorted(snapshot(area) ^ before)
        assert (target / "keep.txt").read_text() == "mine\n"


@pytest.mark.parametrize(("field", "value"), HOSTILE, ids=HOSTILE_IDS)
def test_hostile_answer_is_refused_by_pytest_cookies(
    cookies: Any,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    field: str,
    value: str,
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # pytest-cookies bakes into <tmp_path>/cookies/bakeNN: all of tmp_path and the folder above it must
    # stay as they are, but for that empty bakeNN.
    before = snapshot(tmp_path) | {str(path) for path in tmp_path.parent.iterdir()}
    result = cookies.bake(extra_context={field: value}, template=str(ROOT))
    assert result.exit_code != 0 and result.exception is not None
    captured = capfd.readouterr()
    assert_one_line_naming(captured.err + captured.out, field)
    bake_dirs = sorted((tmp_path / "cookies").glob("bake*"))
    assert all(not any(folder.iterdir()) for folder in bake_dirs), [list(d.iterdir()) for d in bake_dirs]
    after = snapshot(tmp_path) | {str(path) for path in tmp_path.parent.iterdir()}
    assert after - before <= {str(folder) for folder in bake_dirs}, sorted(after - before)
