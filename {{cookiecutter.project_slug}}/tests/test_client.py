"""What is derived from prompts/ is up to date: the typed client (scripts/gen_client.py) and k8s/prompts."""

import subprocess
import sys

import pytest
from conftest import PROJECT


def test_generated_client_is_up_to_date_with_the_prompts() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT / "scripts" / "gen_client.py"), "--check"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr  # else: run python scripts/gen_client.py and commit the file


def test_k8s_prompts_are_in_step_with_the_prompts() -> None:
    script = PROJECT / "scripts" / "k8s_prompts.py"
    if not script.exists():
        pytest.skip("no k8s/ in this project")
    result = subprocess.run([sys.executable, str(script), "--check"], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr  # else: run python scripts/k8s_prompts.py
