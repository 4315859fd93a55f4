"""`python doctor.py` against the fake Gemini: each check's verdict, exit status, and the key never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import launcher
import pytest
from conftest import API_KEY, EMBEDDING_MODEL, PROJECT, RETIRED_MODEL, free_port, server_env
from fake_gemini import FakeGemini, Fault

WRONG_KEY = "wrong-key-4c8e2a-never-print"


@pytest.fixture
def doctor(fake: FakeGemini, tmp_path: Path):
    """doctor(*args, **settings) -> the finished `python doctor.py` run, with the fake's settings."""
    fake.reset()

    def run(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
        result = launcher.run(
            [str(PROJECT / "doctor.py"), *args],
            cwd=tmp_path,  # no .env there: everything comes from the environment
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), **server_env(fake, **settings)},
        )
        output = result.stdout + result.stderr
        assert API_KEY not in output and WRONG_KEY not in output
        return result

    return run


@pytest.mark.slow
def test_the_command_itself(fake: FakeGemini, tmp_path: Path) -> None:
    """The other tests run doctor.py through the launcher (tests/launcher.py); this one in a new Python, as typed."""
    fake.reset()
    result = subprocess.run(
        [sys.executable, str(PROJECT / "doctor.py")],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT), **server_env(fake)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result) == ["ok"] * 5 and API_KEY not in result.stdout + result.stderr
    assert fake.model_gets == 1 and fake.count == 0


def verdicts(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The first word of each check's line: ok or FAIL."""
    return [line.split()[0] for line in result.stdout.splitlines() if not line.startswith(" ")]


def test_all_good_exits_0_without_spending_tokens(doctor, fake: FakeGemini) -> None:
    result = doctor()
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result) == ["ok"] * 5
    assert "supports generateContent" in result.stdout
    assert "prompts: 1 served: /api/breakdown-task" in result.stdout
    assert fake.model_gets == 1 and fake.count == 0  # a models `get`, no generateContent


def test_rejected_key_exits_1_and_says_where_to_get_one(doctor) -> None:
    result = doctor(GEMINI_API_KEY=WRONG_KEY)
    assert result.returncode == 1
    assert verdicts(result) == ["ok", "ok", "FAIL"]  # settings, reachable, key
    assert "GEMINI_API_KEY was rejected: create a key at https://aistudio.google.com/apikey" in result.stdout


def test_retired_model_exits_1_and_names_current_ones(doctor) -> None:
    result = doctor(GEMINI_MODEL=RETIRED_MODEL)
    assert result.returncode == 1
    assert verdicts(result) == ["ok", "ok", "ok", "FAIL"]
    assert f"{RETIRED_MODEL} is not served: set GEMINI_MODEL to one of gemini-" in result.stdout


def test_model_that_cannot_generate_exits_1(doctor) -> None:
    result = doctor(GEMINI_MODEL=EMBEDDING_MODEL)
    assert result.returncode == 1
    assert f"{EMBEDDING_MODEL} does not support generateContent: set GEMINI_MODEL" in result.stdout


def test_unreachable_gemini_exits_1_at_the_reachability_check(doctor) -> None:
    result = doctor(GEMINI_BASE_URL=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    assert result.returncode == 1
    assert verdicts(result) == ["ok", "FAIL"]
    assert "Gemini reachable: could not reach Gemini at http://127.0.0.1:" in result.stdout
    assert "check the network" in result.stdout


def test_missing_key_fails_the_settings_check(doctor) -> None:
    result = doctor(GEMINI_API_KEY="")
    assert result.returncode == 1
    assert verdicts(result) == ["FAIL"]
    assert "GEMINI_API_KEY is not set" in result.stdout


def test_generate_prints_the_sub_tasks_and_the_tokens(doctor, fake: FakeGemini) -> None:
    fake.usage = {"promptTokenCount": 83, "candidatesTokenCount": 52, "thoughtsTokenCount": 19, "totalTokenCount": 154}
    result = doctor("--generate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdicts(result) == ["ok"] * 6
    assert "generate breakdown-task: 3 items" in result.stdout
    assert "tokens: prompt 83, answer 52, thinking 19, total 154" in result.stdout
    assert "- Plan: Plan a team offsite" in result.stdout  # the fake's answer, printed
    assert fake.count == 1


def test_generate_reports_a_failed_call(doctor, fake: FakeGemini) -> None:
    fake.push(Fault("blocked"))  # the models `get` passes; the call's answer is blocked
    result = doctor("--generate")
    assert result.returncode == 1
    assert verdicts(result)[-1] == "FAIL" and "unusable" in result.stdout


def test_bad_usage_exits_2(doctor) -> None:
    result = doctor("--no-such-option")
    assert result.returncode == 2
    assert "usage:" in result.stderr


def test_401_for_the_key_names_auth_keys(doctor, fake: FakeGemini) -> None:
    fake.mode = "unauthenticated"  # doctor's models `get` too
    result = doctor()
    assert result.returncode == 1
    assert verdicts(result) == ["ok", "ok", "FAIL"]  # settings, reachable, key
    assert "GEMINI_API_KEY was rejected" in result.stdout and "auth key" in result.stdout


def test_gemini_answered_and_refused_is_not_a_network_problem(doctor, fake: FakeGemini) -> None:
    fake.mode = "location"
    result = doctor()
    assert result.returncode == 1
    assert verdicts(result) == ["ok", "ok", "FAIL"]  # settings, reachable: it answered
    assert "Gemini answered and refused: 400 FAILED_PRECONDITION" in result.stdout
    assert "check the network" not in result.stdout


def test_generate_with_a_spent_quota_says_what_to_do(doctor, fake: FakeGemini) -> None:
    fake.push(Fault("quota_daily"))
    result = doctor("--generate")
    assert result.returncode == 1
    assert "Gemini answered and refused: 429 RESOURCE_EXHAUSTED" in result.stdout
    assert "AI Studio" in result.stdout
    assert fake.count == 1


def test_generate_warns_when_another_model_answered(doctor, fake: FakeGemini) -> None:
    fake.push(Fault("rerouted", model_version="gemini-9.9-flash"))
    result = doctor("--generate")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "answered by gemini-9.9-flash" in result.stdout and "WARN" in verdicts(result)


def test_generate_prints_the_model_that_answered(doctor) -> None:
    result = doctor("--generate")
    assert "answered by gemini-" in result.stdout and "WARN" not in verdicts(result)


def test_a_refused_thinking_level_fails_the_settings_check(doctor) -> None:
    result = doctor(GEMINI_MODEL="gemini-3.8-flash", GEMINI_THINKING_LEVEL="minimal")
    assert result.returncode == 1
    assert verdicts(result) == ["FAIL"]
    assert "GEMINI_THINKING_LEVEL=minimal does not go with GEMINI_MODEL=gemini-3.8-flash" in result.stdout


def test_a_model_the_table_does_not_know_is_a_warning(doctor, fake: FakeGemini) -> None:
    known, fake.models = fake.models, None  # the fake serves any id
    try:
        result = doctor(GEMINI_MODEL="gemini-9.9-flash")
    finally:
        fake.models = known
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARN  model: gemini-9.9-flash is not in model_capabilities.py" in result.stdout


def test_generate_with_a_model_not_on_the_keys_tier_names_the_model(doctor, fake: FakeGemini) -> None:
    fake.push(Fault("quota_zero"))
    result = doctor("--generate")
    assert result.returncode == 1
    assert "Gemini answered and refused: 429 RESOURCE_EXHAUSTED" in result.stdout
    assert "fix GEMINI_MODEL" in result.stdout and "tier" in result.stdout
    assert fake.count == 1
