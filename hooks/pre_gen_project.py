"""Check every answer before cookiecutter writes anything. Standard library only.

A bad answer stops generation with one line naming the field, the value and what is allowed.
"""

import re
import sys

ANSWERS = {
    "project_name": {{ cookiecutter.project_name | string | tojson }},
    "project_slug": {{ cookiecutter.project_slug | string | tojson }},
    "description": {{ cookiecutter.description | string | tojson }},
    "port": {{ cookiecutter.port | string | tojson }},
    "backend_replicas": {{ cookiecutter.backend_replicas | string | tojson }},
    "rate_limit_per_minute": {{ cookiecutter.rate_limit_per_minute | string | tojson }},
    "global_rate_limit_per_minute": {{ cookiecutter.global_rate_limit_per_minute | string | tojson }},
    "gemini_model": {{ cookiecutter.gemini_model | string | tojson }},
    "gemini_timeout_seconds": {{ cookiecutter.gemini_timeout_seconds | string | tojson }},
    "allowed_origins": {{ cookiecutter.allowed_origins | string | tojson }},
}

# Text that ends up in Python strings, YAML and Markdown: printable, no quotes or backslashes.
PLAIN_TEXT = re.compile(r"^[^\"'`\\<>{}\x00-\x1f\x7f]+$")


def integer(field: str, low: int, high: int) -> str | None:
    value = ANSWERS[field]
    if not re.fullmatch(r"[0-9]+", value) or not low <= int(value) <= high:
        return f"must be a whole number from {low} to {high}"
    return None


def text(field: str, longest: int) -> str | None:
    value = ANSWERS[field]
    if not value.strip() or len(value) > longest or not PLAIN_TEXT.match(value):
        return f"must be 1-{longest} printable characters without quotes, backslashes, <, >, braces or newlines"
    return None


ORIGIN = re.compile(r"https?://([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?")


def origins() -> str | None:
    for origin in ANSWERS["allowed_origins"].split(","):
        match = ORIGIN.fullmatch(origin.strip())
        if not match or (match[4] and not 1 <= int(match[4]) <= 65535):
            return "must be comma-separated origins like http://localhost:5173 (http or https, a host, an optional port, no path)"
    return None


CHECKS = {
    "project_name": lambda: text("project_name", 80),
    "project_slug": lambda: None
    if re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", ANSWERS["project_slug"])
    else "must start with a lowercase letter and hold only lowercase letters, digits, '-' or '_' (at most 63)",
    "description": lambda: text("description", 300),
    "port": lambda: integer("port", 1, 65535),
    "backend_replicas": lambda: integer("backend_replicas", 1, 32),
    "rate_limit_per_minute": lambda: integer("rate_limit_per_minute", 1, 100000),
    "global_rate_limit_per_minute": lambda: integer("global_rate_limit_per_minute", 1, 1000000),
    "gemini_model": lambda: None
    if re.fullmatch(r"(models/)?[a-z][a-z0-9.-]{1,62}[a-z0-9]", ANSWERS["gemini_model"])
    else "must be a Gemini model id such as gemini-3.5-flash-lite (lowercase letters, digits, '.' and '-')",
    "gemini_timeout_seconds": lambda: integer("gemini_timeout_seconds", 1, 300),
    "allowed_origins": origins,
}


def main() -> int:
    for field, check in CHECKS.items():
        problem = check()
        if problem:
            shown = ANSWERS[field] if len(ANSWERS[field]) <= 80 else ANSWERS[field][:77] + "..."
            print(f"ERROR: {field}={shown!r} {problem}.", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
