"""A guard that runs while cookiecutter reads the answers, before it creates any folder.

Cookiecutter creates the project folder from `project_slug` *before* hooks/pre_gen_project.py
runs, so a slug like `../x` or `a/b` would make folders outside (or left over inside) the output
folder even though the hook then refuses it. The `folder_name` filter, used by the private
`__project_folder` answer in cookiecutter.json, stops generation first. The hook checks the full
slug rules afterwards.
"""

import importlib.util
import sys
from pathlib import Path

from jinja2 import Environment
from jinja2.ext import Extension


def folder_name(slug: object) -> str:
    value = str(slug)
    if not value or value.startswith(".") or any(char in value for char in "/\\:\0\n\r") or len(value) > 63:
        shown = value if len(value) <= 80 else value[:77] + "..."
        print(f"ERROR: project_slug={shown!r} must be a plain folder name (no '/', '\\', leading '.', at most 63).",
              file=sys.stderr)
        raise SystemExit(1)  # before cookiecutter writes anything
    return value


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
    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["folder_name"] = folder_name
        environment.globals["thinking_rows"] = thinking_rows
