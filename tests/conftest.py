"""Fixtures for the template's tests. Bakes are cached per set of answers for the whole session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.helpers import ROOT

TIERS = ("render", "bake", "browser", "stack", "engine", "bench")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test exactly one tier (pytest.ini lists them): its own mark when it has one; else
    `browser` when it uses the Node tools, `stack` when it needs root, and `render` for the rest."""
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if not tiers:
            fixtures = getattr(item, "fixturenames", ())
            tier = "browser" if "node_tools" in fixtures else "stack" if item.get_closest_marker("root") else "render"
            item.add_marker(tier)
        elif len(set(tiers)) > 1:
            raise pytest.UsageError(f"{item.nodeid} has more than one tier: {sorted(set(tiers))}")


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
