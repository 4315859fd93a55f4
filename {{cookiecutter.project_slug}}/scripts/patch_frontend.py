"""Switch the AI Studio "AI Task Manager" app from calling Gemini in the browser to this backend.

    python scripts/patch_frontend.py ../my-app           # show what would change, write nothing
    python scripts/patch_frontend.py ../my-app --apply   # change it, keeping a backup of each file

It replaces services/geminiService.ts with ../frontend/services/geminiService.ts (same export, but it
posts to the backend) and adds services/stream.ts beside it (streamed answers), removes the
`window.process = { env: { API_KEY: ... } }` script from index.html, drops @google/genai from
package.json and the import map when nothing else imports it, and adds vite-env.d.ts and .env.example
when the app has none. Then it lists every remaining mention
of the old in-browser key (App.tsx, components/...) for you to remove by hand.

Standard library only: it runs with any Python 3.10+.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

FRONTEND = Path(__file__).resolve().parent.parent / "frontend"
SERVICE = Path("services") / "geminiService.ts"
STREAM = Path("services") / "stream.ts"  # the streamed-answer reader the service imports
REQUIRED = (Path("package.json"), Path("index.html"), SERVICE, Path("types.ts"))
BACKUPS = ".frontend-patch-backup"
SKIP_DIRS = {"node_modules", "dist", "build", ".git", BACKUPS}
SCANNED = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".html", ".json"}
GENAI = "@google/genai"

# What the old service and its callers used; after the patch every one of these is dead code.
OLD_KEY = re.compile(r"GEMINI_API_KEY|API_KEY|isApiKeyMissing|process\.env")
GENAI_IMPORT = re.compile(r"""['"]@google/genai['"/]""")
SCRIPT = re.compile(r"<script\b(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.S | re.I)
# The whole script is one assignment of a `process` object, e.g. window.process = { env: { API_KEY: '...' } };
KEY_SCRIPT_BODY = re.compile(r"\s*(?:(?:window|globalThis|self)\.)?process\s*=\s*\{.*\}\s*;?\s*", re.S)
GENAI_MEMBER = re.compile(r"""^\s*"@google/genai(?:/[^"]*)?"\s*:\s*"[^"]*"\s*,?\s*$""")


@dataclass
class Change:
    path: Path  # relative to the app
    old: str | None  # None for a new file
    new: str
    why: str


def read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:  # keep CRLF files CRLF
        return file.read()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(text)


def problems_with(app: Path) -> list[str]:
    """Why `app` is not the AI Task Manager app (empty when it looks right)."""
    if not app.is_dir():
        return [f"{app} is not a folder"]
    missing = [str(path) for path in REQUIRED if not (app / path).is_file()]
    if missing:
        return [f"it has no {', '.join(missing)}"]
    if "AISubTaskSuggestion" not in read(app / "types.ts"):
        return ["types.ts does not define AISubTaskSuggestion, which the new service imports"]
    return []


def source_files(app: Path) -> Iterator[Path]:
    """The app's own text files, without dependencies, build output or our backups."""
    for path in sorted(app.rglob("*")):
        relative = path.relative_to(app)
        if any(part in SKIP_DIRS for part in relative.parts[:-1]) or not path.is_file():
            continue
        if (path.suffix in SCANNED and not path.name.endswith("-lock.json")) or path.name.startswith(".env"):
            yield path


def without_lines(text: str, expected: Any) -> str | None:
    """`text` (JSON) without its @google/genai member lines, layout kept; None unless that gives `expected`."""
    kept: list[str] = []
    for line in text.splitlines(keepends=True):
        if not GENAI_MEMBER.match(line):
            kept.append(line)
            continue
        if not line.rstrip().endswith(","):  # it was the last member: the one before loses its comma
            for index in range(len(kept) - 1, -1, -1):
                if kept[index].strip():
                    body = kept[index].rstrip("\r\n")
                    if body.rstrip().endswith(","):
                        kept[index] = body.rstrip()[:-1] + kept[index][len(body) :]
                    break
    new = "".join(kept)
    try:
        return new if json.loads(new) == expected else None
    except ValueError:
        return None


def is_genai(name: str) -> bool:
    return name == GENAI or name.startswith(f"{GENAI}/")


def patched_index(html: str, drop_genai: bool) -> str:
    """index.html without the script that puts the key in the page, and without @google/genai in the import map."""
    out: list[str] = []
    position = 0
    for match in SCRIPT.finditer(html):
        attrs, body = match["attrs"], match["body"]
        start, end = match.start(), match.end()
        if "src=" not in attrs and "API_KEY" in body and KEY_SCRIPT_BODY.fullmatch(body):
            # Take the whole line when the script stands alone on it, so no blank line is left.
            line_start = html.rfind("\n", 0, start) + 1
            line_end = html.find("\n", end)
            line_end = len(html) if line_end == -1 else line_end + 1
            if not html[line_start:start].strip() and not html[end:line_end].strip():
                start, end = line_start, line_end
            out.append(html[position:start])
            position = end
        elif drop_genai and "importmap" in attrs:
            try:
                imports = json.loads(body)
                imports["imports"] = {name: url for name, url in imports["imports"].items() if not is_genai(name)}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            new_body = without_lines(body, imports)
            if new_body is not None:
                out.append(html[position : match.start("body")] + new_body)
                position = match.end("body")
    out.append(html[position:])
    return "".join(out)


def patched_package(text: str) -> str:
    try:
        package = json.loads(text)
        for section in ("dependencies", "devDependencies"):
            package.get(section, {}).pop(GENAI, None)
    except (ValueError, AttributeError):
        return text
    return without_lines(text, package) or text


def plan(app: Path) -> list[Change]:
    """Every change the patch makes, computed without writing anything."""
    changes: list[Change] = []
    service = read(FRONTEND / SERVICE)
    changes.append(Change(SERVICE, read(app / SERVICE), service, "calls the backend instead of Gemini"))
    old_stream = read(app / STREAM) if (app / STREAM).exists() else None
    changes.append(Change(STREAM, old_stream, read(FRONTEND / STREAM), "reads streamed answers"))

    # Drop the dependency only when no other file still imports it: else the app would stop building.
    others = [
        path
        for path in source_files(app)
        if path.suffix in {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"} and path != app / SERVICE
    ]
    drop_genai = not any(GENAI_IMPORT.search(read(path)) for path in others)

    index = read(app / "index.html")
    changes.append(Change(Path("index.html"), index, patched_index(index, drop_genai), "the key leaves the page"))
    if drop_genai:
        package = read(app / "package.json")
        changes.append(Change(Path("package.json"), package, patched_package(package), f"{GENAI} is unused"))

    # The new service reads import.meta.env; without these types tsc and editors flag it.
    typed = [read(path) for path in source_files(app) if path != app / SERVICE]
    declared = any("ImportMetaEnv" in text or "vite/client" in text for text in typed)
    if not declared and not (app / "vite-env.d.ts").exists():
        changes.append(Change(Path("vite-env.d.ts"), None, read(FRONTEND / "vite-env.d.ts"), "types import.meta.env"))
    if not (app / ".env.example").exists():
        changes.append(Change(Path(".env.example"), None, read(FRONTEND / ".env.example"), "names the backend URL"))
    return [change for change in changes if change.new != change.old]


def diff(change: Change) -> str:
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    before = "/dev/null" if change.old is None else f"a/{change.path.as_posix()}"
    lines = difflib.unified_diff(old, new, before, f"b/{change.path.as_posix()}")
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


def leftovers(app: Path, changes: list[Change]) -> list[str]:
    """file:line: text for each mention of the old key, as the app will be after `changes`."""
    planned = {app / change.path: change.new for change in changes}
    found: list[str] = []
    for path in source_files(app):
        text = planned.get(path, read(path))
        for number, line in enumerate(text.splitlines(), start=1):
            if OLD_KEY.search(line) or (path.suffix != ".json" and GENAI_IMPORT.search(line)):
                found.append(f"  {path.relative_to(app).as_posix()}:{number}: {line.strip()[:120]}")
    return found


def backup_folder(app: Path) -> Path:
    """A new folder for this run's backups; earlier runs' backups are never touched."""
    root = app / BACKUPS
    root.mkdir(exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        # The backup of index.html holds the old key: keep it out of git.
        ignore.write_text("# Backups made by patch_frontend.py. They may hold your old Gemini key.\n*\n")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1, 1000):
        folder = root / (stamp if attempt == 1 else f"{stamp}-{attempt}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise SystemExit(f"error: could not create a new backup folder in {root}")


def apply(app: Path, changes: list[Change]) -> Path:
    folder = backup_folder(app)
    for change in changes:  # back up everything first, so a failed write leaves every original saved
        if change.old is not None:
            (folder / change.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(app / change.path, folder / change.path)
    for change in changes:
        write(app / change.path, change.new)
    return folder


def report_leftovers(app: Path, changes: list[Change]) -> None:
    found = leftovers(app, changes)
    if not found:
        print("No mention of the old in-browser key is left.")
        return
    print("\nStill to clean up by hand: the old in-browser key, which nothing sets any more.")
    print("\n".join(found))
    print(
        "Remove isApiKeyMissing from every import and condition (the AI buttons can stay enabled: the\n"
        "backend answers with a readable error when it cannot reach Gemini); the app does not build until\n"
        "those imports are gone. Remove the process.env.API_KEY / GEMINI_API_KEY `define` from vite.config.ts\n"
        "and GEMINI_API_KEY from .env.local: the key now lives only in the backend's .env."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", type=Path, help="the frontend's folder (the one with index.html and package.json)")
    parser.add_argument("--apply", action="store_true", help="write the changes (default: only show them)")
    args = parser.parse_args(argv)
    app: Path = args.app.resolve()

    problems = problems_with(app)
    if problems:
        print(f"error: {args.app} does not look like the AI Task Manager app: {'; '.join(problems)}.", file=sys.stderr)
        print(f"Point it at the folder that holds {', '.join(map(str, REQUIRED))}.", file=sys.stderr)
        return 2

    changes = plan(app)
    if not changes:
        print(f"Nothing to do: {args.app} already uses the backend.")
        report_leftovers(app, changes)
        return 0

    for change in changes:
        print(diff(change), end="")
    summary = "\n".join(f"  {change.path.as_posix()}: {change.why}" for change in changes)
    if not args.apply:
        print(f"\nDry run, nothing written. With --apply this changes:\n{summary}")
    else:
        folder = apply(app, changes)
        print(f"\nChanged:\n{summary}\nOriginals saved in {folder}.")
        print("That backup holds your old key in index.html: delete it once the app works (git ignores it).")
    if any(change.path == Path("package.json") for change in changes):
        print(f"Run `npm install` afterwards so package-lock.json forgets {GENAI}.")
    report_leftovers(app, changes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
