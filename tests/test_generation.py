"""Bake the template with every supported option, one at a time, and check what comes out.

Modelled on cookiecutter-django's tests/test_cookiecutter_generation.py: a list of supported
answers, a scan for unrendered Jinja, linters over every bake, the bake's own test suite run inside
it, and unsupported answers asserted to fail without leaving anything behind.
"""

from __future__ import annotations

import ast
import os
import pty
import re
import select
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.helpers import ROOT, find_python, project_venv, unrendered_markers

APP_CHECK = {"caller_check": "firebase_app_check", "firebase_project_number": "123456789012"}
OIDC = {
    "caller_check": "oidc",
    "oidc_issuer": "https://securetoken.google.com/my-project",
    "oidc_audience": "my-project",
}
SUPPORTED: list[dict[str, str]] = [
    {},
    {"gemini_sdk": "google-generativeai"},
    {"python_version": "3.13"},
    {"python_version": "3.11"},
    {"backend_replicas": "1"},
    {"backend_replicas": "32"},
    {"port": "9090"},
    {"allowed_origins": "https://tasks.example.com,http://127.0.0.1:4173"},
    {"load_balancing": "round_robin"},
    {"load_balancing": "ip_hash"},
    {"gemini_model": "gemini-3.8-flash"},
    {"gemini_thinking_level": "minimal"},
    {"gemini_thinking_level": "medium"},
    {"gemini_thinking_level": "high"},
    {"gemini_thinking_level": ""},
    {"gemini_timeout_seconds": "90"},
    {"project_name": "Planner API", "description": "Plans things."},
    {"description": "A description long enough that main.py must wrap it over several lines. " * 3},
    APP_CHECK,
    OIDC,
    {"kubernetes": "yes"},
    {"https": "own_certificate", "domain": "localhost"},
    {"https": "letsencrypt", "domain": "api.example.com", "acme_email": "ops@example.com"},
    {"trusted_proxies": "10.0.0.0/8, 2001:db8::/32", "port": "8080"},
    {"kubernetes": "yes", "project_slug": "gemini_proxy", "backend_replicas": "32"} | OIDC,
    {"spend_guard": "no"},
    {"spend_guard": "no", "kubernetes": "yes"} | APP_CHECK,
]

# The bake's own suite runs for each SDK, Python version, caller check and spend guard answer, and each rendered
# difference that suite can see (CORS origins, a model's thinking levels) rides along with one of them: every
# axis is covered in four runs (the whole template suite must stay under about 20 minutes on 2 cores).
INNER_SUITES: list[dict[str, str]] = [
    {},  # spend_guard=yes (the default) in this and every other run but one: its tests need a real redis-server
    {"gemini_sdk": "google-generativeai", "spend_guard": "no"},
    # OIDC and a model that refuses one of the thinking levels tested ride on the 3.13 bake: four runs, not five
    # (each bake's suite takes 20-45 s on 2 cores, a caller check's about a minute and a half).
    {"python_version": "3.13", "allowed_origins": "https://tasks.example.com,http://127.0.0.1:4173"}
    | OIDC
    | {"gemini_model": "gemini-3.8-flash"},
    {"python_version": "3.11"} | APP_CHECK,
]

# What only a caller check brings: with caller_check=none none of it may be in the bake.
# (caller_check.py exists in every bake: with none it is the check that admits everyone.)
CALLER_FILES = ["jwks.py", "token_check.py", "tests/caller_keys.py", "tests/test_caller_check.py"]
# What only the spend guard brings: with spend_guard=no none of it may be in the bake.
# (spend_guard.py exists in every bake: with no it is the guard that admits everyone.)
SPEND_FILES = ["tests/test_spend_guard.py", "tests/redis_server.py", "k8s/redis.yaml"]
VERIFICATION_WORDS = re.compile(r"jwt|jwks|X-Firebase-AppCheck|Bearer|verify", re.IGNORECASE)


def answers_id(answers: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in answers.items()) or "defaults"


def rendered(answers: dict[str, str]) -> dict[str, str]:
    """The answers the bake should have used: cookiecutter.json's defaults overridden by `answers`."""
    values = {
        "project_slug": "ai-task-manager-backend",
        "gemini_sdk": "google-genai",
        "python_version": "3.12",
        "gemini_model": "gemini-3.5-flash-lite",
        "gemini_thinking_level": "low",
        "allowed_origins": "http://localhost:5173,http://localhost:3000",
        "gemini_timeout_seconds": "30",
        "project_name": "AI Task Manager Backend",
        "caller_check": "none",
    }
    values.update(answers)
    if values["gemini_sdk"] == "google-generativeai":
        values["gemini_thinking_level"] = ""  # it cannot send one: the bake defaults to the model's own
    if "project_name" in answers:
        values["project_slug"] = answers["project_name"].lower().replace(" ", "-")
    return values


@pytest.mark.parametrize("answers", SUPPORTED, ids=answers_id)
def test_bake_renders_the_answers(bake: Any, answers: dict[str, str]) -> None:
    project = bake(**answers)
    want = rendered(answers)
    assert project.name == want["project_slug"]
    assert unrendered_markers(project) == []
    assert not (project / "_sdk").exists()

    client = (project / "gemini_client.py").read_text()
    sdk_import = "from google import genai" if want["gemini_sdk"] == "google-genai" else "import google.generativeai"
    assert sdk_import in client
    requirements = (project / "requirements.txt").read_text()
    assert re.search(rf"^{re.escape(want['gemini_sdk'])}==[0-9.]+$", requirements, re.MULTILINE)
    other = "google-generativeai" if want["gemini_sdk"] == "google-genai" else "google-genai"
    assert other not in requirements
    pins = [line for line in requirements.splitlines() if line.strip() and not line.startswith("#")]  # comments say why
    assert all(line.count("==") == 1 for line in pins)

    settings = (project / "settings.py").read_text()
    origins = ", ".join(f'"{origin}"' for origin in want["allowed_origins"].split(","))
    assert f"allowed_origins: Annotated[list[str], NoDecode] = [{origins}]" in settings
    assert f'gemini_model: str = "{want["gemini_model"]}"' in settings
    thinking_default = rf'^    gemini_thinking_level: Literal\[.*\] = "{want["gemini_thinking_level"]}"$'
    assert re.search(thinking_default, settings, re.MULTILINE)
    assert f"default={want['gemini_timeout_seconds']}," in settings
    assert f'title="{want["project_name"]}"' in (project / "main.py").read_text()

    pyproject = tomllib.loads((project / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == "py" + want["python_version"].replace(".", "")
    workflow = (project / ".github" / "workflows" / "ci.yml").read_text()
    assert f'python-version: "{want["python_version"]}"' in workflow
    assert "${{ github.ref }}" in workflow  # GitHub's own syntax survives rendering
    assert ".env" in (project / ".gitignore").read_text().splitlines()
    env_example = (project / ".env.example").read_text()
    assert "GEMINI_API_KEY=\n" in env_example
    assert f"\nGEMINI_MODEL={want['gemini_model']}\n" in env_example
    assert f"\nGEMINI_THINKING_LEVEL={want['gemini_thinking_level']}\n" in env_example
    assert re.search(r"^prometheus-client==[0-9.]+$", requirements, re.MULTILINE)  # GET /metrics
    assert not (project / "conditional_files.json").exists() and not (project / "_caller").exists()
    assert_caller_check(project, want, settings, requirements, env_example)
    assert_https(project, answers)
    assert_spend_guard(project, answers, requirements, env_example)
    # k8s/ only with kubernetes=yes, and nothing else about Kubernetes otherwise (tests/test_k8s.py checks k8s/).
    kubernetes = answers.get("kubernetes") == "yes"
    assert (project / "k8s").is_dir() == kubernetes
    assert ("## Kubernetes" in (project / "README.md").read_text()) == kubernetes
    assert ("k8s/secret.env" in (project / ".gitignore").read_text()) == kubernetes


def assert_https(project: Path, answers: dict[str, str]) -> None:
    """Each HTTPS mode brings its own files, ports and README section, and nothing of the others."""
    mode = answers.get("https", "off")
    assert (project / "nginx" / "start.sh").exists() == (mode != "off")
    assert (project / "scripts" / "self_signed_cert.sh").exists() == (mode != "off")
    assert (project / "certbot").exists() == (mode == "letsencrypt")
    compose = (project / "compose.yaml").read_text()
    nginx = (project / "nginx" / "nginx.conf").read_text()
    readme = (project / "README.md").read_text()
    if mode == "off":
        assert f'"{answers.get("port", "8000")}:8080"' in compose and "443" not in compose
    else:
        assert '"80:8080"' in compose and '"443:8443"' in compose
        assert f"return 301 https://{answers['domain']}$request_uri;" in nginx
    assert ("certbot/certbot:v" in compose) == (mode == "letsencrypt")
    assert ("## HTTPS with Let's Encrypt" in readme) == (mode == "letsencrypt")
    assert ("## HTTPS with your own certificate" in readme) == (mode == "own_certificate")
    proxies = [cidr.strip() for cidr in answers.get("trusted_proxies", "").split(",") if cidr.strip()]
    assert re.findall(r"(?m)^    set_real_ip_from (\S+);$", nginx) == proxies
    assert ("## Behind a load balancer or CDN" in readme) == bool(proxies)


def assert_spend_guard(project: Path, answers: dict[str, str], requirements: str, env: str) -> None:
    """spend_guard=yes: the Redis guard, its dependency, settings and a hardened, unpublished, pinned Redis
    service; no: the guard that admits everyone, and no Redis anywhere."""
    guard = (project / "spend_guard.py").read_text()
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    if answers.get("spend_guard", "yes") == "no":
        assert [name for name in SPEND_FILES if (project / name).exists()] == []
        assert "async def record(tokens: TokenUsage) -> None:" in guard and "redis" not in guard.lower()
        mentions = [
            str(p) for p in project.rglob("*") if p.is_file() and "redis" in p.read_text(errors="replace").lower()
        ]
        assert mentions == [], "Redis in a bake without the spend guard"
        assert "redis" not in compose["services"] and "SPEND_" not in env
        return
    kubernetes = answers.get("kubernetes") == "yes"
    assert [name for name in SPEND_FILES if (project / name).exists() != (kubernetes or "k8s" not in name)] == []
    assert "register_script" in guard and re.search(r"^redis==[0-9.]+$", requirements, re.MULTILINE)
    for name in ("REDIS_URL", "SPEND_TOKENS_PER_DAY", "SPEND_TOKENS_PER_CALLER_PER_DAY",
                 "SPEND_REQUESTS_PER_CALLER_PER_MINUTE", "SPEND_GUARD_WHEN_STORE_DOWN",
                 "SPEND_GUARD_TIMEOUT_SECONDS"):  # fmt: skip
        assert f"\n{name}=" in env, name
    redis = compose["services"]["redis"]
    assert re.fullmatch(r"redis:\d+\.\d+\.\d+-alpine", redis["image"]), "the official image, pinned"
    assert "ports" not in redis and "expose" not in redis, "never published on the host"
    assert redis["read_only"] is True and redis["cap_drop"] == ["ALL"] and redis["mem_limit"]
    assert "no-new-privileges:true" in redis["security_opt"] and redis["healthcheck"]["test"]
    assert "--appendonly" in redis["command"] and redis["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]
    assert compose["services"]["backend"]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "## Spend guard" in (project / "README.md").read_text()


def assert_caller_check(project: Path, want: dict[str, str], settings: str, requirements: str, env: str) -> None:
    mode = want["caller_check"]
    assert "oidc_" not in settings and "app_check_" not in settings  # caller_check.py defines its own settings
    if mode == "none":
        assert [name for name in CALLER_FILES if (project / name).exists()] == []
        assert "headers: tuple[str, ...] = ()" in (project / "caller_check.py").read_text()
        code = [path for path in project.rglob("*.py") if VERIFICATION_WORDS.search(path.read_text())]
        assert code == [], "verification code in a bake that asks for none"
        assert not re.search(r"(?i)^(pyjwt|cryptography|joserfc|authlib)", requirements, re.MULTILINE)
        assert "APP_CHECK_" not in env and "OIDC_" not in env
        assert "setCallerTokenProvider" not in (project / "frontend" / "services" / "geminiService.ts").read_text()
        return
    assert [name for name in [*CALLER_FILES, "caller_check.py"] if not (project / name).is_file()] == []
    assert re.search(r"^PyJWT==[0-9.]+$", requirements, re.MULTILINE)
    assert re.search(r"^cryptography==[0-9.]+$", requirements, re.MULTILINE)
    caller = (project / "caller_check.py").read_text()
    service = (project / "frontend" / "services" / "geminiService.ts").read_text()
    assert "export const setCallerTokenProvider" in service
    assert not re.search(r"""(?im)^\s*import\b.*['"]firebase|import\(\s*['"]firebase""", service)  # the app wires it
    if mode == "firebase_app_check":
        assert 'HEADER = "X-Firebase-AppCheck"' in caller
        # Each check's settings are defined with it; settings.Settings inherits them.
        assert f'app_check_project_number: str = Field(default="{want["firebase_project_number"]}"' in caller
        for name in ("APP_CHECK_PROJECT_NUMBER", "APP_CHECK_JWKS_URL", "APP_CHECK_APP_IDS"):
            assert f"{name}=" in env, name
        assert "X-Firebase-AppCheck" in service
    else:
        assert 'HEADER = "Authorization"' in caller
        assert f'oidc_issuer: str = "{want["oidc_issuer"]}"' in caller
        assert f'oidc_audience: str = Field(default="{want["oidc_audience"]}"' in caller
        for name in ("OIDC_ISSUER", "OIDC_AUDIENCE", "OIDC_JWKS_URL"):
            assert f"{name}=" in env, name
        assert "Bearer" in service


@pytest.mark.parametrize("answers", SUPPORTED, ids=answers_id)
def test_bake_passes_linters_and_compiles(bake: Any, answers: dict[str, str]) -> None:
    project = bake(**answers)
    for path in project.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))  # a syntax error fails here with its location
    for command in (["check"], ["format", "--check"]):  # with the bake's own pyproject.toml
        lint = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--no-cache", "."],
            check=False,
            cwd=project,
            capture_output=True,
            text=True,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr
    scripts = sorted(str(path.relative_to(project)) for path in project.rglob("*.sh"))
    if scripts:  # the HTTPS modes' POSIX sh scripts (nginx and certbot images run them with sh)
        shell = subprocess.run(
            [SHELLCHECK, "--shell=sh", *scripts], check=False, cwd=project, capture_output=True, text=True
        )
        assert shell.returncode == 0, shell.stdout + shell.stderr


SHELLCHECK = str(Path(sys.executable).parent / "shellcheck")


def test_shellcheck_flags_what_the_scripts_avoid(tmp_path: Path) -> None:
    (tmp_path / "bad.sh").write_text("#!/bin/sh\nrm -rf $1/\n")  # an unquoted expansion: SC2086
    result = subprocess.run(
        [SHELLCHECK, "--shell=sh", "bad.sh"], check=False, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0 and "SC2086" in result.stdout


@pytest.mark.parametrize("answers", INNER_SUITES, ids=answers_id)
@pytest.mark.bake
def test_bake_passes_its_own_tests(bake: Any, answers: dict[str, str]) -> None:
    want = rendered(answers)
    if find_python(want["python_version"]) is None:
        pytest.skip(f"no Python {want['python_version']} on this machine to run the bake's tests with")
    project = bake(**answers)
    venv = project_venv(project, want["python_version"])
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        check=False,
        cwd=project,
        capture_output=True,
        text=True,
        timeout=600,
        env={key: value for key, value in os.environ.items() if not key.startswith(("GEMINI_", "PYTEST_"))},
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert re.search(r"\b([4-9][0-9]|[1-9][0-9]{2}) passed\b", result.stdout), result.stdout[-2000:]  # it really ran


# The wiring, end to end: cookiecutter runs the hook, prints its one line and leaves nothing behind.
# Every rule is tested in-process, without a bake, in tests/test_hooks.py.
UNSUPPORTED: list[tuple[str, str] | tuple[str, str, dict[str, str]]] = [
    ("project_slug", "1backend"),
    ("project_slug", "../escape"),  # refused by local_extensions.py, before cookiecutter makes a folder
    ("port", "65536"),
    ("description", "line one\nline two"),
    ("oidc_issuer", "http://accounts.google.com", {"caller_check": "oidc", "oidc_audience": "my-project"}),
    ("trusted_proxies", "0.0.0.0/0"),
]


@pytest.mark.parametrize("case", UNSUPPORTED, ids=[f"{c[0]}={c[1]!r}{'+' if c[2:] else ''}" for c in UNSUPPORTED])
def test_unsupported_answer_stops_generation(tmp_path: Path, case: tuple[Any, ...]) -> None:
    field, value, *others = case
    extra = [f"{name}={answer}" for name, answer in (others[0] if others else {}).items()]
    out = tmp_path / "out"
    out.mkdir()
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cookiecutter"),
            "--no-input",
            "-o",
            str(out),
            str(ROOT),
            *extra,
            f"{field}={value}",
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith(f"ERROR: {field}=")]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "must" in errors[0]  # it says what is allowed
    assert list(out.iterdir()) == []  # no half-made project
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_refused_thinking_level_names_the_model_from_the_bakes_table(tmp_path: Path) -> None:
    """The hook reads the bake's own model_capabilities.py (one table), even when cookiecutter is given the
    template folder as a relative path."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "cookiecutter"),
            "--no-input",
            "-o",
            str(tmp_path / "out"),
            os.path.relpath(ROOT, tmp_path),
            "gemini_model=gemini-3.8-flash",
            "gemini_thinking_level=minimal",
        ],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PWD": str(tmp_path)},
    )
    assert result.returncode != 0
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("ERROR: gemini_thinking_level=")]
    assert "gemini_model='gemini-3.8-flash'" in line and "low, medium, high" in line


def test_a_refusal_prints_a_command_that_keeps_the_other_answers(tmp_path: Path) -> None:
    """The printed command, with the refused value corrected, generates the project with every other answer."""
    cookiecutter = str(Path(sys.executable).parent / "cookiecutter")
    given = ["project_name=My Planner", "backend_replicas=5", "kubernetes=yes", "gemini_timeout_seconds=301"]
    out = tmp_path / "out"
    out.mkdir()
    refused = subprocess.run(
        [cookiecutter, "--no-input", "-o", str(out), str(ROOT), *given],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0
    lines = refused.stderr.splitlines()
    command = lines[lines.index("To run it again with your other answers, correct gemini_timeout_seconds in:") + 1]
    assert command.endswith(" gemini_timeout_seconds=301")
    corrected = command.removesuffix("301") + "45"
    rerun = subprocess.run(
        corrected.replace("cookiecutter", cookiecutter, 1),
        shell=True,  # the line is printed for a shell: run it as one
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    project = out / "my-planner"
    assert "replicas: 5" in (project / "compose.yaml").read_text()
    assert (project / "k8s").is_dir()
    assert "gemini_timeout_seconds: float = Field(default=45," in (project / "settings.py").read_text()


@pytest.mark.parametrize(
    "answers",
    [{"gemini_sdk": "openai"}, {"caller_check": "api_key"}, {"kubernetes": "helm"}, {"https": "on"}],
    ids=answers_id,
)
def test_invalid_choice_is_refused(cookies: Any, answers: dict[str, str]) -> None:
    result = cookies.bake(extra_context=answers, template=str(ROOT))
    assert result.exit_code != 0
    assert result.project_path is None or not Path(result.project_path).exists()


def test_interactive_prompts_through_a_terminal(tmp_path: Path) -> None:
    """Answer the real cookiecutter command's questions as a person would, in a pseudo-terminal."""
    answers = {
        "Host port": "8181",
        "How many backend replicas": "5",
    }
    pid, fd = pty.fork()
    if pid == 0:  # the child: cookiecutter, talking to the terminal
        os.chdir(tmp_path)
        os.execv(
            str(Path(sys.executable).parent / "cookiecutter"),
            ["cookiecutter", "-o", str(tmp_path), str(ROOT)],
        )
    seen = ""
    pending = ""
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096).decode(errors="replace")
            except OSError:
                break  # the child closed the terminal: it has finished
            seen += chunk
            pending += chunk
            # Each question ends with its default in parentheses, or the choices' "Choose from".
            if re.search(r"(\(.*\)|\[.*\]): ?$", pending.rstrip("\r\n ")) or pending.rstrip().endswith(":"):
                reply = next((value for prompt, value in answers.items() if prompt in pending), "")
                os.write(fd, (reply + "\r").encode())
                pending = ""
    finally:
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, seen[-3000:]
    for prompt in ("Project name", "Host port", "How many backend replicas", "Gemini SDK", "past end of life"):
        assert prompt in seen
    project = tmp_path / "ai-task-manager-backend"
    assert '"8181:8080"' in (project / "compose.yaml").read_text()
    assert "replicas: 5" in (project / "compose.yaml").read_text()
    assert "http://localhost:8181" in (project / "frontend" / "services" / "geminiService.ts").read_text()


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_template_tooling_is_lint_clean(command: list[str]) -> None:
    """The template's own Python (hooks, tests, benchmark, extension); the rendered files are linted per bake."""
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--no-cache", "hooks", "tests", "bench", "local_extensions.py"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
