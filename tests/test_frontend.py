"""The frontend patch on the seed app: the replacement geminiService.ts, scripts/patch_frontend.py, and both in
Chromium. Other app shapes: tests/test_patch_apps.py.

tests/fixtures/frontend_app is a trimmed copy of the guide's AI Studio app (key in index.html,
@google/genai in the browser). The tools come from tests/node (pinned; tools/setup.d/30-frontend.sh).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from support.helpers import ROOT, SPEND_GUARD_OFF, free_port, project_venv, stop_process, wait_for_http

FIXTURE = ROOT / "tests" / "fixtures" / "frontend_app"
NODE = ROOT / "tests" / "node"
BIN = NODE / "node_modules" / ".bin"
CHROMIUM = Path("/usr/bin/chromium")
FIXTURE_KEY = "AIzaSyFixtureKey-DoNotShip-0123456789abc"  # the fake key in the fixture's index.html
TYPESCRIPT_API = NODE / "node_modules" / "typescript-api"  # typescript 6.x: TypeScript 7 has no JS API to read apps
SEED_API = "/api/break-down-task-with-ai"  # the seed app's own call, drafted by the patch into a prompt file
BACKUPS = ".frontend-patch-backup"
# How a browser app sends or loads Gemini itself: none of it may survive the patch.
GEMINI_IN_BROWSER = re.compile(
    r"""x-goog-api-key|generativelanguage|from\s+['"]@google/genai['"]|import\(\s*['"]@google/genai['"]"""
    r"""|['"]@google/genai['"]\s*:\s*['"]https?:"""
)


@pytest.fixture(scope="module")
def node_tools() -> Path:
    missing = [str(path) for path in (BIN / "tsc", BIN / "esbuild", CHROMIUM) if not path.exists()]
    if missing or shutil.which("node") is None:
        pytest.fail(f"frontend test tools missing ({', '.join(missing) or 'node'}): run bash tools/setup.sh")
    return BIN


@pytest.fixture(scope="module")
def project(bake: Callable[..., Path]) -> Path:
    return bake()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def own_project(project: Path, folder: Path) -> Path:
    """A copy of a (session-shared) bake: the patch writes drafted prompt files into the project it belongs to."""
    copy = folder / f"{project.name}-own"
    if not copy.exists():
        shutil.copytree(project, copy)
    return copy


def patch(project: Path, app: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The bake's patch, run with the bake's Python (it loads prompt files as the server does)."""
    script = project / "scripts" / "patch_frontend.py"
    python = project_venv(project, "3.12") / "bin" / "python"
    return subprocess.run(
        [str(python), str(script), str(app), "--typescript", str(TYPESCRIPT_API), *args],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def fresh_app(tmp_path: Path, name: str = "my-app") -> Path:
    app = tmp_path / name
    shutil.copytree(FIXTURE, app)
    return app


def lines_with(path: Path, word: str) -> list[int]:
    return [number for number, line in enumerate(path.read_text().splitlines(), start=1) if word in line]


def tsc(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    options = ["--strict", "--noEmit", "--target", "es2022", "--lib", "es2022,dom", "--module", "esnext"]
    options += ["--moduleResolution", "bundler", "--types", ""]  # no @types packages to pick up
    return subprocess.run(
        [str(BIN / "tsc"), *options, *files], check=False, cwd=folder, capture_output=True, text=True, timeout=120
    )


# --- The rendered files ------------------------------------------------------------------------


def test_rendered_frontend_follows_the_answers(bake: Callable[..., Path]) -> None:
    project = bake(port="8123", gemini_timeout_seconds="45")
    service = (project / "frontend" / "services" / "geminiService.ts").read_text()
    assert "'http://localhost:8123'" in service
    # the backend's deadline plus a margin (__client_timeout_seconds)
    assert "REQUEST_TIMEOUT_MS = 75 * 1000;" in service
    assert "VITE_BACKEND_URL=http://localhost:8123\n" in (project / "frontend" / ".env.example").read_text()
    for path in (project / "frontend").rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert not re.search(r"API_KEY|process\.env|@google/genai|x-goog-api-key|generativelanguage", text), path
            assert "{{" not in text and "{%" not in text, path


# (scripts/patch_frontend.py is linted with the rest of every bake in tests/test_generation.py.)


# --- TypeScript --------------------------------------------------------------------------------


def service_against(tmp_path: Path, project: Path, types_ts: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "services").mkdir()
    (tmp_path / "types.ts").write_text(types_ts)
    shutil.copy(project / "frontend" / "services" / "geminiService.ts", tmp_path / "services")
    shutil.copy(project / "frontend" / "services" / "stream.ts", tmp_path / "services")  # the service imports it
    shutil.copy(project / "frontend" / "vite-env.d.ts", tmp_path)
    return tsc(tmp_path, "types.ts", "services/geminiService.ts", "services/stream.ts", "vite-env.d.ts")


def test_service_compiles_strict_against_the_apps_types(node_tools: Path, project: Path, tmp_path: Path) -> None:
    result = service_against(tmp_path, project, (FIXTURE / "types.ts").read_text())
    assert result.returncode == 0, result.stdout + result.stderr


def test_tsc_check_catches_a_type_mismatch(node_tools: Path, project: Path, tmp_path: Path) -> None:
    # The same check with an app whose suggestion titles are numbers must fail: the check is real.
    types_ts = (FIXTURE / "types.ts").read_text()
    wrong = types_ts.replace(
        "export interface AISubTaskSuggestion {\n  title: string;",
        "export interface AISubTaskSuggestion {\n  title: number;",
    )
    assert wrong != types_ts
    result = service_against(tmp_path, project, wrong)
    assert result.returncode != 0
    assert "services/geminiService.ts" in result.stdout and "TS2322" in result.stdout, result.stdout


# --- The patch script --------------------------------------------------------------------------


@pytest.fixture
def seed_project(node_tools: Path, project: Path, tmp_path: Path) -> Path:
    """A private copy of the bake for one patch test (the patch drafts prompt files into it)."""
    return own_project(project, tmp_path)


def test_dry_run_shows_the_diff_and_writes_nothing(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    before, project_before = snapshot(app), snapshot(seed_project)
    result = patch(seed_project, app)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for header in ("--- a/services/geminiService.ts", "+++ b/index.html", "+++ b/package.json", "--- /dev/null"):
        assert header in out
    assert "+++ b/backend:prompts/break-down-task-with-ai.prompt" in out
    assert f"-          API_KEY: 'AIza…[masked, {len(FIXTURE_KEY)} chars]'" in out  # the removed key, masked
    assert FIXTURE_KEY not in out + result.stderr
    assert '-    "@google/genai": "^1.10.0"' in out
    assert "-        'process.env.API_KEY': JSON.stringify(env.GEMINI_API_KEY)," in out  # vite.config.ts's define
    assert "+import * as backend from './geminiBackend';" in out
    assert "prompts/break-down-task-with-ai.prompt: breakDownTaskWithAI (served as POST " in out
    assert "Dry run, nothing written" in out
    assert snapshot(app) == before
    assert snapshot(seed_project) == project_before


def test_apply_patches_backs_up_and_lists_what_is_left(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    original = snapshot(app)
    result = patch(seed_project, app, "--apply")
    assert result.returncode == 0, result.stderr

    service = (app / "services" / "geminiService.ts").read_text()
    # The app's own exports, with the same signatures, now calling the backend; the key is never missing.
    assert "export const isApiKeyMissing = (): boolean => {\n  // The key lives in the backend now" in service
    assert "return false;" in service
    assert (
        "export const breakDownTaskWithAI = async (taskTitle: string, taskDescription?: string): "
        "Promise<AISubTaskSuggestion[]> => {" in service
    )
    assert "backend.breakDownTaskWithAi({ taskTitle, taskDescription })" in service
    client = (app / "services" / "geminiBackend.ts").read_text()
    assert "export const breakDownTaskWithAi = async (input: BreakDownTaskWithAiInput)" in client
    assert "AISubTaskSuggestion" not in client  # the template's own seed functions are left out
    # The app's prompt is kept, now on the server: its text, with the parameters as variables.
    prompt = (seed_project / "prompts" / "break-down-task-with-ai.prompt").read_text()
    assert 'Given the main task title "{{taskTitle}}" {{#if taskDescription}}and description' in prompt
    assert "the output schema is the function's return type AISubTaskSuggestion[]" in result.stdout
    assert "gemini-2.5-flash is shut down" in result.stdout and "model:" not in prompt
    html = (app / "index.html").read_text()
    assert FIXTURE_KEY not in html and "window.process" not in html
    assert 'src="https://cdn.tailwindcss.com"' in html and '<script type="module" src="/index.tsx">' in html
    import_map = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.DOTALL)[1])
    assert set(import_map["imports"]) == {"react", "react-dom/", "react/"}
    package = json.loads((app / "package.json").read_text())
    assert package["dependencies"] == {"react": "^19.1.0", "react-dom": "^19.1.0"}
    assert package["devDependencies"] == json.loads((FIXTURE / "package.json").read_text())["devDependencies"]
    assert "GEMINI_API_KEY" not in (app / "vite.config.ts").read_text()
    assert (app / ".env.example").read_text() == (seed_project / "frontend" / ".env.example").read_text()
    assert (app / "vite-env.d.ts").is_file()

    # One backup folder with every changed file as it was; git ignores it (it holds the old key).
    folders = [path for path in (app / BACKUPS).iterdir() if path.is_dir()]
    assert len(folders) == 1
    backed_up = snapshot(folders[0])
    assert set(backed_up) == {"services/geminiService.ts", "index.html", "package.json", "vite.config.ts"}
    assert all(backed_up[name] == original[name] for name in backed_up)
    assert (app / BACKUPS / ".gitignore").read_text().splitlines()[-1] == "*"

    # What still mentions the old key is listed by file and line; isApiKeyMissing keeps working, so not it.
    for number in lines_with(app / "App.tsx", "process.env.API_KEY"):
        assert f"  App.tsx:{number}: " in result.stdout
    assert not re.search(
        r"(services/geminiService\.ts|index\.html|vite\.config\.ts):\d+:|TaskItem\.tsx:14:", result.stdout
    )


def gemini_in_browser(app: Path) -> list[str]:
    """Files that would still put the key in the page or call Gemini from it."""
    found = []
    for path in app.rglob("*"):
        if path.is_file() and path.suffix in {".ts", ".tsx", ".html", ".js"}:
            text = path.read_text()
            if FIXTURE_KEY in text or GEMINI_IN_BROWSER.search(text):
                found.append(str(path.relative_to(app)))
    return found


def test_no_file_holds_or_sends_the_key_after_the_patch(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    assert sorted(gemini_in_browser(app)) == ["index.html", "services/geminiService.ts"]  # the scan sees them
    assert patch(seed_project, app, "--apply").returncode == 0
    backups = app / BACKUPS
    assert sorted(gemini_in_browser(backups)) != []  # only the git-ignored backups still hold it
    shutil.rmtree(backups)
    assert gemini_in_browser(app) == []
    assert not any(FIXTURE_KEY in path.read_text() for path in app.rglob("*") if path.is_file())


def test_second_run_changes_nothing_and_backups_are_never_overwritten(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    assert patch(seed_project, app, "--apply").returncode == 0
    patched, project_patched = snapshot(app), snapshot(seed_project)

    again = patch(seed_project, app, "--apply")
    assert again.returncode == 0, again.stderr
    assert "Nothing to do" in again.stdout
    assert "---" not in again.stdout  # no diff
    assert snapshot(app) == patched
    assert snapshot(seed_project) == project_patched

    # Someone restores the old service and patches again (within the same second, most likely):
    # a new backup folder, the first one keeps the originals, and the drafted prompt is kept as it is.
    first = snapshot(next(path for path in (app / BACKUPS).iterdir() if path.is_dir()))
    shutil.copy(FIXTURE / "services" / "geminiService.ts", app / "services" / "geminiService.ts")
    assert patch(seed_project, app, "--apply").returncode == 0
    folders = sorted(path for path in (app / BACKUPS).iterdir() if path.is_dir())
    assert len(folders) == 2
    assert snapshot(folders[0]) == first
    assert set(snapshot(folders[1])) == {"services/geminiService.ts"}
    assert snapshot(seed_project) == project_patched


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_removes_a_one_line_key_script_and_keeps_the_rest(seed_project: Path, tmp_path: Path, newline: str) -> None:
    app = fresh_app(tmp_path)
    lines = [
        "<!DOCTYPE html>",
        "<html><head><title>AI Task Manager</title>",
        f'<script>window.process = {{ env: {{ API_KEY: "{FIXTURE_KEY}" }} }};</script><meta charset="UTF-8" />',
        '  <script>process = { env: { API_KEY: "" } }</script>',
        "<script>console.log(window.process);</script>",
        "</head><body><div id=root></div></body></html>",
        "",
    ]
    (app / "index.html").write_bytes(newline.join(lines).encode())
    assert patch(seed_project, app, "--apply").returncode == 0
    expected = [lines[0], lines[1], '<meta charset="UTF-8" />', lines[4], lines[5], ""]
    assert (app / "index.html").read_bytes() == newline.join(expected).encode()


def test_keeps_the_dependency_while_another_file_imports_it(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    (app / "services" / "imageService.ts").write_text('import { GoogleGenAI } from "@google/genai";\n')
    result = patch(seed_project, app, "--apply")
    assert result.returncode == 0, result.stderr
    assert "@google/genai" in json.loads((app / "package.json").read_text())["dependencies"]
    assert "services/imageService.ts:1:" in result.stdout
    assert FIXTURE_KEY not in (app / "index.html").read_text()


@pytest.mark.parametrize(
    "break_it",
    [
        pytest.param(lambda app: shutil.rmtree(app), id="no-folder"),
        pytest.param(lambda app: (app / "services" / "geminiService.ts").unlink(), id="no-service"),
        pytest.param(lambda app: (app / "package.json").unlink(), id="no-package-json"),
    ],
)
def test_refuses_a_folder_that_is_not_an_app(
    seed_project: Path, tmp_path: Path, break_it: Callable[[Path], None]
) -> None:
    app = fresh_app(tmp_path)
    break_it(app)
    before = snapshot(app) if app.exists() else {}
    result = patch(seed_project, app, "--apply")
    assert result.returncode != 0
    assert "does not look like an AI Studio app" in result.stderr
    assert (snapshot(app) if app.exists() else {}) == before


def test_refuses_the_apps_subfolder(seed_project: Path, tmp_path: Path) -> None:
    app = fresh_app(tmp_path)
    result = patch(seed_project, app / "services", "--apply")
    assert result.returncode != 0 and "does not look like" in result.stderr
    assert not (app / BACKUPS).exists()


# --- In Chromium, against the real backend and the fake Gemini ----------------------------------

STUB_PAGES: dict[str, tuple[int, dict[str, str], bytes]] = {
    # What Nginx itself answers when it rate-limits or loses the backends: HTML, not JSON.
    "nginx-429": (
        429,
        {"Content-Type": "text/html", "Retry-After": "7"},
        b"<html><body><h1>429 Too Many Requests</h1></body></html>",
    ),
    "nginx-429-bare": (429, {"Content-Type": "text/html"}, b"<html><body><h1>429 Too Many Requests</h1></body></html>"),
    "nginx-502": (502, {"Content-Type": "text/html"}, b"<html><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>"),
    "not-a-list": (200, {"Content-Type": "application/json"}, b'{"title": "one sub-task, not a list"}'),
}


def load_fake_gemini(project: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("bake_fake_gemini", project / "tests" / "fake_gemini.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module


class PageServer(SimpleHTTPRequestHandler):
    """Serves the built pages; POST /stub/<name>/api/breakdown-task answers a canned response (same origin)."""

    hang = threading.Event()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        name = self.path.split("/")[2] if self.path.startswith("/stub/") else ""
        if name == "hang":  # never answers: the page's own timeout must give up
            self.hang.wait(60)
            return
        status, headers, body = STUB_PAGES.get(name, (404, {"Content-Type": "text/plain"}, b"no such stub"))
        self.send_response(status)
        for header, value in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(body)


def serve(site: Path, port: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", port), partial(PageServer, directory=str(site)))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def build_page(app: Path, site: Path, name: str, backend_url: str) -> None:
    """A page of the patched app's service, bundled like Vite would, with VITE_BACKEND_URL set."""
    (site / name).mkdir(parents=True)
    subprocess.run(
        [
            str(BIN / "esbuild"),
            "e2e-entry.ts",
            "--bundle",
            "--format=esm",
            "--target=es2022",
            "--log-level=warning",
            f"--outfile={site / name / 'app.js'}",
            f"--define:import.meta.env.VITE_BACKEND_URL={json.dumps(backend_url)}",
        ],
        cwd=app,
        check=True,
        timeout=60,
    )
    (site / name / "index.html").write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>AI Task Manager</title></head>'
        '<body><pre id="out"></pre><script type="module" src="app.js"></script></body></html>\n'
    )


class Browser:
    """tests/node/browser.mjs: one Chromium for the whole test, one JSON line per page visit."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            ["node", str(NODE / "browser.mjs")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=NODE
        )

    def visit(self, url: str, **options: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps({"url": url, **options}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, f"the browser driver exited with {self.process.wait(10)}"
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def api_requests(log: Path, method: str, path: str = SEED_API) -> int:
    """How many `method path` requests the backend logged (JSON lines on stderr)."""
    count = 0
    for line in log.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("method") == method and entry.get("path") == path:
            count += 1
    return count


@pytest.fixture(scope="module")
def stack(
    node_tools: Path, bake: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("frontend-e2e")
    site = tmp / "site"
    site.mkdir()
    # The two page origins are bound first: the bake's allowed_origins names one of them exactly.
    PageServer.hang.clear()
    servers = [serve(site, free_port()) for _ in range(2)]
    allowed, refused = (f"http://127.0.0.1:{server.server_address[1]}" for server in servers)
    project = own_project(bake(allowed_origins=allowed), tmp)
    assert f'"{allowed}"' in (project / "settings.py").read_text()  # the answer reached the bake
    venv = project_venv(project, "3.12")

    app = fresh_app(tmp)
    assert patch(project, app, "--apply").returncode == 0
    shutil.copy(NODE / "page_entry.ts", app / "e2e-entry.ts")
    backend_port = free_port()
    build_page(app, site, "real", f"http://127.0.0.1:{backend_port}/")  # the trailing slash must not matter
    for name in [*STUB_PAGES, "hang"]:
        build_page(app, site, name, f"{allowed}/stub/{name}")

    fake_gemini = load_fake_gemini(project)
    fake = fake_gemini.FakeGemini(host="127.0.0.1", port=0).start()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GEMINI_", "ALLOWED_ORIGINS"))}
    env |= {"GEMINI_API_KEY": "server-side-test-key", "GEMINI_BASE_URL": fake.base_url, "GEMINI_MAX_ATTEMPTS": "3"}
    env |= SPEND_GUARD_OFF  # no Redis here
    log = tmp / "backend.log"
    with log.open("w") as log_file:
        backend = subprocess.Popen(
            [
                str(venv / "bin" / "python"),
                "-m",
                "uvicorn",
                "main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(backend_port),
            ],
            cwd=project,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    browser = None
    try:
        wait_for_http(f"http://127.0.0.1:{backend_port}/healthz", timeout=60, process=backend)
        browser = Browser()
        yield {
            "allowed": allowed,
            "refused": refused,
            "fake": fake,
            "Fault": fake_gemini.Fault,
            "log": log,
            "browser": browser,
            "tmp": tmp,
        }
    finally:
        PageServer.hang.set()
        if browser is not None:
            browser.close()
        for server in servers:
            server.shutdown()
            server.server_close()
        stop_process(backend)
        fake.stop()


def test_allowed_origin_gets_suggestions_from_the_backend(stack: dict[str, Any]) -> None:
    fake, browser = stack["fake"], stack["browser"]
    before = fake.count
    title = "Plan the launch party"
    shot = stack["tmp"] / "allowed.png"
    result = browser.visit(f"{stack['allowed']}/real/?title={title.replace(' ', '+')}", screenshot=str(shot))
    assert result["state"] == "ok", result
    suggestions = json.loads(result["text"])
    assert 2 <= len(suggestions) <= 5
    assert all(set(item) <= {"title", "description"} for item in suggestions)
    # The fake answers one sub-task with "description": null; the app's type wants the field left out.
    assert any("description" not in item for item in suggestions)
    assert fake.count == before + 1
    # The app's own prompt, now on the server, with the title typed in the page.
    assert f'Given the main task title "{title}"' in fake.requests[-1].user_text
    assert fake.requests[-1].headers["x-goog-api-key"] == "server-side-test-key"  # the key stayed server-side
    assert shot.stat().st_size > 0


def test_refused_origin_gets_a_readable_cors_failure_and_gemini_is_not_called(stack: dict[str, Any]) -> None:
    fake, browser, log = stack["fake"], stack["browser"], stack["log"]
    before, posts, preflights = fake.count, api_requests(log, "POST"), api_requests(log, "OPTIONS")
    result = browser.visit(f"{stack['refused']}/real/?title=Refused+task")
    assert result["state"] == "error", result
    assert "Could not reach the AI service" in result["text"] and "CORS" in result["text"]
    deadline = time.monotonic() + 10  # the backend writes its log line after answering
    while api_requests(log, "OPTIONS") == preflights and time.monotonic() < deadline:
        time.sleep(0.1)
    assert api_requests(log, "OPTIONS") == preflights + 1  # the preflight reached the backend, was refused,
    assert api_requests(log, "POST") == posts  # so the browser never sent the POST,
    assert fake.count == before  # and Gemini was not called


def test_validation_error_reaches_the_page(stack: dict[str, Any]) -> None:
    fake, browser = stack["fake"], stack["browser"]
    before = fake.count
    result = browser.visit(f"{stack['allowed']}/real/?title=")
    assert result["state"] == "error", result
    assert "HTTP 422" in result["text"] and "taskTitle: " in result["text"], result["text"]
    assert "[object Object]" not in result["text"]
    assert fake.count == before


def test_gemini_outage_reaches_the_page(stack: dict[str, Any]) -> None:
    fake, browser, fault = stack["fake"], stack["browser"], stack["Fault"]
    before = fake.count
    fake.push(*(fault("error", code=503) for _ in range(3)))
    result = browser.visit(f"{stack['allowed']}/real/?title=Flaky+task")
    assert result["state"] == "error", result
    assert "HTTP 503" in result["text"] and "Gemini is unavailable right now" in result["text"], result["text"]
    assert fake.count == before + 3  # the backend retried, then gave up with its own message


def test_rate_limit_says_retry_later_without_the_hidden_retry_after(stack: dict[str, Any]) -> None:
    # The backend sends Retry-After, but CORS hides it from a cross-origin page: the message must still help.
    fake, browser, fault = stack["fake"], stack["browser"], stack["Fault"]
    fake.push(*(fault("error", code=429, retry_after=1) for _ in range(3)))
    result = browser.visit(f"{stack['allowed']}/real/?title=Busy+task")
    assert result["state"] == "error", result
    assert "Too many requests" in result["text"] and "HTTP 429" in result["text"], result["text"]
    assert re.search(r"retry later|try again later", result["text"]), result["text"]
    assert "seconds" not in result["text"]  # Retry-After is not exposed to this origin


@pytest.mark.parametrize(
    ("stub", "expected"),
    [
        ("nginx-429", ["Too many requests", "HTTP 429", "try again in 7 seconds"]),  # same origin: Retry-After readable
        ("nginx-429-bare", ["Too many requests", "HTTP 429", "try again later"]),
        ("nginx-502", ["The AI service failed (HTTP 502"]),
        ("not-a-list", ["unexpected answer"]),
    ],
)
def test_proxy_pages_and_odd_answers_give_readable_messages(
    stack: dict[str, Any], stub: str, expected: list[str]
) -> None:
    result = stack["browser"].visit(f"{stack['allowed']}/{stub}/?title=Anything")
    assert result["state"] == "error", result
    for words in expected:
        assert words in result["text"], result["text"]
    assert "<" not in result["text"]  # no HTML from the error page


def test_a_backend_that_never_answers_times_out_with_a_message(stack: dict[str, Any]) -> None:
    # The page's clock is fake: the driver jumps it 61 s ahead once the request is out.
    result = stack["browser"].visit(f"{stack['allowed']}/hang/?title=Anything", fastForwardMs=61_000)
    assert result["state"] == "error", result
    assert "did not answer within 60 seconds" in result["text"], result["text"]


# --- In Chromium, with a caller check: the page sends the proof through setCallerTokenProvider -------

CALLER_MODES = {
    "firebase_app_check": {"caller_check": "firebase_app_check", "firebase_project_number": "123456789012"},
    "oidc": {
        "caller_check": "oidc",
        "oidc_issuer": "https://securetoken.google.com/my-project",
        "oidc_audience": "my-project",
    },
}


@pytest.fixture(scope="module", params=CALLER_MODES, ids=CALLER_MODES.keys())
def caller_stack(
    request: pytest.FixtureRequest,
    node_tools: Path,
    bake: Callable[..., Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    """A bake with a caller check, its backend trusting the bake's own test JWKS server (tests/caller_keys.py,
    real keys made on the spot), and the patched app's page served from an allowed origin."""
    tmp = tmp_path_factory.mktemp(f"caller-{request.param}")
    site = tmp / "site"
    site.mkdir()
    page_server = serve(site, free_port())
    origin = f"http://127.0.0.1:{page_server.server_address[1]}"
    project = own_project(bake(allowed_origins=origin, **CALLER_MODES[request.param]), tmp)
    venv = project_venv(project, "3.12")
    python = str(venv / "bin" / "python")
    app = fresh_app(tmp)
    assert patch(project, app, "--apply").returncode == 0
    shutil.copy(NODE / "page_entry.ts", app / "e2e-entry.ts")
    backend_port = free_port()
    build_page(app, site, "real", f"http://127.0.0.1:{backend_port}")

    processes: list[subprocess.Popen[str]] = []
    browser = None
    fake = load_fake_gemini(project).FakeGemini(host="127.0.0.1", port=0).start()
    try:
        keys = subprocess.Popen([python, "tests/caller_keys.py"], cwd=project, stdout=subprocess.PIPE, text=True)
        processes.append(keys)
        assert keys.stdout is not None
        ready = json.loads(keys.stdout.readline())  # the JWKS server's settings and a valid token
        env = {key: value for key, value in os.environ.items() if not key.startswith(("GEMINI_", "ALLOWED_"))}
        env |= {"GEMINI_API_KEY": "server-side-test-key", "GEMINI_BASE_URL": fake.base_url, **ready["settings"]}
        env |= SPEND_GUARD_OFF  # no Redis here
        log = tmp / "backend.log"
        with log.open("w") as log_file:
            backend = subprocess.Popen(
                [python, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(backend_port)],
                cwd=project, env=env, stdout=log_file, stderr=subprocess.STDOUT, text=True,
            )  # fmt: skip
        processes.append(backend)
        wait_for_http(f"http://127.0.0.1:{backend_port}/healthz", timeout=60, process=backend)
        browser = Browser()
        token = next(iter(ready["headers"].values())).removeprefix("Bearer ")
        yield {"origin": origin, "fake": fake, "log": log, "browser": browser, "token": token}
    finally:
        if browser is not None:
            browser.close()
        page_server.shutdown()
        page_server.server_close()
        for process in reversed(processes):
            stop_process(process)
        fake.stop()


def test_the_page_sends_the_token_and_gets_suggestions(caller_stack: dict[str, Any]) -> None:
    fake, browser, log = caller_stack["fake"], caller_stack["browser"], caller_stack["log"]
    before, preflights = fake.count, api_requests(log, "OPTIONS")
    url = f"{caller_stack['origin']}/real/?title=Plan+the+launch&token={caller_stack['token']}"
    result = browser.visit(url)
    assert result["state"] == "ok", result
    assert 2 <= len(json.loads(result["text"])) <= 5
    assert fake.count == before + 1
    # The proof header is not CORS-safelisted: the browser asked first, and the backend admitted it.
    assert api_requests(log, "OPTIONS") == preflights + 1


def test_without_a_provider_the_page_shows_the_401(caller_stack: dict[str, Any]) -> None:
    fake, browser = caller_stack["fake"], caller_stack["browser"]
    before = fake.count
    result = browser.visit(f"{caller_stack['origin']}/real/?title=Plan+the+launch")
    assert result["state"] == "error", result
    assert "The AI service refused this request (HTTP 401" in result["text"], result["text"]
    assert "token" in result["text"].lower()  # the backend's reason: a token is missing
    assert fake.count == before


@pytest.mark.parametrize("mode", CALLER_MODES)
def test_service_with_a_caller_check_compiles_strict(
    node_tools: Path, bake: Callable[..., Path], tmp_path: Path, mode: str
) -> None:
    project = bake(**CALLER_MODES[mode])
    result = service_against(tmp_path, project, (FIXTURE / "types.ts").read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    # Typed: a provider that gives a number is an error.
    wrong = tmp_path / "wrong.ts"
    wrong.write_text(
        "import { setCallerTokenProvider } from './services/geminiService';\nsetCallerTokenProvider(async () => 42);\n"
    )
    result = tsc(tmp_path, "types.ts", "services/geminiService.ts", "vite-env.d.ts", "wrong.ts")
    assert result.returncode != 0 and "wrong.ts" in result.stdout, result.stdout


# --- Streamed answers in the browser -----------------------------------------------------------


def test_stream_shows_deltas_before_the_result(stack: dict[str, Any]) -> None:
    fake, browser, fault = stack["fake"], stack["browser"], stack["Fault"]
    fake.push(fault("ok", chunks=4, chunk_delay=0.3))
    result = browser.visit(f"{stack['allowed']}/real/?stream=1&title=Streamed+task")
    assert result["state"] == "ok", result
    assert int(result["deltas"]) == 4, result  # every delta reached the page before the result did
    suggestions = json.loads(result["text"])
    assert json.loads(result["streamed"]) == [
        {"title": item["title"], "description": item.get("description")} for item in suggestions
    ]  # the deltas add up to the answer
    assert fake.requests[-1].path.endswith(":streamGenerateContent")


def test_abort_closes_the_stream_and_the_gemini_call(stack: dict[str, Any]) -> None:
    fake, browser, fault = stack["fake"], stack["browser"], stack["Fault"]
    fake.push(fault("ok", chunks=10, chunk_delay=1.0))
    result = browser.visit(f"{stack['allowed']}/real/?stream=1&abort=1&title=Left+early")
    assert result["state"] == "error" and "AbortError" in result["text"], result
    deadline = time.monotonic() + 2
    while not fake.streams[-1].client_left and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.streams[-1].client_left, "the backend kept calling Gemini for a page that aborted"
    assert len(fake.streams[-1].sent_at) < 10


def test_error_event_becomes_a_readable_error(stack: dict[str, Any]) -> None:
    fake, browser, fault = stack["fake"], stack["browser"], stack["Fault"]
    fake.push(fault("ok", cut_after=1))
    result = browser.visit(f"{stack['allowed']}/real/?stream=1&title=Cut+short")
    assert result["state"] == "error", result
    assert result["text"] == "The AI service failed (HTTP 502): Could not reach Gemini.", result
