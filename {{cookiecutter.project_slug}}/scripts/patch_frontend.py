{% raw -%}
"""Move an AI Studio app's Gemini calls from the browser to this backend, keeping every name the app imports.

    .venv/bin/python scripts/patch_frontend.py ../my-app           # show what would change, write nothing
    .venv/bin/python scripts/patch_frontend.py ../my-app --apply   # change it, keeping a backup of each file

It reads the app's services/geminiService.ts (or src/services/) with the TypeScript compiler API
(scripts/read_app.mjs; the app's own `typescript` 5.x/6.x, or --typescript DIR). For every exported function
that calls `ai.models.generateContent` or `generateContentStream` it drafts prompts/<id>.prompt in this project
(the function's model, system instruction, prompt text with its parameters as variables, config and response
schema), regenerates frontend/services/geminiService.ts (scripts/gen_client.py), copies that client into the app
as services/geminiBackend.ts and writes a new services/geminiService.ts with exactly the old exports and
signatures, each now calling the backend (streaming ones stream). A call it cannot translate faithfully (an
image part, chat history, tools, a computed prompt) is drafted as prompts/<id>.prompt.todo, never served, and
its function throws a clear error until you finish it. It removes the key from vite.config.ts's `define`,
`.env*`, index.html and the import map, with a backup of every file it changes. Keys are never printed.

A full-stack export (its own server.ts reads the key) is not patched: the browser holds no key there.
Run it with this project's Python (it loads the prompts as the server does); Node.js 18+ reads the app.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

from __future__ import annotations

import argparse
import difflib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parent.parent
FRONTEND = PROJECT / "frontend"
READER = Path(__file__).resolve().parent / "read_app.mjs"
SERVICES = (Path("services") / "geminiService.ts", Path("src") / "services" / "geminiService.ts")
CLIENT_NAME = "geminiBackend.ts"  # the typed backend client, beside the app's service
BACKUPS = ".frontend-patch-backup"
SKIP_DIRS = {"node_modules", "dist", "build", ".git", BACKUPS}
SCANNED = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".html", ".json"}
GENAI = "@google/genai"
SEED_START = "// ---- The AI Task Manager's own functions"
SEED_END = "// ---- End of the AI Task Manager's own functions. ----\n"
MAX_STRING = 2000  # a string parameter's bound in a drafted input schema; edit the draft to change it
RETIRED_MODELS = ("gemini-1.", "gemini-2.0-", "gemini-2.5-")  # shut down by 2026-12-01: GEMINI_MODEL applies

# What the old service and its callers used; after the patch every one of these is dead code or gone.
OLD_KEY = re.compile(r"GEMINI_API_KEY|\bAPI_KEY|process\.env\.\w*KEY")
GENAI_IMPORT = re.compile(r"""['"]@google/genai['"/]""")
# A key-like value: Google API keys (AIza...), auth keys (AQ....), or whatever follows KEY= / KEY: in a line.
KEY_VALUE = re.compile(r"AIza[0-9A-Za-z_\-]{12,}|AQ\.[0-9A-Za-z_\-.]{12,}")
ASSIGNED_KEY = re.compile(r"""(?P<name>\w*API_KEY\w*)(?P<sep>\s*[=:]\s*['"]?)(?P<value>[^'"\s,}]{6,})""")
ENV_KEY_LINE = re.compile(r"^\s*(?:export\s+)?(?:VITE_)?(?:GEMINI_API_KEY|API_KEY|GOOGLE_API_KEY)\s*=")
SCRIPT = re.compile(r"<script\b(?P<attrs>[^>]*)>(?P<body>.*?)</script\s*>", re.S | re.I)
KEY_SCRIPT_BODY = re.compile(r"\s*(?:(?:window|globalThis|self)\.)?process\s*=\s*\{.*\}\s*;?\s*", re.S)
GENAI_MEMBER = re.compile(r"""^\s*"@google/genai(?:/[^"]*)?"\s*:\s*"[^"]*"\s*,?\s*$""")


@dataclass
class Change:
    path: Path  # relative to its root (the app, or this project for prompts)
    old: str | None  # None for a new file
    new: str
    why: str
    in_project: bool = False  # a file of this project (a drafted prompt), not of the app


@dataclass
class Draft:
    function: str
    prompt_id: str
    text: str
    todo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    json_output: bool = False

    @property
    def path(self) -> Path:
        return Path("prompts") / (f"{self.prompt_id}.prompt" + (".todo" if self.todo else ""))


def read(path: Path) -> str:
    with path.open(encoding="utf-8", newline="") as file:  # keep CRLF files CRLF
        return file.read()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as file:
        file.write(text)


def mask(text: str) -> str:
    """`text` with every key-like value cut to its first 4 characters: a report must never leak the key."""
    text = KEY_VALUE.sub(lambda found: f"{found[0][:4]}…[masked, {len(found[0])} chars]", text)
    return ASSIGNED_KEY.sub(
        lambda found: (
            found["name"] + found["sep"] + f"{found['value'][:4]}…[masked, {len(found['value'])} chars]"
            if "…[masked" not in found["value"] and not found["value"].startswith(("process.", "import.", "env."))
            else found[0]
        ),
        text,
    )


def kebab(name: str) -> str:
    """breakDownTaskWithAI -> break-down-task-with-ai: a prompt id (one path segment of /api/<id>)."""
    words = re.findall(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+", name)
    return "-".join(word.lower() for word in words)


def source_files(app: Path) -> Iterator[Path]:
    """The app's own text files, without dependencies, build output or our backups."""
    for path in sorted(app.rglob("*")):
        relative = path.relative_to(app)
        if any(part in SKIP_DIRS for part in relative.parts[:-1]) or not path.is_file():
            continue
        if (path.suffix in SCANNED and not path.name.endswith("-lock.json")) or path.name.startswith(".env"):
            yield path


# --- Reading the app ------------------------------------------------------------------------------


def start_reading(app: Path, service: Path | None, typescript: Path | None) -> subprocess.Popen[str]:
    """scripts/read_app.mjs on the app (see there), started: Python loads the prompts meanwhile."""
    command = ["node", str(READER), str(app), service.as_posix() if service else "-"]
    if typescript:
        command += ["--typescript", str(typescript.resolve())]
    try:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    except FileNotFoundError:
        raise SystemExit("error: Node.js is needed to read the app (its TypeScript compiler): install it") from None


def finish_reading(reader: subprocess.Popen[str]) -> dict[str, Any]:
    """read_app.mjs's account of the app; exits with its message when it could not read it."""
    try:
        out, err = reader.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        reader.kill()
        raise SystemExit("error: reading the app took more than 120 s") from None
    if reader.returncode != 0:
        raise SystemExit(f"error: could not read the app: {err.strip()}")
    return json.loads(out)


# --- Drafting prompt files ------------------------------------------------------------------------


def value_schema(value: dict[str, Any]) -> dict[str, Any]:
    """One parameter's (or one field's) schema: strings bounded, a string literal union as an enum, an object
    parameter as the object of the fields the prompt uses."""
    if value.get("fields"):
        return object_schema(value["fields"])
    if value.get("enum"):
        return {"type": "string", "enum": value["enum"]}
    if value["kind"] != "string":
        return {"type": value["kind"]}
    schema: dict[str, Any] = {"type": "string", "maxLength": MAX_STRING}
    if not value["optional"]:
        schema["minLength"] = 1  # a required text left empty is a bug in the caller, not a prompt
    return schema


def object_schema(values: dict[str, dict[str, Any]]) -> dict[str, Any]:
    required = [name for name, value in values.items() if not value["optional"]]
    properties = {name: value_schema(value) for name, value in values.items()}
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def used_fields(param: dict[str, Any], used: Collection[str]) -> dict[str, dict[str, Any]]:
    """The fields of an object parameter the prompt uses (`plan.subject`): only those are sent."""
    return {name: field for name, field in (param.get("fields") or {}).items() if f"{param['name']}.{name}" in used}


def input_schema(function: dict[str, Any], used: list[str]) -> dict[str, Any]:
    values = {param["name"]: {**param, "fields": used_fields(param, used)} for param in function["params"]}
    return object_schema({name: value for name, value in values.items() if name in used})


def draft(function: dict[str, Any], service: Path) -> Draft:
    """The prompt file for one exported function's Gemini call; with TODOs when it cannot be translated."""
    call = function["call"]
    name = function["name"]
    result = Draft(function=name, prompt_id=kebab(name), text="", todo=list(call.get("todo", [])))
    front: dict[str, Any] = {"description": f"{name} of the app ({service.as_posix()}), served by the backend."}
    model = call.get("model")
    if isinstance(model, str) and model.startswith(RETIRED_MODELS):
        result.notes.append(f"{name}: the app's model {model} is shut down; the GEMINI_MODEL setting applies")
    elif isinstance(model, str):
        front["model"] = model
    config = {key: value for key, value in (call.get("config") or {}).items() if value is not None}
    if config:
        front["config"] = config
    front["input"] = {"schema": input_schema(function, call.get("used", []))}
    schema = call.get("schema") or call.get("schemaFromType")
    if call.get("schemaFromType") and not call.get("schema"):
        result.notes.append(
            f"{name}: the call sent no responseSchema; the output schema is the function's return type "
            f"{function['resultText']}"
        )
    if call.get("mimeType") == "application/json" and schema:
        front["output"] = {"format": "json", "schema": schema}
        result.json_output = True
    elif call.get("mimeType") not in (None, "text/plain"):
        result.todo.append(f"{name}: responseMimeType {call.get('mimeType')!r} has no output schema to check")
    else:
        front["output"] = {"format": "text"}
    header = [f"# Drafted by scripts/patch_frontend.py from {service.as_posix()}, {name}(): review it, then keep it."]
    if not result.todo:
        header.append(f"# POST /api/{result.prompt_id}; the app's {name} now calls it.")
    else:
        header += [
            "# TODO: not served yet (the loader reads only *.prompt). What could not be translated faithfully:",
            *(f"# TODO: {item}" for item in result.todo),
            "# Write what is missing, rename this file to .prompt, run scripts/gen_client.py and point the app's",
            f"# {name} in geminiService.ts at the generated function.",
        ]
    body = []
    if call.get("system"):
        body += ['{{role "system"}}', call["system"].strip(), ""]
    body += ['{{role "user"}}', (call.get("contents") or "TODO: the prompt text").strip()]
    dumped = yaml.safe_dump(front, sort_keys=False, allow_unicode=True, width=110)
    result.text = "---\n" + "\n".join(header) + "\n" + dumped + "---\n" + "\n".join(body) + "\n"
    return result


# --- The new service --------------------------------------------------------------------------------

DELTAS_HELPER = """
/** A streamed answer as an async generator of its text, as the app's own function gave it. */
async function* deltas(start: (onDelta: (text: string) => void) => Promise<unknown>): AsyncGenerator<string, void> {
  const pieces: string[] = [];
  let wake: (() => void) | undefined;
  let done = false;
  let failure: unknown;
  start((text) => {
    pieces.push(text);
    wake?.();
  }).then(
    () => {
      done = true;
      wake?.();
    },
    (error: unknown) => {
      failure = error ?? new Error('The stream failed.');
      done = true;
      wake?.();
    },
  );
  for (;;) {
    const piece = pieces.shift();
    if (piece !== undefined) {
      yield piece;
    } else if (done) {
      break;
    } else {
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
  }
  if (failure !== undefined) throw failure;
}
"""

NULLS_HELPER = """
/** The backend answers null for a field the model left out; the app's types leave such a field out. */
const withoutNulls = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(withoutNulls);
  if (typeof value !== 'object' || value === null) return value;
  return Object.fromEntries(
    Object.entries(value).filter(([, item]) => item !== null).map(([key, item]) => [key, withoutNulls(item)]),
  );
};
"""


def declaration(function: dict[str, Any], body: list[str]) -> str:
    """The function with its exact old signature and a new body."""
    name, params, ret = function["name"], function["paramsText"], function["returnText"]
    asynchronous = "async " if function["async"] else ""
    inner = "".join(f"  {line}\n" if line else "\n" for line in body)
    if function["style"] == "function" or function["generator"]:
        star = "*" if function["generator"] else ""
        if function["style"] == "function":
            generic = function["typeParameters"]
            return f"export {asynchronous}function{star} {name}{generic}({params}): {ret} {{\n{inner}}}\n"
        return f"export const {name} = {asynchronous}function{star} ({params}): {ret} {{\n{inner}}};\n"
    return f"export const {name} = {asynchronous}{function['typeParameters']}({params}): {ret} => {{\n{inner}}};\n"


def argument(param: dict[str, Any], used: set[str]) -> str:
    """One entry of the generated client's input: the parameter, or the fields of it the prompt uses (the
    backend refuses fields its prompt does not declare, and an app's object may carry more than its type)."""
    name = param["name"]
    fields = used_fields(param, used)
    if not fields:
        return name
    return f"{name}: {{ " + ", ".join(f"{part}: {name}.{part}" for part in fields) + " }"


def unused(function: dict[str, Any], used: set[str]) -> list[str]:
    # `void x;` keeps tsconfigs with noUnusedParameters quiet: the signature must stay as it was.
    return [f"void {param['name']};" for param in function["params"] if param["name"] not in used]


def wrapper(function: dict[str, Any], prompt: Draft | None, gen: Any, helpers: set[str]) -> tuple[str, str | None]:
    """The new function of one old export, and a TODO line when it could not be kept working."""
    name = function["name"]
    call = function.get("call")
    comment = ""
    if call is None:
        if not function["touchesKey"]:
            return function["text"] + "\n", None  # a helper of the app's own: kept as it was
        if function["returnsBoolean"] and re.search(r"missing|absent|unset|without", name, re.I):
            body = ["// The key lives in the backend now: it is never missing in the browser.", "return false;"]
        elif function["returnsBoolean"] and re.search(r"^(has|is|can)", name):
            body = ["// The key lives in the backend now: the AI features are always available.", "return true;"]
        else:
            body = [f"throw new Error('{name} used the Gemini key in the browser; the patch left it out.');"]
            return declaration(function, unused(function, set()) + body), f"{name}: uses the key; replaced by an error"
        return declaration(function, unused(function, set()) + body), None
    assert prompt is not None
    if prompt.todo:
        message = (
            f"{name} is not served by the backend yet: finish {prompt.path.as_posix()} in the backend (see its TODO)."
        )
        body = [*unused(function, set()), f"throw new Error({json.dumps(message)});"]
        return declaration(function, body), None  # its draft lists what is missing
    client = gen.camel(prompt.prompt_id)
    used = set(call.get("used", []))
    values = "{ " + ", ".join(argument(param, used) for param in function["params"] if param["name"] in used) + " }"
    values = "{}" if values == "{  }" else values
    result_type = function["resultText"]
    stream = call.get("stream")
    body = unused(function, used | ({stream["callback"]} if stream and stream["form"] == "callback" else set()))
    if stream and stream["form"] == "generator":
        helpers.add("deltas")
        body.append(f"yield* deltas((onDelta) => backend.{client}Stream({values}, {{ onDelta }}));")
    elif stream:
        answer = f"await backend.{client}Stream({values}, {{ onDelta: {stream['callback']} }})"
        body.append(f"{answer};" if result_type in ("void", "undefined") else f"return {answer};")
    elif prompt.json_output:
        helpers.add("nulls")
        comment = "// Checked against the prompt's schema, which is the app's own response schema."
        body += [comment, f"return withoutNulls(await backend.{client}({values})) as {result_type};"]
    else:
        body.append(f"return backend.{client}({values});")
    return declaration(function, body), None


def new_service(info: dict[str, Any], drafts: dict[str, Draft], gen: Any, service: Path) -> tuple[str, list[str]]:
    """The app's new geminiService.ts: every old export, same signature, calling the backend."""
    helpers: set[str] = set()
    parts: list[str] = []
    todos: list[str] = []
    for function in info["functions"]:
        text, todo = wrapper(function, drafts.get(function["name"]), gen, helpers)
        parts.append(text)
        if todo:
            todos.append(todo)
    for other in info["otherExports"]:
        if other["touchesKey"]:
            todos.append(f"{other['name']}: held the Gemini key or client; removed (nothing in the browser needs it)")
        else:
            parts.append(other["text"] + "\n")
    code = "\n".join(parts)
    if "deltas" in helpers:
        code += DELTAS_HELPER
    if "nulls" in helpers:
        code += NULLS_HELPER
    imports = []
    for declared in info["imports"]:
        if declared["module"] == GENAI or declared["module"].startswith(f"{GENAI}/"):
            continue
        if not declared["names"] or any(re.search(rf"\b{re.escape(name)}\b", code) for name in declared["names"]):
            imports.append(declared["text"])
    head = (
        "/**\n"
        f" * The app's Gemini functions, now served by the backend: scripts/patch_frontend.py wrote this file from\n"
        f" * the old {service.name} (same exports, same signatures). The Gemini key is no longer in the browser;\n"
        f" * each function posts to the backend's prompts/<id>.prompt endpoint through {CLIENT_NAME}.\n"
        " */\n"
    )
    client = CLIENT_NAME.removesuffix(".ts")
    lines = [head, *(f"{line}\n" for line in imports), f"import * as backend from './{client}';\n", "\n", code]
    return "".join(lines), todos


def backend_client(service_text: str) -> str:
    """This project's client (frontend/services/geminiService.ts) without the seed app's own functions."""
    start = service_text.find(SEED_START)
    end = service_text.find(SEED_END)
    if start == -1 or end == -1:
        return service_text
    return service_text[:start] + service_text[end + len(SEED_END) :].lstrip("\n")


# --- The key's other places ----------------------------------------------------------------------


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


def patched_vite(text: str, cuts: list[list[int]]) -> str:
    """vite.config.ts without the `define` entries that put the key in the bundle (ranges from read_app.mjs).
    The ranges count UTF-16 code units, as JavaScript does."""
    units = text.encode("utf-16-le")
    for start, end in sorted(cuts, reverse=True):
        units = units[: start * 2] + units[end * 2 :]
    return units.decode("utf-16-le")


def patched_env(text: str) -> str:
    """A .env file without its Gemini key lines: Vite would put a VITE_ one in the bundle, and none is needed."""
    return "".join(line for line in text.splitlines(keepends=True) if not ENV_KEY_LINE.match(line))


# --- The plan ------------------------------------------------------------------------------------


@dataclass
class Plan:
    changes: list[Change]
    drafts: list[Draft]
    todos: list[str]
    notes: list[str]
    client_text: str  # this project's frontend/services/geminiService.ts after gen_client


def load_generator() -> tuple[Any, Any, int]:
    """gen_client and prompts, as this project's server uses them (so the drafts are checked as it loads them)."""
    sys.path[:0] = [str(PROJECT), str(PROJECT / "scripts")]
    try:
        import gen_client

        import prompts
        from settings import Settings
    except ImportError as exc:
        raise SystemExit(f"error: {exc}: run this with the project's Python (.venv/bin/python)") from None
    return gen_client, prompts, Settings.model_fields["prompt_input_max_chars"].default


def plan(app: Path, service: Path, info: dict[str, Any], modules: tuple[Any, Any, int]) -> Plan:
    """Every change the patch makes, computed without writing anything."""
    gen, prompts, max_chars = modules
    changes: list[Change] = []
    notes: list[str] = []
    old_service = read(app / service)
    already = gen.MARKER in old_service or f"./{CLIENT_NAME.removesuffix('.ts')}'" in old_service
    drafts: list[Draft] = []
    existing = prompts.load_prompts(prompts.PROMPTS_DIR, max_chars)
    loaded = dict(existing)
    if not already:
        for function in info["functions"]:
            if function.get("call") is None:
                continue
            prompt = draft(function, service)
            notes += prompt.notes
            on_disk = PROJECT / prompt.path
            if on_disk.exists():
                kept = read(on_disk)  # drafted before (and maybe edited since): kept as it is
                if kept != prompt.text:
                    where = prompt.path.as_posix()
                    notes.append(f"{where} exists and differs from this draft of {prompt.function}: kept as it is")
                prompt.text = kept
            elif not prompt.todo and prompt.prompt_id in existing:
                clash = f"prompts/ already has a prompt {prompt.prompt_id!r}"
                raise SystemExit(f"error: {clash}; rename it or the app's function {function['name']}")
            else:
                changes.append(Change(prompt.path, None, prompt.text, f"drafted from {function['name']}", True))
            if not prompt.todo:
                try:
                    loaded[prompt.prompt_id] = prompts.check_prompt_text(PROJECT / prompt.path, prompt.text, max_chars)
                except prompts.PromptError as exc:
                    raise SystemExit(f"error: the draft {prompt.path} does not load: {exc}") from None
            drafts.append(prompt)
    current = read(FRONTEND / "services" / "geminiService.ts")
    loaded = dict(sorted(loaded.items(), key=lambda item: item[1].file))  # in load_prompts' order, as gen_client
    client_text = current.split(gen.MARKER, 1)[0] + gen.client_code(loaded)
    if client_text != current:
        client_file = Path("frontend/services/geminiService.ts")
        changes.append(Change(client_file, current, client_text, "typed client for the drafts", in_project=True))

    folder = service.parent
    todos: list[str] = []
    if not already:
        by_function = {prompt.function: prompt for prompt in drafts}
        text, todos = new_service(info, by_function, gen, service)
        changes.append(Change(service, old_service, text, "the same exports, calling the backend"))
    client_path = folder / CLIENT_NAME
    old_client = read(app / client_path) if (app / client_path).exists() else None
    changes.append(Change(client_path, old_client, backend_client(client_text), "the typed backend client"))
    stream = folder / "stream.ts"
    old_stream = read(app / stream) if (app / stream).exists() else None
    changes.append(Change(stream, old_stream, read(FRONTEND / "services" / "stream.ts"), "reads streamed answers"))

    # Drop the dependency only when no other file still imports it: else the app would stop building.
    others = [
        path
        for path in source_files(app)
        if path.suffix in {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs"} and path != app / service
    ]
    drop_genai = not any(GENAI_IMPORT.search(read(path)) for path in others)
    if (app / "index.html").exists():
        index = read(app / "index.html")
        changes.append(Change(Path("index.html"), index, patched_index(index, drop_genai), "the key leaves the page"))
    if drop_genai and (app / "package.json").exists():
        package = read(app / "package.json")
        changes.append(Change(Path("package.json"), package, patched_package(package), f"{GENAI} is unused"))
    vite = info.get("vite")
    if vite and vite["cuts"]:
        text = read(app / vite["path"])
        changes.append(Change(Path(vite["path"]), text, patched_vite(text, vite["cuts"]), "no key in the bundle"))
    for env in sorted(app.glob(".env*")):
        if env.is_file() and env.name != ".env.example":
            text = read(env)
            changes.append(Change(Path(env.name), text, patched_env(text), "the key lives in the backend's .env"))

    # The new files read import.meta.env; without these types tsc and editors flag it.
    typed = [read(path) for path in source_files(app) if path != app / service]
    declared = any("ImportMetaEnv" in text or "vite/client" in text for text in typed)
    root = Path("src") if service.parts[0] == "src" else Path()
    if not declared and not (app / root / "vite-env.d.ts").exists():
        changes.append(Change(root / "vite-env.d.ts", None, read(FRONTEND / "vite-env.d.ts"), "types import.meta.env"))
    if not (app / ".env.example").exists():
        changes.append(Change(Path(".env.example"), None, read(FRONTEND / ".env.example"), "names the backend URL"))
    changes = [change for change in changes if change.new != change.old]
    return Plan(changes, drafts, todos, notes, client_text)


def diff(change: Change) -> str:
    old = (change.old or "").splitlines(keepends=True)
    new = change.new.splitlines(keepends=True)
    where = ("backend:" if change.in_project else "") + change.path.as_posix()
    before = "/dev/null" if change.old is None else f"a/{where}"
    lines = difflib.unified_diff(old, new, before, f"b/{where}")
    return mask("".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines))


def leftovers(app: Path, changes: list[Change]) -> list[str]:
    """file:line: text (keys masked) for each mention of the old key, as the app will be after `changes`."""
    planned = {app / change.path: change.new for change in changes if not change.in_project}
    found: list[str] = []
    for path in source_files(app):
        text = planned.get(path, read(path))
        for number, line in enumerate(text.splitlines(), start=1):
            if OLD_KEY.search(line) or KEY_VALUE.search(line) or (path.suffix != ".json" and GENAI_IMPORT.search(line)):
                found.append(f"  {path.relative_to(app).as_posix()}:{number}: {mask(line.strip())[:120]}")
    return found


def backup_folder(app: Path) -> Path:
    """A new folder for this run's backups; earlier runs' backups are never touched."""
    root = app / BACKUPS
    root.mkdir(exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        # The backups of index.html, .env.local and vite.config.ts may hold the old key: keep them out of git.
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


def apply(app: Path, changes: list[Change]) -> Path | None:
    ours = [change for change in changes if not change.in_project]
    folder = backup_folder(app) if any(change.old is not None for change in ours) else None
    for change in ours:  # back up everything first, so a failed write leaves every original saved
        if change.old is not None and folder is not None:
            (folder / change.path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(app / change.path, folder / change.path)
    for change in changes:
        write((PROJECT if change.in_project else app) / change.path, change.new)
    return folder


def report(app: Path, result: Plan) -> None:
    if result.drafts:
        print("\nPrompt files drafted in the backend (review each before you deploy):")
        for prompt in result.drafts:
            state = "TODO, not served" if prompt.todo else f"served as POST /api/{prompt.prompt_id}"
            print(f"  {prompt.path.as_posix()}: {prompt.function} ({state})")
    todos = [item for prompt in result.drafts for item in prompt.todo] + result.todos
    if todos:
        print("\nNot translated (left as TODO, never guessed):")
        print("\n".join(f"  {item}" for item in todos))
    if result.notes:
        print("\nNotes:")
        print("\n".join(f"  {item}" for item in result.notes))
    found = leftovers(app, result.changes)
    if not found:
        print("\nNo mention of the old in-browser key is left.")
        return
    print("\nStill mentions the old in-browser key or @google/genai (values masked): check each by hand.")
    print("\n".join(found))


def full_stack_advice(server: dict[str, Any]) -> str:
    return (
        f"{server['path']} is the app's own server and reads the key ({mask(server['key'])}): a full-stack export.\n"
        "The browser holds no key here, so nothing in it is patched. Instead, either point that server's Gemini\n"
        "routes at this backend (POST /api/<id> per prompts/<id>.prompt; move each call's prompt into a prompt\n"
        "file) and remove GEMINI_API_KEY from its environment, or drop its Gemini routes and let the browser call\n"
        "this backend. Keep the key in one place only: this backend's .env."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", type=Path, help="the frontend's folder (the one with index.html and package.json)")
    parser.add_argument("--apply", action="store_true", help="write the changes (default: only show them)")
    parser.add_argument("--typescript", type=Path, help="a typescript 5.x/6.x package folder (default: the app's)")
    args = parser.parse_args(argv)
    app: Path = args.app.resolve()
    if not app.is_dir() or not (app / "package.json").is_file():
        print(f"error: {args.app} does not look like an AI Studio app: it has no package.json.", file=sys.stderr)
        return 2
    service = next((path for path in SERVICES if (app / path).is_file()), None)
    reader = start_reading(app, service, args.typescript)
    try:
        modules = load_generator()
    finally:
        info = finish_reading(reader)
    if info.get("server"):
        print(full_stack_advice(info["server"]), file=sys.stderr)
        return 3
    if service is None:
        wanted = " or ".join(path.as_posix() for path in SERVICES)
        print(f"error: {args.app} does not look like an AI Studio app: it has no {wanted}.", file=sys.stderr)
        return 2

    result = plan(app, service, info, modules)
    if not result.changes:
        print(f"Nothing to do: {args.app} already uses the backend.")
        report(app, result)
        return 0
    for change in result.changes:
        print(diff(change), end="")
    summary = "\n".join(
        f"  {'backend: ' if change.in_project else ''}{change.path.as_posix()}: {change.why}"
        for change in result.changes
    )
    if not args.apply:
        print(f"\nDry run, nothing written. With --apply this changes:\n{summary}")
    else:
        folder = apply(app, result.changes)
        print(f"\nChanged:\n{summary}")
        if folder is not None:
            print(f"Originals saved in {folder}: they may hold your old key; delete them once the app works.")
    if any(change.path == Path("package.json") for change in result.changes):
        print(f"Run `npm install` afterwards so package-lock.json forgets {GENAI}.")
    report(app, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
{% endraw -%}
