"""Check every answer before cookiecutter writes anything. Standard library only.

A bad answer stops generation with one line naming the field, the value and what is allowed.

This file is plain Python: cookiecutter renders only the one string in `main()` (the answers as JSON),
so the template's tests import it and call `problem(answers)` for every rule, without a bake.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import re
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

Answers = dict[str, str]

# Text that ends up in Python strings, YAML and Markdown: printable, no quotes or backslashes.
PLAIN_TEXT = re.compile(r"^[^\"'`\\<>{}\x00-\x1f\x7f]+$")


def integer(value: str, low: int, high: int) -> str | None:
    if not re.fullmatch(r"[0-9]+", value) or not low <= int(value) <= high:
        return f"must be a whole number from {low} to {high}"
    return None


def text(value: str, longest: int) -> str | None:
    if not value.strip() or len(value) > longest or not PLAIN_TEXT.match(value):
        return f"must be 1-{longest} printable characters without quotes, backslashes, <, >, braces or newlines"
    return None


SLUG = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def project_slug(answers: Answers) -> str | None:
    if SLUG.fullmatch(answers["project_slug"]):
        return None
    return "must start with a lowercase letter and hold only lowercase letters, digits, '-' or '_' (at most 63)"


MODEL = re.compile(r"(models/)?[a-z][a-z0-9.-]{1,62}[a-z0-9]")


def gemini_model(answers: Answers) -> str | None:
    if MODEL.fullmatch(answers["gemini_model"]):
        return None
    return "must be a Gemini model id such as gemini-3.5-flash-lite (lowercase letters, digits, '.' and '-')"


ORIGIN = re.compile(r"https?://([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(:([0-9]{1,5}))?")


def allowed_origins(answers: Answers) -> str | None:
    for origin in answers["allowed_origins"].split(","):
        match = ORIGIN.fullmatch(origin.strip())
        if not match or (match[4] and not 1 <= int(match[4]) <= 65535):
            return (
                "must be comma-separated origins like http://localhost:5173 (http or https, a host, an optional "
                "port, no path)"
            )
    return None


def required_by(answers: Answers, field: str, mode: str, rule: str, check: re.Pattern[str]) -> str | None:
    """A caller_check answer: required (and checked) in its own mode, left empty in the others."""
    value = answers[field]
    if answers["caller_check"] == mode:
        return None if check.fullmatch(value) else f"is required with caller_check={mode} and must be {rule}"
    return None if value == "" else f"must be empty unless caller_check={mode}"


# An issuer is compared with the token's `iss` character for character, so it is kept exactly as typed:
# a plain https URL without query or fragment, with or without a trailing slash (Auth0's issuers end in
# one). Its discovery document is at <issuer without the trailing slash>/.well-known/openid-configuration.
ISSUER = re.compile(r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&*+,;=:@-]+)*/?")
AUDIENCE = re.compile(r"[A-Za-z0-9._:/@-]{1,200}")
PROJECT_NUMBER = re.compile(r"[0-9]{1,20}")


# A host name: labels of letters, digits and inner hyphens, 253 characters at most; the last label is
# not all digits, so an IP address is refused (a certificate names a host).
HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN = re.compile(rf"({HOST_LABEL}\.)*(?![0-9]+$){HOST_LABEL}")
# Names no public CA can issue for (RFC 6761 and RFC 6762 special-use names, and dot-less names).
NOT_PUBLIC = re.compile(r"([^.]+|.*\.(localhost|local|internal|test|example|invalid|home\.arpa))", re.IGNORECASE)


def domain(answers: Answers) -> str | None:
    value, mode = answers["domain"], answers["https"]
    if mode == "off":
        return None if value == "" else "must be empty unless https is letsencrypt or own_certificate"
    if not DOMAIN.fullmatch(value) or len(value) > 253:
        return f"is required with https={mode} and must be a DNS name such as api.example.com"
    if mode == "letsencrypt" and NOT_PUBLIC.fullmatch(value):
        return "must be a public DNS name for Let's Encrypt to issue for it (use own_certificate for local names)"
    return None


# A local part without spaces, quotes or brackets, one @, a domain with at least one dot.
EMAIL = re.compile(r"[A-Za-z0-9.!#$%&*+/=?^_|~-]{1,64}@(" + HOST_LABEL + r"\.)+" + HOST_LABEL)


def acme_email(answers: Answers) -> str | None:
    value = answers["acme_email"]
    if value and answers["https"] != "letsencrypt":
        return "must be empty unless https=letsencrypt"
    if value and not EMAIL.fullmatch(value):
        return "must be an e-mail address such as ops@example.com (or empty)"
    return None


# The bake's own table of model capabilities (model_capabilities.py), read from the template folder: one table
# for this hook and the generated project (settings, doctor, the fake Gemini). main() points it at the folder
# cookiecutter gives; imported by the tests, the hook finds it beside itself.
TEMPLATE = Path(__file__).resolve().parent.parent
PROJECT_FOLDER = "{" * 2 + "cookiecutter.project_slug" + "}" * 2  # the template's folder, spelt so Jinja leaves it


def thinking_level(answers: Answers) -> str | None:
    if answers.get("gemini_sdk") == "google-generativeai":
        return None  # that SDK sends no thinking level: the bake leaves it empty
    path = TEMPLATE / PROJECT_FOLDER / "model_capabilities.py"
    spec = importlib.util.spec_from_file_location("model_capabilities", path)
    assert spec and spec.loader, path
    capabilities = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capabilities)
    model, level = answers["gemini_model"], answers["gemini_thinking_level"]
    if capabilities.thinking_problem(model, level) is None:
        return None
    row = capabilities.row_for(model)
    if not row.levels:
        return f"must be empty with gemini_model={model!r}: that model takes no thinking level"
    return f"must be one that gemini_model={model!r} accepts: {', '.join(row.levels)} (or empty)"


# A trusted proxy may name the client, so the rate limit's key. A range wider than these lets a large
# part of the internet (0.0.0.0/0: everyone) choose its own address: no balancer needs that.
SHORTEST_PREFIX = {4: 8, 6: 32}


def trusted_proxies(answers: Answers) -> str | None:
    value = answers["trusted_proxies"]
    if value == "":
        return None
    for item in value.split(","):
        try:
            network = ipaddress.ip_network(item.strip(), strict=True)
        except ValueError:
            return "must be comma-separated CIDRs such as 10.0.0.0/8,2001:db8::/32 (no host bits set), or empty"
        shortest = SHORTEST_PREFIX[network.version]
        if network.prefixlen < shortest:
            return (
                f"must not hold {network}: an IPv{network.version} range wider than /{shortest} would let "
                "clients from all of it choose the address the rate limit counts; name your balancers' ranges"
            )
    return None


# Field -> its rule. choice answers (gemini_sdk, caller_check, https, ...) are checked by cookiecutter
# itself before this hook runs.
CHECKS: dict[str, Callable[[Answers], str | None]] = {
    "project_name": lambda a: text(a["project_name"], 80),
    "project_slug": project_slug,
    "description": lambda a: text(a["description"], 300),
    "port": lambda a: integer(a["port"], 1, 65535),
    "backend_replicas": lambda a: integer(a["backend_replicas"], 1, 32),
    "rate_limit_per_minute": lambda a: integer(a["rate_limit_per_minute"], 1, 100000),
    "global_rate_limit_per_minute": lambda a: integer(a["global_rate_limit_per_minute"], 1, 1000000),
    "gemini_model": gemini_model,
    # gemini_thinking_level itself is a choice; this checks it against the model (model_capabilities.py).
    "gemini_thinking_level": thinking_level,
    "gemini_timeout_seconds": lambda a: integer(a["gemini_timeout_seconds"], 1, 300),
    "allowed_origins": allowed_origins,
    "firebase_project_number": lambda a: required_by(
        a, "firebase_project_number", "firebase_app_check", "the project's number (digits, 1-20)", PROJECT_NUMBER
    ),
    "oidc_issuer": lambda a: required_by(
        a, "oidc_issuer", "oidc", "an https:// URL without query, e.g. https://accounts.google.com", ISSUER
    ),
    "oidc_audience": lambda a: required_by(
        a, "oidc_audience", "oidc", "1-200 letters, digits or . _ : / @ -, e.g. your OAuth client id", AUDIENCE
    ),
    "domain": domain,
    "acme_email": acme_email,
    "trusted_proxies": trusted_proxies,
}


def problem(answers: Answers) -> str | None:
    """The first refused answer as the one line to print, or None when every answer is fine."""
    for field, check in CHECKS.items():
        found = check(answers)
        if found:
            value = answers[field]
            shown = value if len(value) <= 80 else value[:77] + "..."
            return f"ERROR: {field}={shown!r} {found}."
    return None


def rerun_command(context: dict[str, object], field: str) -> str:
    """The command that generates the project again with every answer the user gave, `field` last to correct.

    Interactive answers are lost when a hook refuses one; this line keeps them. Only answers that differ from
    cookiecutter.json's defaults are listed, so the line stays short.
    """
    repo = TEMPLATE
    try:
        declared = json.loads((repo / "cookiecutter.json").read_text())
    except (OSError, ValueError):
        declared = {}
    defaults = {key: str(value[0] if isinstance(value, list) else value) for key, value in declared.items()}
    answers = {key: str(value) for key, value in context.items() if not key.startswith("_")}
    sys.path.insert(0, str(repo))
    try:
        from local_extensions import slug_of  # the one copy of the default slug's rule

        defaults["project_slug"] = slug_of(answers.get("project_name", ""))
    except ImportError:
        pass
    given = [
        f"{key}={shlex.quote(value)}" for key, value in answers.items() if key != field and value != defaults.get(key)
    ]
    command = ["cookiecutter", "--no-input"]
    output = str(context.get("_output_dir", ""))
    if output and output != os.environ.get("PWD"):
        command += ["-o", shlex.quote(output)]
    command += [shlex.quote(str(context.get("_template", "."))), *given, f"{field}={shlex.quote(answers[field])}"]
    return " ".join(command)


def main(rendered: str) -> int:
    global TEMPLATE
    context = json.loads(rendered)
    # cookiecutter gives the template folder as it was typed (maybe relative); the hook runs in the new
    # project's folder, and PWD is still where cookiecutter was started.
    TEMPLATE = Path(os.environ.get("PWD", ".")) / str(context.get("_repo_dir", "."))
    answers = {key: str(value) for key, value in context.items() if not key.startswith("_")}
    found = problem(answers)
    if found:
        field = found.removeprefix("ERROR: ").split("=", 1)[0]
        print(found, file=sys.stderr)
        print(f"To run it again with your other answers, correct {field} in:", file=sys.stderr)
        print(f"  {rerun_command(context, field)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # The one line cookiecutter renders: every answer as JSON. tojson writes ' as \u0027 and JSON has no
    # raw newline, so one raw single-quoted string holds any answer (not double quotes: JSON holds those).
    sys.exit(main(r'{{ cookiecutter | tojson }}'))  # fmt: skip
