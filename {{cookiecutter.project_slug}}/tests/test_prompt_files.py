{% raw -%}
"""A prompt file that is wrong stops start-up with one line naming the file and the problem; doctor says so too."""

from __future__ import annotations

import subprocess
from pathlib import Path

import launcher
import pytest
from conftest import PROJECT, RETIRED_MODEL, server_env
from fake_gemini import FakeGemini

from prompts import PromptError, load_prompts

GOOD = """---
input:
  schema:
    question: string, what to answer
output:
  format: text
---
{{role "system"}}
Answer in one sentence.
{{role "user"}}
{{question}}
"""

# (files to write, PROMPT_INPUT_MAX_CHARS, words the one line must hold)
BROKEN = {
    "yaml-does-not-parse": ({"ask.prompt": "---\nconfig: [1\n---\nhi\n"}, 4000, "ask.prompt", "invalid YAML"),
    "unknown-config-key": (
        {"ask.prompt": GOOD.replace("output:", "config:\n  temprature: 0.5\noutput:")},
        4000,
        "ask.prompt",
        "config: temprature: unknown key",
    ),
    "unknown-front-matter-key": (
        {"ask.prompt": GOOD.replace("output:", "tools: [search]\noutput:")},
        4000,
        "ask.prompt",
        "unknown front-matter key 'tools'",
    ),
    "unbounded-string-without-cap": (
        {"ask.prompt": GOOD},
        0,
        "ask.prompt",
        "question: a string input needs a maxLength",
    ),
    "undeclared-variable": (
        {"ask.prompt": GOOD.replace("{{question}}", "{{question}} {{context}}")},
        4000,
        "ask.prompt",
        "the body uses 'context', which the input schema does not declare",
    ),
    "two-files-one-id": (
        {"ask.prompt": GOOD, "other.prompt": "---\nname: ask\n" + GOOD.removeprefix("---\n")},
        4000,
        "other.prompt",
        "id 'ask' is already used by prompts/ask.prompt",
    ),
    "id-not-a-path-segment": ({"Ask_Me.prompt": GOOD}, 4000, "Ask_Me.prompt", "is not a valid path segment"),
    "bad-output-schema": (
        {"ask.prompt": GOOD.replace("format: text", "format: json\n  schema: {type: array, items: {type: date}}")},
        4000,
        "ask.prompt",
        "output schema: []: unsupported type 'date'",
    ),
}


def write(folder: Path, files: dict[str, str]) -> Path:
    prompts = folder / "prompts"
    prompts.mkdir()
    for name, text in files.items():
        (prompts / name).write_text(text)
    return prompts


def test_a_good_file_loads(tmp_path: Path) -> None:
    (prompt,) = load_prompts(write(tmp_path, {"ask.prompt": GOOD}), 4000).values()
    assert prompt.id == "ask" and prompt.call.response_schema is None
    assert prompt.messages({"question": "Why?"}) == ("Answer in one sentence.", "Why?")


@pytest.mark.parametrize("files, max_chars, file, words", BROKEN.values(), ids=BROKEN.keys())
def test_each_broken_file_is_named_with_its_problem(
    tmp_path: Path, files: dict[str, str], max_chars: int, file: str, words: str
) -> None:
    with pytest.raises(PromptError) as raised:
        load_prompts(write(tmp_path, files), max_chars)
    line = str(raised.value)
    assert "\n" not in line
    assert line.startswith(f"prompts/{file}: ")
    assert words in line


@pytest.mark.parametrize("case", ["undeclared-variable", "unbounded-string-without-cap"])
def test_a_broken_file_stops_start_up_with_one_line(fake: FakeGemini, tmp_path: Path, case: str) -> None:
    files, max_chars, file, words = BROKEN[case]
    env = server_env(fake, PROMPTS_DIR=str(write(tmp_path, files)), PROMPT_INPUT_MAX_CHARS=str(max_chars))
    result = launcher.run(
        ["-m", "uvicorn", "main:app", "--port", "0"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), **env},
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if file in line]
    assert line == f"Prompt error: prompts/{file}: " + line.split(": ", 2)[2] and words in line


def doctor(folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python doctor.py`, run from `folder` with only `env` (and PATH) set."""
    return launcher.run(
        [str(PROJECT / "doctor.py")], cwd=folder, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), **env}
    )


def test_doctor_reports_a_broken_file(fake: FakeGemini, tmp_path: Path) -> None:
    files, max_chars, file, words = BROKEN["unknown-config-key"]
    env = server_env(fake, PROMPTS_DIR=str(write(tmp_path, files)))
    result = doctor(tmp_path, env)
    assert result.returncode == 1
    assert f"FAIL  prompts: prompts/{file}: {words}" in result.stdout


def test_doctor_checks_each_prompts_own_model(fake: FakeGemini, tmp_path: Path) -> None:
    files = {"ask.prompt": f"---\nmodel: googleai/{RETIRED_MODEL}\n" + GOOD.removeprefix("---\n")}
    env = server_env(fake, PROMPTS_DIR=str(write(tmp_path, files)))
    result = doctor(tmp_path, env)
    assert result.returncode == 1
    assert f"FAIL  prompts: prompts/ask.prompt: model {RETIRED_MODEL} is not served or cannot generate" in result.stdout
{% endraw -%}
