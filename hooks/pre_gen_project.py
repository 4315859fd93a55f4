"""Check every answer before cookiecutter writes anything. Standard library only.

A bad answer stops generation with one line naming the field, the value and what is allowed.
"""

import importlib.util
import ipaddress
import os
import re
import sys
from pathlib import Path

ANSWERS = {
    "project_name": {{ cookiecutter.project_name | string | tojson }},
    "project_slug": {{ cookiecutter.project_slug | string | tojson }},
    "description": {{ cookiecutter.description | string | tojson }},
    "port": {{ cookiecutter.port | string | tojson }},
    "backend_replicas": {{ cookiecutter.backend_replicas | string | tojson }},
    "rate_limit_per_minute": {{ cookiecutter.rate_limit_per_minute | string | tojson }},
    "global_rate_limit_per_minute": {{ cookiecutter.global_rate_limit_per_minute | string | tojson }},
    "gemini_model": {{ cookiecutter.gemini_model | string | tojson }},
    "gemini_thinking_level": {{ cookiecutter.gemini_thinking_level | string | tojson }},
    "gemini_timeout_seconds": {{ cookiecutter.gemini_timeout_seconds | string | tojson }},
    "allowed_origins": {{ cookiecutter.allowed_origins | string | tojson }},
    "caller_check": {{ cookiecutter.caller_check | string | tojson }},
    "firebase_project_number": {{ cookiecutter.firebase_project_number | string | tojson }},
    "oidc_issuer": {{ cookiecutter.oidc_issuer | string | tojson }},
    "oidc_audience": {{ cookiecutter.oidc_audience | string | tojson }},
    "https": {{ cookiecutter.https | string | tojson }},
    "domain": {{ cookiecutter.domain | string | tojson }},
    "acme_email": {{ cookiecutter.acme_email | string | tojson }},
    "trusted_proxies": {{ cookiecutter.trusted_proxies | string | tojson }},
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


def required_by(field: str, mode: str, rule: str, check: "re.Pattern[str]") -> str | None:
    """A caller_check answer: required (and checked) in its own mode, left empty in the others."""
    value = ANSWERS[field]
    if ANSWERS["caller_check"] == mode:
        return None if check.fullmatch(value) else f"is required with caller_check={mode} and must be {rule}"
    return None if value == "" else f"must be empty unless caller_check={mode}"


# An issuer is compared with the token's `iss` character for character, and its discovery document is
# found at <issuer>/.well-known/openid-configuration: a plain https URL, no query, no trailing slash.
ISSUER = re.compile(r"https://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?(/[A-Za-z0-9._~%!$&*+,;=:@-]+)*")
AUDIENCE = re.compile(r"[A-Za-z0-9._:/@-]{1,200}")


# A host name: labels of letters, digits and inner hyphens, 253 characters at most; the last label is
# not all digits, so an IP address is refused (a certificate names a host).
HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
DOMAIN = re.compile(rf"({HOST_LABEL}\.)*(?![0-9]+$){HOST_LABEL}")
# Names no public CA can issue for (RFC 6761 and RFC 6762 special-use names, and dot-less names).
NOT_PUBLIC = re.compile(r"([^.]+|.*\.(localhost|local|internal|test|example|invalid|home\.arpa))", re.IGNORECASE)


def domain() -> str | None:
    value, mode = ANSWERS["domain"], ANSWERS["https"]
    if mode == "off":
        return None if value == "" else "must be empty unless https is letsencrypt or own_certificate"
    if not DOMAIN.fullmatch(value) or len(value) > 253:
        return f"is required with https={mode} and must be a DNS name such as api.example.com"
    if mode == "letsencrypt" and NOT_PUBLIC.fullmatch(value):
        return "must be a public DNS name for Let's Encrypt to issue for it (use own_certificate for local names)"
    return None


def acme_email() -> str | None:
    value = ANSWERS["acme_email"]
    if value and ANSWERS["https"] != "letsencrypt":
        return "must be empty unless https=letsencrypt"
    # A local part without spaces, quotes or brackets, one @, a domain with at least one dot.
    if value and not re.fullmatch(r"[A-Za-z0-9.!#$%&*+/=?^_|~-]{1,64}@(" + HOST_LABEL + r"\.)+" + HOST_LABEL, value):
        return "must be an e-mail address such as ops@example.com (or empty)"
    return None


# The bake's own table of model capabilities, read from the template folder: one table for the hook and the
# generated project (settings, doctor, the fake Gemini).
# cookiecutter gives the folder as it was typed; the hook runs in the new project's folder, and PWD is still
# where cookiecutter was started.
TEMPLATE = Path(os.environ.get("PWD", ".")) / {{ cookiecutter._repo_dir | string | tojson }}
CAPABILITIES = TEMPLATE / "{% raw %}{{cookiecutter.project_slug}}{% endraw %}" / "model_capabilities.py"


def thinking_level() -> str | None:
    spec = importlib.util.spec_from_file_location("model_capabilities", CAPABILITIES)
    assert spec and spec.loader, CAPABILITIES
    capabilities = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(capabilities)
    model, level = ANSWERS["gemini_model"], ANSWERS["gemini_thinking_level"]
    row = capabilities.row_for(model)
    if capabilities.thinking_problem(model, level) is None:
        return None
    if not row.levels:
        return f"must be empty with gemini_model={model!r}: that model takes no thinking level"
    return f"must be one that gemini_model={model!r} accepts: {', '.join(row.levels)} (or empty)"


def trusted_proxies() -> str | None:
    value = ANSWERS["trusted_proxies"]
    if value == "":
        return None
    for item in value.split(","):
        try:
            ipaddress.ip_network(item.strip(), strict=True)
        except ValueError:
            return "must be comma-separated CIDRs such as 10.0.0.0/8,2001:db8::/32 (no host bits set), or empty"
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
    # gemini_thinking_level itself is a choice; this checks it against the model (model_capabilities.py).
    "gemini_thinking_level": thinking_level,
    "gemini_timeout_seconds": lambda: integer("gemini_timeout_seconds", 1, 300),
    "allowed_origins": origins,
    # caller_check itself is a choice: cookiecutter refuses other values before this hook runs.
    "firebase_project_number": lambda: required_by(
        "firebase_project_number", "firebase_app_check", "the project's number (digits, 1-20)", re.compile(r"[0-9]{1,20}")
    ),
    "oidc_issuer": lambda: required_by(
        "oidc_issuer", "oidc", "an https:// URL without query or trailing slash, e.g. https://accounts.google.com", ISSUER
    ),
    "oidc_audience": lambda: required_by(
        "oidc_audience", "oidc", "1-200 letters, digits or . _ : / @ -, e.g. your OAuth client id", AUDIENCE
    ),
    # https itself is a choice, like caller_check.
    "domain": domain,
    "acme_email": acme_email,
    "trusted_proxies": trusted_proxies,
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
