"""frontend/services/geminiService.ts is up to date with prompts/ (scripts/gen_client.py writes its typed functions)."""

import subprocess
import sys

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
