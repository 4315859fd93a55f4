"""The supply chain of every bake: the lock its image installs, its workflow's pins and permissions, the audit.

The template holds one requirements.lock per combination of the answers a bake's requirements.txt depends on
(`{{cookiecutter.project_slug}}/_locks/<python>-<sdk>-<none|jwt>.lock`, made by tools/lock.py); the manifest,
conditional_files.json, gives each bake its own as `requirements.lock`. All offline: the locks are checked
against requirements.txt here, never resolved again (tools/lock.py does that, with the index). zizmor runs
with --offline on every supported answer set's .github/.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.helpers import ROOT

TEMPLATE = ROOT / "{{cookiecutter.project_slug}}"
LOCKS = TEMPLATE / "_locks"
PLATFORM = "x86_64-manylinux_2_28"


def _lock_tool() -> Any:
    spec = importlib.util.spec_from_file_location("template_lock_tool", ROOT / "tools" / "lock.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


LOCK_TOOL = _lock_tool()
COMBINATIONS: list[tuple[str, str, str, str]] = list(LOCK_TOOL.combinations())  # python x sdk x caller x spend_guard
CALLER_ANSWERS = {
    "none": {},
    "firebase_app_check": {"caller_check": "firebase_app_check", "firebase_project_number": "123456789012"},
    "oidc": {"caller_check": "oidc", "oidc_issuer": "https://securetoken.google.com/p", "oidc_audience": "p"},
}
# The answer sets whose workflow differs (Python version) or whose project does (SDK, caller check, HTTPS, k8s).
WORKFLOW_ANSWERS: list[dict[str, str]] = [
    {},
    {"python_version": "3.11"},
    {"python_version": "3.13", "gemini_sdk": "google-generativeai"},
    CALLER_ANSWERS["oidc"] | {"kubernetes": "yes"},
    {"https": "letsencrypt", "domain": "api.example.com"},
]


def combination_id(combination: tuple[str, str, str, str]) -> str:
    return "-".join(combination)


def answers_id(answers: dict[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in answers.items()) or "defaults"


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins_of(requirements: str) -> dict[str, str]:
    """requirements.txt: {normalized name: version}; every line must be `name[extras]==version`."""
    pins = {}
    for line in requirements.splitlines():
        if line.strip():
            match = re.fullmatch(r"([A-Za-z0-9][\w.-]*)(?:\[[\w,-]+\])?==([\w.]+)", line.strip())
            assert match, f"not a pin: {line!r}"
            pins[normalized(match[1])] = match[2]
    return pins


def entries_of(lock: str) -> dict[str, dict[str, Any]]:
    """requirements.lock: {normalized name: {"version", "hashes", "via"}} from uv's format."""
    entries: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] | None = None
    in_via = False
    for line in lock.splitlines():
        if not line.strip() or (line.startswith("#") and current is None):
            continue
        if not line[0].isspace():
            match = re.fullmatch(r"([A-Za-z0-9][\w.-]*)==(\S+) \\", line)
            assert match, f"not a pinned entry with hashes: {line!r}"
            name = normalized(match[1])
            assert name not in entries, f"{name} twice"
            current = entries[name] = {"version": match[2], "hashes": [], "via": []}
            in_via = False
            continue
        assert current is not None
        text = line.strip()
        if text.startswith("--hash="):
            assert re.fullmatch(r"--hash=sha256:[0-9a-f]{64}( \\)?", text), text
            current["hashes"].append(text.split()[0])
        elif text.startswith("# via"):
            rest = text[len("# via") :].strip()
            in_via = not rest
            if rest:
                current["via"].append(rest)
        elif text.startswith("#") and in_via:
            current["via"].append(text.lstrip("# ").strip())
        else:
            raise AssertionError(f"unexpected line in the lock: {line!r}")
    return entries


def assert_lock_matches(lock: str, requirements: str) -> dict[str, dict[str, Any]]:
    pins = pins_of(requirements)
    entries = entries_of(lock)
    for name, version in pins.items():
        assert name in entries, f"{name}=={version} is not in the lock"
        assert entries[name]["version"] == version, (
            f"{name}: requirements.txt {version}, lock {entries[name]['version']}"
        )
    direct = {name for name, entry in entries.items() if "-r requirements.txt" in entry["via"]}
    assert direct == set(pins), "the lock's direct dependencies are requirements.txt's pins, no more"
    unhashed = [name for name, entry in entries.items() if not entry["hashes"]]
    assert unhashed == [], f"without hashes: {unhashed}"
    return entries


# ---------------------------------------------------------------- the template's locks


def test_requirements_depend_only_on_the_answers_that_key_the_locks() -> None:
    """A pin that depended on another answer (https, kubernetes, ...) would need locks keyed by it too."""
    used = set(re.findall(r"cookiecutter\.(\w+)", (TEMPLATE / "requirements.txt").read_text()))
    assert used <= {"python_version", "gemini_sdk", "caller_check", "spend_guard"}, used
    manifest = (TEMPLATE / "conditional_files.json").read_text()
    assert '"folder": "_locks", "file": "{{ lock }}", "as": "requirements.lock"' in manifest


def test_template_holds_exactly_one_lock_per_combination() -> None:
    wanted = {LOCK_TOOL.lock_name(*combination) for combination in COMBINATIONS}
    assert len(wanted) == 24  # 3 Pythons x 2 SDKs x (no caller check, a JWT one) x (no spend guard, Redis)
    assert {path.name for path in LOCKS.iterdir()} == wanted, "tools/lock.py makes the missing ones"


@pytest.mark.parametrize("combination", COMBINATIONS, ids=combination_id)
def test_bake_gets_the_lock_of_its_answers(bake: Any, combination: tuple[str, str, str, str]) -> None:
    python_version, sdk, caller, spend = combination
    project = bake(python_version=python_version, gemini_sdk=sdk, spend_guard=spend, **CALLER_ANSWERS[caller])
    assert not (project / "_locks").exists()
    lock = (project / "requirements.lock").read_text()
    assert lock == (LOCKS / LOCK_TOOL.lock_name(*combination)).read_text()
    entries = assert_lock_matches(lock, (project / "requirements.txt").read_text())
    # Resolved for the image's Python and platform, with the command that makes it again.
    header = lock.splitlines()[:2]
    assert header[0] == "# This file was autogenerated by uv via the following command:"
    assert header[1] == (
        f"#    uv pip compile requirements.txt --generate-hashes --python-version {python_version}"
        f" --python-platform {PLATFORM} --output-file requirements.lock"
    )
    assert f'PYTHON_VERSION = "{python_version}"' in (project / "scripts" / "lock.py").read_text()
    # The tree, not only the pins: what issue 21 saw drift between rebuilds is locked too.
    for indirect in ("starlette", "h11", "anyio", "pydantic-core", "typing-extensions"):
        assert indirect in entries, indirect
    assert ("pyjwt" in entries) == (caller != "none")
    assert ("google-genai" in entries) == (sdk == "google-genai")
    assert ("google-generativeai" in entries) == (sdk == "google-generativeai")
    check = subprocess.run(
        [sys.executable, "scripts/lock.py", "--check"], cwd=project, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"ok    requirements.lock matches requirements.txt: {len(entries)} packages")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("requirements.txt", "fastapi==0.165.0", "fastapi==0.166.0"), "fastapi==0.166.0 is in requirements.txt but"),
        (("requirements.txt", "prometheus-client==0.26.0\n", "prometheus-client==0.26.0\nrich==14.0.0\n"), "rich"),
        (("requirements.txt", "prometheus-client==0.26.0\n", ""), "the lock still has prometheus-client"),
        (("requirements.lock", "--hash=sha256:", "--hush=sha256:"), "has no --hash"),
    ],
    ids=["pin-raised", "pin-added", "pin-removed", "hashes-gone"],
)
def test_lock_check_fails_when_the_lock_is_stale(
    bake: Any, tmp_path: Path, change: tuple[str, str, str], message: str
) -> None:
    """What the bake's CI `lock` job catches, e.g. a Dependabot pull request that bumped requirements.txt only."""
    project = tmp_path / "project"
    shutil.copytree(bake(), project)
    name, old, new = change
    text = (project / name).read_text()
    assert old in text
    (project / name).write_text(text.replace(old, new))
    check = subprocess.run(
        [sys.executable, "scripts/lock.py", "--check"], cwd=project, capture_output=True, text=True, check=False
    )
    assert check.returncode == 1, check.stdout + check.stderr
    assert message in check.stderr and "python scripts/lock.py" in check.stderr


def test_dockerfile_installs_only_the_lock_with_hashes(bake: Any) -> None:
    project = bake()
    lines = [line for line in (project / "Dockerfile").read_text().splitlines() if not line.startswith("#")]
    assert "COPY requirements.lock ." in lines
    assert "RUN pip install --no-cache-dir --require-hashes -r requirements.lock" in lines
    assert not any("requirements.txt" in line for line in lines)
    assert not any("--no-deps" in line for line in lines)  # pip then also refuses a dependency the lock lacks
    ignored = [line for line in (project / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert not [pattern for pattern in ignored if Path("requirements.lock").match(pattern)]


# ---------------------------------------------------------------- the generated workflow


def zizmor(folder: Path) -> subprocess.CompletedProcess[str]:
    """zizmor's offline audits, default persona, on the folder's .github/."""
    return subprocess.run(
        [
            str(Path(sys.executable).parent / "zizmor"),
            "--offline",
            "--no-progress",
            "--color",
            "never",
            "--no-config",
            ".github",
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def workflow_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())


@pytest.mark.parametrize("answers", WORKFLOW_ANSWERS, ids=answers_id)
def test_workflow_passes_zizmor(bake: Any, answers: dict[str, str]) -> None:
    """zizmor (offline audits, default persona) finds nothing in the workflow or in dependabot.yml."""
    result = zizmor(bake(**answers))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout, result.stdout


def test_the_templates_own_workflow_passes_zizmor() -> None:
    result = zizmor(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout, result.stdout


def test_zizmor_flags_what_the_workflow_avoids(tmp_path: Path) -> None:
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n")
    result = zizmor(tmp_path)
    assert result.returncode != 0
    for audit in ("unpinned-uses", "artipacked", "excessive-permissions"):
        assert audit in result.stdout, audit


@pytest.mark.parametrize("answers", WORKFLOW_ANSWERS, ids=answers_id)
def test_workflow_is_pinned_and_least_privileged(bake: Any, answers: dict[str, str]) -> None:
    project = bake(**answers)
    text = (project / ".github" / "workflows" / "ci.yml").read_text()
    workflow = workflow_of(project)
    assert workflow["permissions"] == {"contents": "read"}
    uses = re.findall(r"(?m)^\s+- uses: (\S+)(.*)$", text)
    assert uses, "the workflow uses actions"
    for action, comment in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), f"{action}: not pinned to a commit SHA"
        assert re.fullmatch(r" # v\d+\.\d+\.\d+", comment), f"{action}: no `# vX.Y.Z` comment"
    pins = {action.split("@")[0]: (action.split("@")[1], comment) for action, comment in uses}
    assert len({sha for sha, _ in pins.values()}) == len(pins), "one version of each action"
    python = answers.get("python_version", "3.12")
    for name, job in workflow["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int) and 0 < job["timeout-minutes"] <= 30, name
        assert "permissions" not in job, f"{name}: the top-level read-only token is enough"
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, name
            if step.get("uses", "").startswith("actions/setup-python@"):
                assert step["with"]["python-version"] == python, name


@pytest.mark.parametrize("answers", WORKFLOW_ANSWERS[:3], ids=answers_id)
def test_workflow_checks_audits_and_installs_the_lock(bake: Any, answers: dict[str, str]) -> None:
    project = bake(**answers)
    jobs = workflow_of(project)["jobs"]
    runs = {name: "\n".join(step.get("run", "") for step in job["steps"]) for name, job in jobs.items()}
    assert "python -m pip install --require-hashes -r requirements.lock" in runs["test"]
    assert runs["test"].index("requirements.lock") < runs["test"].index("requirements-dev.txt")
    assert "python scripts/lock.py --check" in runs["lock"]
    audit = runs["audit"]
    assert re.search(r"pip install pip-audit==\d+\.\d+\.\d+", audit)
    assert "pip-audit --disable-pip --requirement requirements.lock" in audit
    # Reports on pushes and pull requests; the weekly run fails, so someone hears of it.
    assert jobs["audit"]["continue-on-error"] == "${{ github.event_name != 'schedule' }}"
    assert "continue-on-error" not in jobs["test"] and "continue-on-error" not in jobs["lock"]
    assert workflow_of(project)[True]["schedule"], "a weekly run"  # YAML 1.1 reads the key `on` as True
    dependabot = yaml.safe_load((project / ".github" / "dependabot.yml").read_text())
    ecosystems = {update["package-ecosystem"]: update for update in dependabot["updates"]}
    assert {"pip", "docker", "docker-compose", "github-actions"} <= set(ecosystems)
    assert all(update["cooldown"]["default-days"] >= 7 for update in ecosystems.values())
    readme = (project / "README.md").read_text()
    assert "## Dependencies" in readme and "python scripts/lock.py" in readme and "--ignore-vuln" in readme


def test_lock_tool_is_lint_clean() -> None:
    """tools/lock.py (the template's linted files in tests/test_generation.py leave tools/ out)."""
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "tools/lock.py"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
