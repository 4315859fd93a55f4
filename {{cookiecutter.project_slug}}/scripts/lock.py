"""requirements.lock: every package the image installs, at one version, with the sha256 of its files.

    python scripts/lock.py                               # after editing requirements.txt: lock again
    python scripts/lock.py --upgrade-package starlette   # also move one indirect dependency to its newest release
    python scripts/lock.py --upgrade                     # move every indirect dependency to its newest release
    python scripts/lock.py --check                       # does the lock still match requirements.txt? (offline)

requirements.txt holds the direct pins: it is the file you (and Dependabot) edit. requirements.lock is made
from it by uv (`pip install uv`): the whole dependency tree resolved for Python {{ cookiecutter.python_version }} on x86_64 Linux, the
image's platform, each package with the hashes of all its release files. The Dockerfile installs it with
`pip install --require-hashes`, so a rebuild next month installs exactly the same files, and a package
that is missing from the lock or whose file changed on the index stops the build.

Locking again keeps every version already in requirements.lock that still fits requirements.txt (uv prefers
the output file's pins), so the only changes are the ones requirements.txt asks for; other options are
passed on to `uv pip compile`. It needs the package index; --check does not, and CI runs it on every push.
Standard library only (uv aside). Exit status: 0 good, 1 the lock does not match, 2 uv failed or is missing.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYTHON_VERSION = "{{ cookiecutter.python_version }}"  # the image's Python (Dockerfile)
PLATFORM = "x86_64-manylinux_2_28"  # the image's: Debian's glibc is newer than 2.28
COMPILE = [
    "pip", "compile", "requirements.txt", "--generate-hashes", "--python-version", PYTHON_VERSION,
    "--python-platform", PLATFORM, "--output-file", "requirements.lock", "--quiet",
]  # fmt: skip
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:[0-9a-f]{64}\b")


def name_of(project: str) -> str:
    """The normalized name (PEP 503): `Typing_Extensions` and `typing-extensions` are one package."""
    return re.sub(r"[-_.]+", "-", project).lower()


def direct_pins(text: str) -> dict[str, str]:
    """requirements.txt's pins: {name: version}. Anything but `name[extras]==version` is an error."""
    pins = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = PIN.match(line)
        if not match or match.end() != len(line):
            raise ValueError(f"requirements.txt line {number}: {line!r} is not `name==version`")
        pins[name_of(match[1])] = match[3]
    return pins


def locked(text: str) -> tuple[dict[str, tuple[str, int]], set[str], list[str]]:
    """requirements.lock's entries: ({name: (version, number of hashes)}, names it has `via -r requirements.txt`,
    problems such as an entry without a version)."""
    entries: dict[str, tuple[str, int]] = {}
    direct: set[str] = set()
    problems = []
    for entry in re.split(r"(?m)^(?=\S)", text):  # an entry and its indented lines (hashes, `# via`)
        head = entry.split("\n", 1)[0].strip()
        if not head or head.startswith("#"):
            continue
        match = PIN.match(head)
        if not match:
            problems.append(f"{head!r} is not pinned with ==")
            continue
        name = name_of(match[1])
        if name in entries:
            problems.append(f"{name} is listed twice")
        entries[name] = (match[3], len(HASH.findall(entry)))
        if re.search(r"(?m)^\s+#\s+(?:via\s+)?-r requirements\.txt\s*$", entry):
            direct.add(name)
    return entries, direct, problems


def check() -> list[str]:
    """What is wrong with requirements.lock against requirements.txt: [] when nothing is."""
    pins = direct_pins((PROJECT_DIR / "requirements.txt").read_text())
    lock = PROJECT_DIR / "requirements.lock"
    if not lock.exists():
        return ["there is no requirements.lock"]
    entries, direct, problems = locked(lock.read_text())
    for name, version in sorted(pins.items()):
        if name not in entries:
            problems.append(f"{name}=={version} is in requirements.txt but not in the lock")
        elif entries[name][0] != version:
            problems.append(f"{name}=={version} is in requirements.txt but the lock has {name}=={entries[name][0]}")
    for name in sorted(direct - set(pins)):
        problems.append(f"the lock still has {name} from requirements.txt, which no longer asks for it")
    for name, (version, hashes) in sorted(entries.items()):
        if hashes == 0:
            problems.append(f"{name}=={version} has no --hash")
    return problems


def report(problems: list[str]) -> int:
    if problems:
        for problem in problems:
            print(f"FAIL  {problem}", file=sys.stderr)  # noqa: T201 - a command-line tool
        print("Lock again: python scripts/lock.py (see README.md, Dependencies)", file=sys.stderr)  # noqa: T201
        return 1
    count = len(locked((PROJECT_DIR / "requirements.lock").read_text())[0])
    print(f"ok    requirements.lock matches requirements.txt: {count} packages, each with its hashes")  # noqa: T201
    return 0


def uv() -> list[str] | None:
    if shutil.which("uv"):
        return ["uv"]
    found = subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, check=False)
    return [sys.executable, "-m", "uv"] if found.returncode == 0 else None


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        return report(check())
    command = uv()
    if command is None:
        print("FAIL  uv is not installed: pip install uv", file=sys.stderr)  # noqa: T201
        return 2
    if subprocess.run([*command, *COMPILE, *argv], cwd=PROJECT_DIR, check=False).returncode != 0:
        return 2
    return report(check())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
