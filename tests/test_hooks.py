"""Every rule of hooks/pre_gen_project.py, in-process: the hook is plain Python that takes the answers as a dict.

The end-to-end wiring (cookiecutter runs the hook, prints the line, leaves nothing behind) is tested on a few
answers in test_generation.py; here each rule runs in microseconds, so every refused answer has its case.
"""

from __future__ import annotations

import importlib.util
import json
from types import ModuleType
from typing import Any

import pytest
from support.helpers import ROOT
from test_generation import SUPPORTED


def load(name: str, path: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = load("pre_gen_project", "hooks/pre_gen_project.py")
EXTENSIONS = load("local_extensions", "local_extensions.py")


def defaults() -> dict[str, str]:
    """cookiecutter.json's answers as --no-input takes them: a choice's first value, the slug from the name."""
    values: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())
    answers = {key: value[0] if isinstance(value, list) else value for key, value in values.items()}
    answers = {key: value for key, value in answers.items() if not key.startswith("_")}
    answers["project_slug"] = "ai-task-manager-backend"
    return answers


def answers_with(changes: dict[str, str]) -> dict[str, str]:
    answers = defaults() | changes
    if "project_name" in changes and "project_slug" not in changes:
        answers["project_slug"] = changes["project_name"].lower().replace(" ", "-").replace("_", "-")
    return answers


@pytest.mark.parametrize("changes", SUPPORTED, ids=lambda changes: ",".join(f"{k}={v}" for k, v in changes.items()))
def test_supported_answers_pass(changes: dict[str, str]) -> None:
    assert HOOK.problem(answers_with(changes)) is None


APP = {"caller_check": "firebase_app_check"}
REFUSED: list[tuple[str, str] | tuple[str, str, dict[str, str]]] = [
    ("project_slug", "1backend"),
    ("project_slug", "My Backend"),
    ("project_slug", "back/end"),
    ("project_name", "   "),
    ("project_slug", "../escape"),
    ("project_slug", ".hidden"),
    ("project_name", 'Say "hi"'),
    ("description", "line one\nline two"),
    ("port", "0"),
    ("port", "65536"),
    ("port", "80a"),
    ("backend_replicas", "0"),
    ("backend_replicas", "33"),
    ("backend_replicas", "three"),
    ("rate_limit_per_minute", "0"),
    ("global_rate_limit_per_minute", "-5"),
    ("gemini_timeout_seconds", "0"),
    ("gemini_timeout_seconds", "301"),
    ("gemini_model", "gemini 2.5"),
    ("gemini_model", "Gemini-2.5-Flash"),
    ("gemini_model", "x"),
    # A thinking level the model refuses with 400 (model_capabilities.py): the line names both answers.
    ("gemini_thinking_level", "minimal", {"gemini_model": "gemini-3.8-flash"}),
    ("gemini_thinking_level", "minimal", {"gemini_model": "gemini-3.1-pro-preview"}),
    ("gemini_thinking_level", "low", {"gemini_model": "gemini-2.5-flash"}),
    ("allowed_origins", "localhost:5173"),
    ("allowed_origins", "http://localhost:5173/app"),
    ("allowed_origins", "ftp://example.com"),
    ("allowed_origins", "http://localhost:5173,"),
    ("allowed_origins", "http://localhost:99999"),
    ("allowed_origins", "https://user@example.com"),
    ("firebase_project_number", "", APP),
    ("firebase_project_number", "my-project", APP),
    ("firebase_project_number", "123456789012", {}),  # an answer that would silently do nothing
    ("oidc_issuer", "", {"caller_check": "oidc", "oidc_audience": "my-project"}),
    ("oidc_issuer", "http://accounts.google.com", {"caller_check": "oidc", "oidc_audience": "my-project"}),
    ("oidc_issuer", "https://accounts.google.com?x=1", {"caller_check": "oidc", "oidc_audience": "my-project"}),
    ("oidc_audience", "", {"caller_check": "oidc", "oidc_issuer": "https://accounts.google.com"}),
    ("oidc_audience", "my project", {"caller_check": "oidc", "oidc_issuer": "https://accounts.google.com"}),
    ("oidc_issuer", "https://accounts.google.com", APP | {"firebase_project_number": "123"}),
    ("domain", "", {"https": "letsencrypt"}),
    ("domain", "localhost", {"https": "letsencrypt"}),
    ("domain", "api.internal", {"https": "letsencrypt"}),
    ("domain", "api_tasks.example.com", {"https": "own_certificate"}),
    ("domain", "203.0.113.7", {"https": "own_certificate"}),
    ("domain", "-api.example.com", {"https": "own_certificate"}),
    ("domain", "api.example.com", {}),  # https is off: an answer that would silently do nothing
    ("acme_email", "ops", {"https": "letsencrypt", "domain": "api.example.com"}),
    ("acme_email", "ops@localhost", {"https": "letsencrypt", "domain": "api.example.com"}),
    ("acme_email", "o ps@example.com", {"https": "letsencrypt", "domain": "api.example.com"}),
    ("acme_email", "ops@example.com", {"https": "own_certificate", "domain": "localhost"}),
    ("trusted_proxies", "10.0.0.1/8"),
    ("trusted_proxies", "10.0.0.0/33"),
    ("trusted_proxies", "10.0.0.0/8,"),
    ("trusted_proxies", "lb.example.com"),
    ("trusted_proxies", "0.0.0.0/0"),  # everyone could choose the address the rate limit counts
    ("trusted_proxies", "10.0.0.0/8,0.0.0.0/1"),
    ("trusted_proxies", "::/0"),
    ("trusted_proxies", "2001:db8::/31"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[f"{c[0]}={c[1]!r}{'+' if c[2:] else ''}" for c in REFUSED])
def test_refused_answer_names_its_field_and_what_is_allowed(case: tuple[Any, ...]) -> None:
    field, value, *others = case
    line = HOOK.problem(answers_with((others[0] if others else {}) | {field: value}))
    assert line is not None and line.startswith(f"ERROR: {field}=")
    assert "must" in line and "\n" not in line  # one line that says what is allowed


def test_google_generativeai_sends_no_level_so_none_is_refused() -> None:
    answers = {
        "gemini_sdk": "google-generativeai",
        "gemini_model": "gemini-3.8-flash",
        "gemini_thinking_level": "minimal",
    }
    assert HOOK.problem(answers_with(answers)) is None


def test_issuer_is_kept_as_typed_trailing_slash_included() -> None:
    """Auth0's issuers end in a slash; the token's `iss` is compared character for character."""
    oidc = {"caller_check": "oidc", "oidc_audience": "my-project", "oidc_issuer": "https://tenant.eu.auth0.com/"}
    assert HOOK.problem(answers_with(oidc)) is None


def test_a_long_value_is_shortened_in_the_message() -> None:
    line = HOOK.problem(answers_with({"description": "x" * 400}))
    assert line is not None and "x" * 77 + "...'" in line and "x" * 78 not in line


def test_main_reads_the_rendered_json_and_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    context = {"_template": "gh:someone/template", "_repo_dir": str(ROOT), "_output_dir": "/srv/out", "__prompts__": {}}
    assert HOOK.main(json.dumps(answers_with({}) | context)) == 0
    assert capsys.readouterr().err == ""
    assert HOOK.main(json.dumps(answers_with({"port": "0", "project_name": "My Planner"}) | context)) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "ERROR: port='0' must be a whole number from 1 to 65535."
    assert lines[1] == "To run it again with your other answers, correct port in:"
    # Only answers that differ from the defaults; the slug follows the name, so it is left out.
    assert lines[2] == "  cookiecutter --no-input -o /srv/out gh:someone/template project_name='My Planner' port=0"


@pytest.mark.parametrize("slug", ["../escape", "a/b", ".hidden", "back\\slash", "x" * 64, ""])
def test_folder_guard_refuses_what_is_not_a_plain_folder_name(slug: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        EXTENSIONS.folder_name(slug)
    assert capsys.readouterr().err.startswith("ERROR: project_slug=")


def test_every_answer_has_a_rule_or_is_a_choice() -> None:
    """A new question must get a rule here (or be a choice cookiecutter checks): nothing unchecked reaches a file."""
    choices = {
        key for key, value in json.loads((ROOT / "cookiecutter.json").read_text()).items() if isinstance(value, list)
    }
    unchecked = set(defaults()) - set(HOOK.CHECKS) - choices
    assert unchecked == set()
