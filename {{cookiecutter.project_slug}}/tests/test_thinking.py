"""GEMINI_THINKING_LEVEL on the wire: sent as the config's thinking level by google-genai, left out when
empty; google-generativeai cannot send it and says so once at start-up."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import MODEL, PROOF, log_lines, server_env, start_server, stop_server
from fake_gemini import FakeGemini, Seen

import gemini_client
from model_capabilities import thinking_problem

SENDS_THINKING_LEVEL = gemini_client.SDK == "google-genai"
pytestmark = pytest.mark.slow  # each test starts a server of its own


def thinking_level(seen: Seen) -> str | None:
    """The thinking level in a recorded request, lower-cased; None when none was sent."""
    thinking = seen.generation_config.get("thinkingConfig") or seen.generation_config.get("thinking_config") or {}
    # google-genai writes this block with proto field names, which Gemini's JSON parser accepts too.
    level = thinking.get("thinkingLevel") or thinking.get("thinking_level")
    return str(level).lower() if level is not None else None


@pytest.mark.parametrize("level", ["minimal", "low", "medium", "high", ""])
def test_thinking_level_on_the_wire(fake: FakeGemini, tmp_path: Path, level: str) -> None:
    if thinking_problem(MODEL, level):  # this model refuses it: start-up stops (test_production.py)
        with pytest.raises(RuntimeError, match="GEMINI_THINKING_LEVEL"):
            start_server(tmp_path, server_env(fake, GEMINI_THINKING_LEVEL=level))
        return
    server = start_server(tmp_path, server_env(fake, GEMINI_THINKING_LEVEL=level))
    fake.reset()
    try:
        task = {"title": "Move house"}
        response = httpx.post(f"{server.url}/api/breakdown-task", json=task, headers=PROOF, timeout=30)
    finally:
        stop_server(server)
    assert response.status_code == 200
    (seen,) = fake.requests
    if level and SENDS_THINKING_LEVEL:
        assert thinking_level(seen) == level
    else:
        assert thinking_level(seen) is None  # nothing sent: the model thinks as it does by default
    warnings = [line for line in log_lines(server) if "GEMINI_THINKING_LEVEL" in line.get("message", "")]
    if level and not SENDS_THINKING_LEVEL:
        assert [line["level"] for line in warnings] == ["WARNING"]  # once, at start-up
        assert "cannot send" in warnings[0]["message"]
    else:
        assert warnings == []


def test_the_default_settings_start_without_a_warning(fake: FakeGemini, tmp_path: Path) -> None:
    """Out of the box (GEMINI_THINKING_LEVEL unset) neither SDK warns: google-generativeai's default is empty."""
    server = start_server(tmp_path, server_env(fake))
    stop_server(server)
    assert [line for line in log_lines(server) if line.get("level") == "WARNING"] == []


def test_an_unknown_thinking_level_stops_start_up(fake: FakeGemini, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="GEMINI_THINKING_LEVEL"):
        start_server(tmp_path, server_env(fake, GEMINI_THINKING_LEVEL="extreme"))
