"""Make every requirements.lock the template holds: {{cookiecutter.project_slug}}/_locks/<python>-<sdk>-<none|jwt>-<none|redis>.lock.

    .venv/bin/python tools/lock.py                              # after changing a pin in requirements.txt
    .venv/bin/python tools/lock.py --upgrade-package starlette  # also that indirect dependency, to its newest
    .venv/bin/python tools/lock.py --upgrade                    # every indirect dependency to its newest release

A bake's requirements.txt depends on three answers: python_version (the resolution), gemini_sdk and whether
caller_check is on (PyJWT, cryptography, httpx) and spend_guard (redis). For each combination this bakes the template into a temporary
folder, runs the bake's own `scripts/lock.py` there (what a generated project's owner runs: uv, hashes for
x86_64 Linux and that Python) and copies the bake's requirements.lock back into _locks/. Then it proves that
each lock installs in the image: pip downloads, hash-checked, a wheel of every package for that Python on
glibc 2.36 (Debian bookworm, the official slim images' base) and x86_64, no source builds. conditional_files.json
gives each bake its one lock as requirements.lock; tests/test_supply_chain.py checks every lock against its
requirements.txt, offline. Needs the package index (PyPI) and uv (tests/requirements.txt).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = ROOT / "{{cookiecutter.project_slug}}" / "_locks"
# The caller checks' dependencies are the same (PyJWT, cryptography, httpx): one lock serves both.
CALLER_DEPENDENCIES = {"none": "none", "firebase_app_check": "jwt", "oidc": "jwt"}
CALLER_ANSWERS = {
    "none": {},
    "jwt": {"caller_check": "firebase_app_check", "firebase_project_number": "123456789012"},
}
# The spend guard brings redis-py.
SPEND_DEPENDENCIES = {"yes": "redis", "no": "none"}


def lock_name(python_version: str, gemini_sdk: str, caller_check: str, spend_guard: str) -> str:
    """The lock a bake with these answers gets (conditional_files.json says the same in Jinja)."""
    return f"{python_version}-{gemini_sdk}-{CALLER_DEPENDENCIES[caller_check]}-{SPEND_DEPENDENCIES[spend_guard]}.lock"


def combinations() -> Iterator[tuple[str, str, str, str]]:
    """(python_version, gemini_sdk, caller_check, spend_guard) for every choice cookiecutter.json offers."""
    choices = json.loads((ROOT / "cookiecutter.json").read_text())
    for python_version in choices["python_version"]:
        for sdk in choices["gemini_sdk"]:
            for caller in choices["caller_check"]:
                for spend in choices["spend_guard"]:
                    yield python_version, sdk, caller, spend


def bake(python_version: str, sdk: str, callers: str, spend: str, out: Path) -> Path:
    """A bake with these answers, its requirements.lock the template's current one (empty when new)."""
    from cookiecutter.main import cookiecutter

    target = LOCKS / f"{python_version}-{sdk}-{callers}-{spend}.lock"
    target.touch()  # a new combination starts from an empty lock
    answers = {
        "python_version": python_version,
        "gemini_sdk": sdk,
        "spend_guard": "yes" if spend == "redis" else "no",
        **CALLER_ANSWERS[callers],
    }
    project = Path(cookiecutter(str(ROOT), no_input=True, extra_context=answers, output_dir=str(out / target.stem)))
    assert (project / "requirements.lock").read_bytes() == target.read_bytes(), f"the bake did not get {target.name}"
    return project


def relock(project: Path, target: Path, options: list[str]) -> str:
    """The bake's own scripts/lock.py, its lock copied back to the template."""
    result = subprocess.run(
        [sys.executable, "scripts/lock.py", *options], cwd=project, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"{target.name}: scripts/lock.py exited {result.returncode}:\n{result.stderr}")
    shutil.copyfile(project / "requirements.lock", target)
    return f"{target.name}: {result.stdout.strip()}"


def verify(target: Path) -> str:
    """pip finds, for the lock's Python on the image's platform, a wheel of every package whose hash is in the lock."""
    python_version = target.name.split("-", 1)[0]
    tags = [f"manylinux_2_{minor}_x86_64" for minor in range(17, 37)] + ["manylinux2014_x86_64"]
    platforms = [f"--platform={tag}" for tag in tags]
    with tempfile.TemporaryDirectory() as wheels:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--require-hashes", "--only-binary=:all:",
             "--implementation=cp", f"--python-version={python_version}", *platforms, "--dest", wheels,
             "--requirement", str(target)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{target.name} does not install on Python {python_version}:\n{result.stderr[-3000:]}")
        return f"{target.name}: {len(list(Path(wheels).iterdir()))} wheels for Python {python_version}, hashes checked"


def main(options: list[str]) -> int:
    LOCKS.mkdir(exist_ok=True)
    wanted = sorted(
        {(py, sdk, CALLER_DEPENDENCIES[caller], SPEND_DEPENDENCIES[spend]) for py, sdk, caller, spend in combinations()}
    )
    with tempfile.TemporaryDirectory() as out:
        bakes = {
            LOCKS / f"{py}-{sdk}-{callers}-{spend}.lock": bake(py, sdk, callers, spend, Path(out))
            for py, sdk, callers, spend in wanted
        }
        with ThreadPoolExecutor(3) as pool:  # uv mostly waits for the index; cookiecutter itself is not thread-safe
            for line in pool.map(lambda item: relock(item[1], item[0], options), bakes.items()):
                print(line)
            for line in pool.map(verify, bakes):
                print(line)
    stale = sorted({path.name for path in LOCKS.glob("*.lock")} - {lock_name(*combo) for combo in combinations()})
    for name in stale:
        print(f"removed {name}: no combination of answers uses it")
        (LOCKS / name).unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
