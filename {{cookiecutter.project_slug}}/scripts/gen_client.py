{% raw -%}
"""Write the typed client for every prompt into frontend/services/geminiService.ts.

    python scripts/gen_client.py          # rewrite the generated part of the file from prompts/
    python scripts/gen_client.py --check  # exit 1 when the file is out of date with prompts/ (the tests run it)

Each prompts/<id>.prompt becomes one exported async function (`breakdown-task` -> `breakdownTask(input)`),
with TypeScript types for its input and output derived from the prompt's schemas and a check of the answer's
shape at run time (the UI renders these fields: they are checked, not trusted). Only the part of the file
after the marker line is written; the part before it (backend URL, timeout, caller token, error messages, and
the app's own wrappers such as breakDownTaskWithAI) is kept as it is. Running it twice changes nothing.
"""

# ruff: noqa: T201 - a command-line tool: printing is its output

import argparse
import json
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
SERVICE = PROJECT / "frontend" / "services" / "geminiService.ts"
MARKER = "// ---- Generated from prompts/ by `python scripts/gen_client.py`: do not edit below this line. ----\n"


def pascal(prompt_id: str) -> str:
    return "".join(word.capitalize() for word in prompt_id.split("-"))


def camel(prompt_id: str) -> str:
    name = pascal(prompt_id)
    return name[:1].lower() + name[1:]


def nullable(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The schema without its "or null", and whether null is allowed."""
    if "anyOf" in schema:
        others = [option for option in schema["anyOf"] if option.get("type") != "null"]
        rest = {key: value for key, value in schema.items() if key != "anyOf"}
        return {**rest, **others[0]}, True
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [item for item in kind if item != "null"]
        return {**schema, "type": kinds[0]}, "null" in kind
    return schema, False


def ts_type(schema: dict[str, Any], indent: str = "") -> str:
    schema, allows_null = nullable(schema)
    kind = schema.get("type")
    if "enum" in schema:
        text = " | ".join(json.dumps(value) for value in schema["enum"])
    elif kind == "string":
        text = "string"
    elif kind in ("integer", "number"):
        text = "number"
    elif kind == "boolean":
        text = "boolean"
    elif kind == "array":
        item = ts_type(schema.get("items", {}), indent)
        text = f"({item})[]" if "|" in item else f"{item}[]"
    elif kind == "object" and schema.get("properties"):
        required = set(schema.get("required", []))
        inner = indent + "  "
        fields = [
            f"{inner}{json.dumps(name) if not name.isidentifier() else name}{'' if name in required else '?'}: "
            f"{ts_type(sub, inner)};"
            for name, sub in schema["properties"].items()
        ]
        text = "{\n" + "\n".join(fields) + f"\n{indent}}}"
    else:
        text = "Record<string, unknown>" if kind == "object" else "unknown"
    return f"{text} | null" if allows_null else text


def guard(schema: dict[str, Any], value: str, depth: int = 0) -> str:
    """A TypeScript expression that is true when `value` fits `schema`."""
    schema, allows_null = nullable(schema)
    kind = schema.get("type")
    if "enum" in schema:
        check = f"({json.dumps(schema['enum'])} as unknown[]).includes({value})"
    elif kind == "string":
        check = f"typeof {value} === 'string'"
    elif kind in ("integer", "number"):
        check = f"typeof {value} === 'number'"
    elif kind == "boolean":
        check = f"typeof {value} === 'boolean'"
    elif kind == "array":
        item = f"item{depth}"
        each = guard(schema.get("items", {}), item, depth + 1)
        check = f"Array.isArray({value}) && {value}.every(({item}: unknown) => {each})"
    elif kind == "object":
        required = set(schema.get("required", []))
        parts = [f"isRecord({value})"]
        for name, sub in (schema.get("properties") or {}).items():
            field = f"{value}.{name}" if name.isidentifier() else f"{value}[{json.dumps(name)}]"
            if name in required:
                parts.append(guard(sub, field, depth + 1))
            else:  # left out, or null (as the backend sends it), or fitting
                fits = guard(nullable(sub)[0], field, depth + 1)
                parts.append(f"({field} === undefined || {field} === null || {fits})")
        check = " && ".join(parts)
    else:
        return "true"
    return f"({value} === null || {check})" if allows_null else f"({check})"


def client_code(prompts: dict[str, Any]) -> str:
    blocks = [MARKER]
    for prompt in prompts.values():
        name, types = camel(prompt.id), pascal(prompt.id)
        summary = prompt.description.strip().replace("*/", "* /")
        blocks.append(f"\n/** Input of {name}: the body of POST /api/{prompt.id} ({prompt.file}). */\n")
        blocks.append(f"export type {types}Input = {ts_type(prompt.input_schema)};\n")
        if prompt.call.response_schema is None:
            result, check = "string", "(isRecord(body) && typeof body.text === 'string')"
            value = "(body as { text: string }).text"  # checked just above
        else:
            blocks.append(f"\n/** Answer of {name}, checked against its schema before it is returned. */\n")
            blocks.append(f"export type {types}Output = {ts_type(prompt.call.response_schema)};\n")
            blocks.append(
                f"\nconst fits{types}Output = (body: unknown): boolean =>\n"
                f"  {guard(prompt.call.response_schema, 'body')};\n"
            )
            result, check, value = f"{types}Output", f"fits{types}Output(body)", f"body as {types}Output"
        checked = (
            f"  if (!{check}) {{\n"
            f"    throw new Error('The AI service sent an unexpected answer (not the shape {name} expects).');\n"
            f"  }}\n"
            f"  return {value};\n"
            "};\n"
        )
        blocks.append(
            f"\n/** {summary} Rejects with an Error whose message can be shown as is. */\n"
            f"export const {name} = async (input: {types}Input): Promise<{result}> => {{\n"
            f"  const body = await callBackend('/api/{prompt.id}', input);\n" + checked
        )
        blocks.append(
            f"\n/** {name}, streamed: `options.onDelta` gets Gemini's text as it is written; resolves with the\n"
            " * checked answer. Rejects with an Error whose message can be shown as is. */\n"
            f"export const {name}Stream = async (input: {types}Input, options: StreamCallOptions = {{}}): "
            f"Promise<{result}> => {{\n"
            f"  const body = await streamBackend('/api/{prompt.id}', input, options);\n" + checked
        )
    return "".join(blocks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date, write nothing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(PROJECT))  # prompts.py and settings.py live in the project folder
    from prompts import PROMPTS_DIR, PromptError, load_prompts
    from settings import Settings

    try:
        max_chars = Settings.model_fields["prompt_input_max_chars"].default
        prompts = load_prompts(PROMPTS_DIR, max_chars)
    except PromptError as exc:
        print(f"Prompt error: {exc}", file=sys.stderr)
        return 1
    current = SERVICE.read_text(encoding="utf-8")
    if MARKER not in current:
        where = SERVICE.relative_to(PROJECT)
        print(f"{where} has no marker line; add this line at its end:\n{MARKER}", file=sys.stderr)
        return 1
    wanted = current.split(MARKER, 1)[0] + client_code(prompts)
    if args.check:
        if wanted != current:
            print(f"{SERVICE.relative_to(PROJECT)} is out of date: run python scripts/gen_client.py", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        SERVICE.write_text(wanted, encoding="utf-8")
        print(f"wrote {SERVICE.relative_to(PROJECT)}: " + ", ".join(camel(name) for name in prompts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
{% endraw -%}
