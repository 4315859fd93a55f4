"""A guard that runs while cookiecutter reads the answers, before it creates any folder.

Cookiecutter creates the project folder from `project_slug` *before* hooks/pre_gen_project.py
runs, so a slug like `../x` or `a/b` would make folders outside (or left over inside) the output
folder even though the hook then refuses it. The `folder_name` filter, used by the private
`__project_folder` answer in cookiecutter.json, stops generation first. The hook checks the full
slug rules afterwards.
"""

import importlib.util
import sys
import textwrap
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension


def slug_of(name: str) -> str:
    """cookiecutter.json's default slug for a name (kept in step with its `project_slug` expression)."""
    return name.lower().replace(" ", "-").replace("_", "-")


def folder_name(slug: object, name: object = None) -> str:
    value = str(slug)
    if not value or value.startswith(".") or any(char in value for char in "/\\:\0\n\r") or len(value) > 63:
        shown = value if len(value) <= 80 else value[:77] + "..."
        rule = "must be a plain folder name (no '/', '\\', leading '.', at most 63)"
        if name is not None and value == slug_of(str(name)):  # the slug came from the name: name what was typed
            typed = str(name) if len(str(name)) <= 80 else str(name)[:77] + "..."
            message = f"ERROR: project_name={typed!r} gives the folder name {shown!r}, which {rule}."
        else:
            message = f"ERROR: project_slug={shown!r} {rule}."
        print(message, file=sys.stderr)
        raise SystemExit(1)  # before cookiecutter writes anything
    return value


def python_text(text: object, indent: int, prefix_width: int, width: int = 120) -> str:
    """A plain answer (no quotes or backslashes: the hook checks) as a Python string literal laid out the way
    `ruff format` leaves it: on the line when it fits after `prefix_width` characters, else in parentheses,
    one piece per line. Every bake must be `ruff format --check` clean whatever the answer's length."""
    value = str(text)
    if prefix_width + len(value) + 3 <= width:  # the quotes and a trailing comma
        return f'"{value}"'
    pieces = textwrap.wrap(value, width - indent - 7, drop_whitespace=False, break_on_hyphens=False)
    inner = " " * (indent + 4)
    return "(\n" + "".join(f'{inner}"{piece}"\n' for piece in pieces) + " " * indent + ")"


def thinking_rows() -> list[str]:
    """The generated README's per-model note, one Markdown row per row of the bake's model_capabilities.py
    (the one table of what each model accepts)."""
    path = Path(__file__).resolve().parent / "{{cookiecutter.project_slug}}" / "model_capabilities.py"
    spec = importlib.util.spec_from_file_location("template_model_capabilities", path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [
        f"| `{row.pattern}` | {', '.join(f'`{level}`' for level in row.levels) or 'none (a thinking budget)'} "
        f"| {f'`{row.default}`' if row.default else '-'} | {row.source}, read {row.checked} |"
        for row in module.TABLE
    ]


class SlugGuard(Extension):
    """Also adds the filters the templates share (cookiecutter loads this one extension)."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["folder_name"] = folder_name
        environment.filters["python_text"] = python_text
        environment.globals["thinking_rows"] = thinking_rows
