"""The frontend patch on apps other than the seed (issue 23): tests/fixtures/apps holds one small app per shape
AI Studio exports come in, written for these tests, each with several Gemini functions (JSON with a `Type.*`
schema, plain text, a streamed answer, one call the patch cannot translate):

- root_app: files at the root, services/geminiService.ts, `process.env.API_KEY` defined in vite.config.ts from
  .env.local, the key also in index.html and an import map for @google/genai; streams through a callback.
- src_app: src/services/, `import.meta.env.VITE_GEMINI_API_KEY` from .env, a tsconfig with noUnused*; streams as
  an async generator; one function takes an object (an interface) whose fields the prompt uses; its chat call
  is not translatable.
- fullstack_app: an Express server.ts holds the key: the patch says what to do and changes nothing.

One bake (copied: the patch writes prompt files into it), one backend on the bake's fake Gemini, one `vite build`
per app and one Chromium for every page.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.helpers import ROOT, SPEND_GUARD_OFF, free_port, project_venv, stop_process, wait_for_http
from test_frontend import BIN, Browser, load_fake_gemini, node_tools, own_project, patch, serve, snapshot  # noqa: F401

pytestmark = pytest.mark.browser  # Node, vite and Chromium; node_tools (imported above) says when they are missing

APPS = ROOT / "tests" / "fixtures" / "apps"
KEYS = {  # the fake keys each fixture holds, in every place an AI Studio app keeps one
    "root_app": "AIzaSyRootAppKey-DoNotShip-0123456789ab",
    "src_app": "AQ.SrcAppAuthKey-DoNotShip-9876543210",
    "fullstack_app": "AIzaSyFullStackKey-DoNotShip-00000000000",
}
SERVICES = {"root_app": "services/geminiService.ts", "src_app": "src/services/geminiService.ts"}
EXPORTS = {  # every export of the old service, as its callers see it
    "root_app": [
        "export const isApiKeyMissing = (): boolean =>",
        "export const formatServings = (servings: number): string =>",
        "export const suggestRecipes = async (ingredients: string, servings: number): Promise<Recipe[]> =>",
        "export async function describeDish(dish: string): Promise<string> {",
        "export const streamStory = async (topic: string, onChunk: (text: string) => void): Promise<void> =>",
        "export const describePhoto = async (imageBase64: string): Promise<string> =>",
    ],
    "src_app": [
        "export function isApiKeyMissing(): boolean {",
        "export async function makeQuiz(topic: string, count: number, level?: string): Promise<QuizQuestion[]> {",
        "export const explain = async (concept: string): Promise<string> =>",
        "export const planStudy = async (plan: StudyPlan): Promise<string> =>",
        "export async function* streamSummary(text: string): AsyncGenerator<string> {",
        (
            "export const chatWithTutor = async (history: { role: string; text: string }[], message: string): "
            "Promise<string> =>"
        ),
    ],
}
SERVED = ["suggest-recipes", "describe-dish", "stream-story", "make-quiz", "explain", "plan-study", "stream-summary"]
NOT_SERVED = ["describe-photo", "chat-with-tutor"]


def app_copy(folder: Path, name: str) -> Path:
    app = folder / name
    shutil.copytree(APPS / name, app)
    # The app's dependencies, as `npm install` would give them: vite and its types for tsc and the build.
    (app / "node_modules").symlink_to(BIN.parent, target_is_directory=True)
    return app


def everything(app: Path) -> dict[str, bytes]:
    return {name: data for name, data in snapshot(app).items() if not name.startswith("node_modules/")}


def beside(tmp: Path, project: Path) -> dict[str, bytes]:
    """Every file in the apps' parent folder but the apps and the project: the patch writes only in those."""
    ours = (*KEYS, project.name, "site")
    return {name: data for name, data in snapshot(tmp).items() if name.split("/", 1)[0] not in ours}


@pytest.fixture(scope="module")
def patched(
    request: pytest.FixtureRequest, bake: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Dry run, then --apply, then a second --apply of each app, against one private copy of the bake."""
    request.getfixturevalue("node_tools")
    tmp = tmp_path_factory.mktemp("patch-apps")
    site = tmp / "site"
    site.mkdir()
    page_server = serve(site, free_port())
    origin = f"http://127.0.0.1:{page_server.server_address[1]}"
    project = own_project(bake(allowed_origins=origin), tmp)
    (tmp / "notes.txt").write_text("beside the app: not the patch's to touch\n")
    runs: dict[str, Any] = {"project": project, "origin": origin, "site": site, "tmp": tmp, "server": page_server}
    for name in KEYS:
        app = app_copy(tmp, name)
        outside = beside(tmp, project)
        before, project_before = everything(app), snapshot(project)
        dry = patch(project, app)
        unchanged = everything(app) == before and snapshot(project) == project_before
        applied = patch(project, app, "--apply")
        after, project_after = everything(app), snapshot(project)
        again = patch(project, app, "--apply")
        runs[name] = {
            "app": app,
            "dry": dry,
            "dry_wrote_nothing": unchanged,
            "apply": applied,
            "again": again,
            "again_changed_nothing": everything(app) == after and snapshot(project) == project_after,
            "outside_unchanged": beside(tmp, project) == outside,
            "original": before,
        }
    return runs


@pytest.mark.parametrize("name", SERVICES)
def test_dry_run_shows_the_diff_and_the_drafts_and_writes_nothing(patched: dict[str, Any], name: str) -> None:
    run = patched[name]
    assert run["dry"].returncode == 0, run["dry"].stderr
    out = run["dry"].stdout
    assert run["dry_wrote_nothing"]
    assert "Dry run, nothing written" in out
    assert f"--- a/{SERVICES[name]}" in out and "+import * as backend from './geminiBackend';" in out
    assert "Prompt files drafted in the backend" in out
    for key in KEYS.values():  # never printed, not even in the diff of the lines that held it
        assert key not in out + run["dry"].stderr
    assert "…[masked" in out


@pytest.mark.parametrize("name", SERVICES)
def test_apply_keeps_every_export_and_removes_every_key(patched: dict[str, Any], name: str) -> None:
    run = patched[name]
    assert run["apply"].returncode == 0, run["apply"].stderr
    app: Path = run["app"]
    service = (app / SERVICES[name]).read_text()
    for export in EXPORTS[name]:
        assert export in service, export
    assert "@google/genai" not in service and "process.env" not in service and "import.meta.env" not in service
    # The key is gone from every file the build reads; only the git-ignored backups keep it.
    key = KEYS[name]
    holding = sorted(
        str(path.relative_to(app))
        for path in app.rglob("*")
        if path.is_file() and "node_modules" not in path.parts and key.encode() in path.read_bytes()
    )
    assert holding and all(path.startswith(".frontend-patch-backup/") for path in holding), holding
    assert "@google/genai" not in json.loads((app / "package.json").read_text()).get("dependencies", {})
    for key in KEYS.values():
        assert key not in run["apply"].stdout + run["apply"].stderr


def test_root_app_loses_its_define_its_key_script_and_its_import_map_entry(patched: dict[str, Any]) -> None:
    app: Path = patched["root_app"]["app"]
    vite = (app / "vite.config.ts").read_text()
    assert "define:" not in vite and "loadEnv" in vite  # the rest of the config is kept
    html = (app / "index.html").read_text()
    assert "window.process" not in html and "@google/genai" not in html and '<script type="importmap">' in html
    assert "GEMINI_API_KEY" not in (app / ".env.local").read_text()


def test_src_app_keeps_its_other_env_values(patched: dict[str, Any]) -> None:
    env = (patched["src_app"]["app"] / ".env").read_text()
    assert "VITE_APP_TITLE=Study Buddy" in env and "VITE_GEMINI_API_KEY" not in env


def test_drafted_prompts_hold_the_apps_own_calls(patched: dict[str, Any]) -> None:
    prompts = patched["project"] / "prompts"
    recipes = (prompts / "suggest-recipes.prompt").read_text()
    # The app's model and config, its system instruction (braces escaped, so Handlebars leaves them),
    # its prompt with the parameters as variables, and its Type.* schema as JSON Schema.
    for line in (
        "model: gemini-3.5-flash-lite",
        "  temperature: 0.4",
        "You are a frugal home cook. Answer with \\{{ real }} recipes only.",
        "I have {{ingredients}}. Suggest recipes for {{servings}} people.",
        "        maxLength: 2000",  # strings are bounded
        "          - type: 'null'",  # nullable: true
    ):
        assert line in recipes, line
    assert "propertyOrdering" not in recipes
    quiz = (prompts / "make-quiz.prompt").read_text()
    assert "{{#if level}} for {{level}} students{{/if}}" in quiz
    assert "thinkingLevel: low" in quiz and "- hard" in quiz
    # An object parameter: the fields the prompt uses, as a nested input (its literal union an enum); `id`,
    # which the prompt does not use, is neither declared nor sent.
    plan = yaml.safe_load((prompts / "plan-study.prompt").read_text().split("---")[1])["input"]["schema"]
    assert plan["required"] == ["plan"] and plan["properties"]["plan"] == {
        "type": "object",
        "properties": {
            "subject": {"type": "string", "maxLength": 2000, "minLength": 1},
            "hours": {"type": "number"},
            "level": {"type": "string", "enum": ["beginner", "advanced"]},
        },
        "required": ["subject", "hours"],
        "additionalProperties": False,
    }
    assert (
        "Plan {{plan.hours}} hours of {{plan.subject}}{{#if plan.level}} at {{plan.level}} level{{/if}}."
        in (prompts / "plan-study.prompt").read_text()
    )
    for prompt_id in NOT_SERVED:  # drafted for the owner to finish, never served half-translated
        assert not (prompts / f"{prompt_id}.prompt").exists()
        assert "# TODO: " in (prompts / f"{prompt_id}.prompt.todo").read_text()
    report = patched["root_app"]["apply"].stdout + patched["src_app"]["apply"].stdout
    assert "Not translated (left as TODO, never guessed):" in report
    assert "describePhoto: contents has image/file parts" in report
    assert "chatWithTutor: uses client().chats" in report


def test_second_run_changes_nothing(patched: dict[str, Any]) -> None:
    for name in SERVICES:
        again = patched[name]["again"]
        assert again.returncode == 0, again.stderr
        assert "Nothing to do" in again.stdout and "---" not in again.stdout
        assert patched[name]["again_changed_nothing"], name
        assert patched[name]["outside_unchanged"], name


def test_full_stack_export_is_explained_not_patched(patched: dict[str, Any]) -> None:
    run = patched["fullstack_app"]
    for result in (run["dry"], run["apply"], run["again"]):
        assert result.returncode == 3, result.stdout + result.stderr
        assert "server.ts is the app's own server and reads the key" in result.stderr
        assert "point that server's Gemini" in result.stderr and KEYS["fullstack_app"] not in result.stderr
    assert everything(run["app"]) == run["original"]


def test_the_backend_client_is_in_step_with_the_prompts(patched: dict[str, Any]) -> None:
    project = patched["project"]
    python = project_venv(project, "3.12") / "bin" / "python"
    check = subprocess.run(
        [str(python), "scripts/gen_client.py", "--check"],
        check=False, cwd=project, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_patched_app_type_checks_under_its_own_tsconfig(patched: dict[str, Any], name: str) -> None:
    app: Path = patched[name]["app"]
    tsc = [str(BIN / "tsc"), "-p", "tsconfig.json"]
    result = subprocess.run(tsc, check=False, cwd=app, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check is real: the old service's signature changed by one type fails it.
    service = app / SERVICES[name]
    original = service.read_text()
    service.write_text(original.replace("Promise<string>", "Promise<number>", 1))
    try:
        wrong = subprocess.run(tsc, check=False, cwd=app, capture_output=True, text=True, timeout=120)
    finally:
        service.write_text(original)
    assert wrong.returncode != 0


@pytest.fixture(scope="module")
def live(patched: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Each patched app built by its own `vite build` against the bake's backend (with the drafted prompts) on
    its fake Gemini, and one Chromium."""
    project, site = patched["project"], patched["site"]
    backend_port = free_port()
    builds = {}
    for name in SERVICES:
        env = {**os.environ, "VITE_BACKEND_URL": f"http://127.0.0.1:{backend_port}"}
        out = site / name
        build = subprocess.run(
            [str(BIN / "vite"), "build", "--base", "./", "--outDir", str(out), "--logLevel", "warn"],
            check=False, cwd=patched[name]["app"], env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert build.returncode == 0, build.stdout + build.stderr
        builds[name] = out
    venv = project_venv(project, "3.12")
    fake = load_fake_gemini(project).FakeGemini(host="127.0.0.1", port=0).start()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("GEMINI_", "ALLOWED_ORIGINS"))}
    env |= {"GEMINI_API_KEY": "server-side-test-key", "GEMINI_BASE_URL": fake.base_url, **SPEND_GUARD_OFF}
    command = [str(venv / "bin" / "python"), "-m", "uvicorn", "main:app", "--port", str(backend_port)]
    log = patched["tmp"] / "backend.log"
    with log.open("w") as log_file:
        backend = subprocess.Popen(command, cwd=project, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    browser = None
    try:
        wait_for_http(f"http://127.0.0.1:{backend_port}/healthz", timeout=60, process=backend)
        browser = Browser()
        yield {"builds": builds, "fake": fake, "browser": browser, "backend": f"http://127.0.0.1:{backend_port}"}
    finally:
        if browser is not None:
            browser.close()
        patched["server"].shutdown()
        patched["server"].server_close()
        stop_process(backend)
        fake.stop()


def test_no_key_in_the_built_apps(live: dict[str, Any]) -> None:
    for name, out in live["builds"].items():
        files = [path for path in out.rglob("*") if path.is_file()]
        assert any(path.suffix == ".js" for path in files), name
        for path in files:
            data = path.read_bytes()
            assert not any(key.encode() in data for key in KEYS.values()), path
            assert b"generativelanguage" not in data and b"esm.sh/@google/genai" not in data, path


def test_drafted_prompts_are_served(live: dict[str, Any]) -> None:
    # The backend loaded every drafted prompt file at start-up (a wrong one stops it) and serves each.
    import urllib.request

    with urllib.request.urlopen(f"{live['backend']}/openapi.json", timeout=10) as response:
        paths = json.load(response)["paths"]
    for prompt_id in SERVED:
        assert f"/api/{prompt_id}" in paths, prompt_id
    for prompt_id in NOT_SERVED:
        assert f"/api/{prompt_id}" not in paths


def test_root_app_works_in_chromium_through_the_backend(patched: dict[str, Any], live: dict[str, Any]) -> None:
    fake, before = live["fake"], live["fake"].count
    result = live["browser"].visit(f"{patched['origin']}/root_app/index.html")
    assert result["state"] == "ok", result
    answer = json.loads(result["text"])
    recipe = answer["recipes"][0]
    assert set(recipe) >= {"name", "minutes", "steps"} and isinstance(recipe["minutes"], int)
    assert "tip" not in recipe or recipe["tip"] is None or isinstance(recipe["tip"], str)
    assert answer["dish"] == "A plain text answer."
    # Streamed in pieces that add up to the whole answer (the fake streams what the plain call answers).
    assert answer["chunks"] >= 2 and answer["story"] == "A plain text answer."
    assert answer["photo"].startswith("error: describePhoto is not served by the backend yet")
    assert answer["servings"] == "2 servings"  # the app's own helper, kept as it was
    sent = fake.requests[before:]
    assert len(sent) == 3 and all(seen.headers["x-goog-api-key"] == "server-side-test-key" for seen in sent)
    assert any(seen.path.endswith(":streamGenerateContent") for seen in sent)
    recipes_call = next(seen for seen in sent if "I have eggs and rice." in seen.user_text)
    assert recipes_call.user_text == "I have eggs and rice. Suggest recipes for 2 people."
    assert recipes_call.system_text == "You are a frugal home cook. Answer with {{ real }} recipes only."
    assert "gemini-3.5-flash-lite" in recipes_call.path  # the app's own model


def test_src_app_works_in_chromium_through_the_backend(patched: dict[str, Any], live: dict[str, Any]) -> None:
    fake, before = live["fake"], live["fake"].count
    result = live["browser"].visit(f"{patched['origin']}/src_app/index.html")
    assert result["state"] == "ok", result
    answer = json.loads(result["text"])
    assert answer["quiz"] and answer["quiz"][0]["difficulty"] in ("easy", "medium", "hard")
    assert answer["explanation"] == "A plain text answer."
    assert answer["pieces"] >= 2 and answer["summary"] == "A plain text answer."  # yielded piece by piece
    assert answer["tutor"].startswith("error: chatWithTutor")
    sent = fake.requests[before:]
    assert answer["plan"] == "A plain text answer."
    assert len(sent) == 4
    plan_call = next(seen for seen in sent if "hours of" in seen.user_text)
    assert plan_call.user_text == "Plan 2 hours of algebra at beginner level."
    quiz_call = next(seen for seen in sent if "quiz questions" in seen.user_text)
    assert quiz_call.user_text == "Write 3 quiz questions about photosynthesis for beginner students."


def test_typescript_7_alone_is_named_as_the_problem(patched: dict[str, Any], tmp_path: Path) -> None:
    # The app's own typescript is 7.x here (tests/node's tsc): the native port has no JavaScript API to read it.
    app = app_copy(tmp_path, "src_app")
    project = patched["project"]
    python = project_venv(project, "3.12") / "bin" / "python"
    result = subprocess.run(
        [str(python), str(project / "scripts" / "patch_frontend.py"), str(app)],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "typescript 7.0.2 has no JavaScript API" in result.stderr, result.stderr
    assert "--typescript" in result.stderr
