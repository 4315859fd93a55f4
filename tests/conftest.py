"""Fixtures for the template's tests. Bakes are cached per set of answers for the whole session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT


@pytest.fixture(scope="session")
def bake(cookies_session: Any) -> Callable[..., Path]:
    """bake(**answers) -> the generated project's folder. The same answers give the same folder."""
    cache: dict[tuple[tuple[str, str], ...], Path] = {}

    def _bake(**answers: Any) -> Path:
        key = tuple(sorted((name, str(value)) for name, value in answers.items()))
        if key not in cache:
            result = cookies_session.bake(extra_context=answers, template=str(ROOT))
            assert result.exit_code == 0, f"bake failed for {answers}: {result.exception}"
            cache[key] = Path(result.project_path)
        return cache[key]

    return _bake
