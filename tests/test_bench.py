"""The benchmark (bench/run.py) in its quick mode: it runs end to end and reports sound figures.

It bakes the template, starts the fake Gemini and four real uvicorn backends (the bare floor,
google-genai, google-generativeai, the guide's design) and loads them with wrk, then streams answers from
the google-genai backend (row 6). Nothing here depends on timing: the figures are checked for being there,
numeric and error-free, never for being fast.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support.helpers import ROOT
from support.namespace_stack import stack_unavailable

pytestmark = pytest.mark.bench

QUICK_ROWS = {
    0: "0. floor: bare FastAPI + httpx",
    1: "1. generated, google-genai",
    2: "2. generated, google-generativeai",
    4: "4. guide's design",
}
COLUMNS = 14  # row, C, requests, req/s, ideal, % of ideal, p50, p95, p99, added p50, 3 x CPU, errors
QUICK_STREAM_ROWS = {6: "6. streamed: generated, google-genai"}
# row, C, streams, streams/s, ideal, % of ideal, first delta p50 and p99, added p50 and p99, whole p50, 3 x CPU, errors
STREAM_COLUMNS = 15


def table_rows(text: str, header: str) -> list[str]:
    """The body lines of the printed table whose header line starts with `header`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 2  # past the header and |---|
    rows = []
    for line in lines[start:]:
        if not line.startswith("| "):
            break
        rows.append(line)
    return rows


def assert_figures(row: int, label: str, line: str, columns: int) -> None:
    """Every cell after the label a number (or a percentage), and no errors."""
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert len(cells) == columns, line
    assert cells[0].startswith(label), line
    for cell in cells[1:]:
        assert re.fullmatch(r"-?\d+(\.\d+)?%?", cell), f"row {row}: {cell!r} is not a figure in {line}"
    assert cells[-1] == "0", f"row {row} had errors: {line}"


def test_quick_benchmark_prints_a_table_with_every_row_and_no_errors(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(tmp_path), "--timeout", "500"],
        check=False, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"

    # The printed tables: one line per row, every cell after the label a number (or a percentage).
    lines = table_rows(result.stdout, "| row |")
    assert len(lines) == len(QUICK_ROWS), result.stdout
    for (row, label), line in zip(QUICK_ROWS.items(), lines, strict=True):
        assert_figures(row, label, line, COLUMNS)
    lines = table_rows(result.stdout, "| streamed row |")
    assert len(lines) == len(QUICK_STREAM_ROWS), result.stdout
    for (row, label), line in zip(QUICK_STREAM_ROWS.items(), lines, strict=True):
        assert_figures(row, label, line, STREAM_COLUMNS)
    assert "Targets (measured, not asserted):" in result.stdout
    assert "Row 1 CPU / floor CPU at C=8: " in result.stdout, result.stdout  # printed, never judged here

    # The same figures as JSON: every row answered every request it was asked for, without an error.
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["machine"]["nproc"].isdigit()
    rows = {m["row"]: m for m in results["rows"]}
    assert sorted(rows) == sorted(QUICK_ROWS)
    for row, m in rows.items():
        assert m["requests"] >= m["asked"] > 0, m  # wrk may count a response or two past the quota
        assert m["non2xx"] == m["socket_errors"] == 0 and m["statuses"] == {}, m
        for name in ("rps", "p50_ms", "p95_ms", "p99_ms", "backend_cpu_ms", "fake_cpu_ms", "wrk_cpu_ms"):
            assert math.isfinite(m[name]) and m[name] > 0, (row, name, m[name])
        assert m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"], m
        # Every answer went through the fake Gemini: no request is faster than its latency.
        assert m["p50_ms"] >= results["latency_s"] * 1000, m
    # The streamed row: every stream it asked for ended with a result, and each figure is there.
    (streamed,) = results["streams"]
    assert streamed["row"] == 6 and streamed["streams"] == streamed["asked"] > 0, streamed
    assert streamed["socket_errors"] == 0 and streamed["statuses"] == {}, streamed
    for name in ("streams_per_s", "first_delta_p50_ms", "first_delta_p99_ms", "whole_p50_ms", "backend_cpu_ms"):
        assert math.isfinite(streamed[name]) and streamed[name] > 0, (name, streamed[name])
    assert streamed["first_delta_p50_ms"] <= streamed["first_delta_p99_ms"], streamed
    # Every first delta waited for the fake's first piece; "added" is what remains of it.
    assert streamed["first_delta_p50_ms"] >= results["latency_s"] * 1000, streamed
    assert (tmp_path / "table.md").read_text().startswith("| row |")


@pytest.mark.root
def test_quick_benchmark_of_the_stack_row(tmp_path: Path) -> None:
    """Rows 3 and 7 (Nginx in front of the replicas, in a private namespace; whole and streamed answers)
    keep working too."""
    reason = stack_unavailable()
    if reason:
        pytest.skip(reason)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--rows", "3,7", "--out", str(tmp_path)],
        check=False, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-4000:]}"
    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["rows"]
    assert row["row"] == 3 and row["requests"] >= row["asked"] > 0, row
    assert row["non2xx"] == row["socket_errors"] == 0, row
    assert row["p50_ms"] >= 50, row  # every answer went through nginx, a replica and the fake Gemini
    (streamed,) = results["streams"]
    assert streamed["row"] == 7 and streamed["streams"] == streamed["asked"] > 0, streamed
    assert streamed["socket_errors"] == 0 and streamed["statuses"] == {}, streamed
    assert streamed["first_delta_p50_ms"] >= 50, streamed  # every first delta waited for the fake's first piece
    assert math.isfinite(streamed["first_delta_p99_ms"]) and streamed["extra_cpu_ms"]["nginx"] >= 0, streamed
