"""What each Gemini model accepts as a thinking setting: the one table, read by settings (at start-up),
doctor.py, the fake Gemini in tests/ and the template's pre-generation hook. Standard library only.

Google publishes no single per-model table: each row says where its facts were read and when. The first
row whose pattern (fnmatch, on the id without `models/`) matches applies; an id no row matches is
accepted with a warning, since new models appear faster than this file changes.
"""

from dataclasses import dataclass
from fnmatch import fnmatchcase

LEVELS = ("minimal", "low", "medium", "high")


@dataclass(frozen=True)
class Row:
    pattern: str
    levels: tuple[str, ...]  # accepted thinkingLevel values; empty: none (the model takes a thinkingBudget)
    default: str | None  # the level the model uses when none is sent; None where it takes a budget
    source: str
    checked: str  # when the source was read


# Order matters: the first match wins, so a Flash-Lite row comes before the Flash row it would also match.
TABLE: tuple[Row, ...] = (
    Row(
        "gemini-3.8-flash*",
        ("low", "medium", "high"),
        "medium",
        "simonw/llm-gemini release 0.34 (gemini-3.8-flash: low, medium, high); issue 20's review",
        "2026-12-02",
    ),
    Row(
        "gemini-3.5-flash-lite*",
        LEVELS,
        "minimal",
        "docs.cloud.google.com/gemini-enterprise-agent-platform/models/gemini/3-5-flash-lite",
        "2026-12-02",
    ),
    Row(
        "gemini-3.1-flash-lite*",
        LEVELS,
        "minimal",
        "docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-5-flash (comparison table)",
        "2026-12-02",
    ),
    Row(
        "gemini-3.5-flash*",  # deprecated: served by gemini-3.6-flash (ai.google.dev whats-new-gemini-3.5)
        LEVELS,
        "medium",
        "docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-5-flash (comparison table)",
        "2026-12-02",
    ),
    Row(
        "gemini-3*-pro*",
        ("low", "medium", "high"),
        "high",
        "docs.cloud.google.com/gemini-enterprise-agent-platform/models/guides/gemini-3-5-flash (3.1 Pro column)",
        "2026-12-02",
    ),
    Row(
        "gemini-2.5-*",
        (),
        None,
        "docs.cloud.google.com/vertex-ai/generative-ai/docs/models/gemini/3-flash (thinking_level replaces "
        "thinking_budget from Gemini 3 on)",
        "2026-12-02",
    ),
)


def row_for(model: str) -> Row | None:
    """The table's row for a model id, or None when the table does not know it."""
    name = model.removeprefix("models/")
    return next((row for row in TABLE if fnmatchcase(name, row.pattern)), None)


def thinking_problem(model: str, level: str | None) -> str | None:
    """Why Gemini would refuse this thinking level with this model (400 INVALID_ARGUMENT), or None.
    An empty level sends nothing, which every model accepts; an unknown model is not judged here."""
    row = row_for(model)
    if not level or row is None:
        return None
    if not row.levels:
        return f"{model} takes no thinking level (it takes a thinking budget): leave the level empty"
    if level not in row.levels:
        return f"{model} refuses thinking level {level}: it accepts {', '.join(row.levels)}"
    return None
