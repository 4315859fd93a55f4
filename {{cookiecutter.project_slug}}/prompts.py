"""The prompt files: each `prompts/<id>.prompt` is one endpoint, `POST /api/<id>`.

A file is Dotprompt (YAML front matter + Handlebars body), the format of Genkit and of Firebase AI Logic's
server prompt templates, parsed and rendered with Google's `dotpromptz`. Every file is read and checked
once, at start-up: a file that is wrong stops the server with one line naming it and the problem, so a
backend never serves half of its prompts. Per request there is only a compiled render (no parsing).
"""

import asyncio
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotpromptz import Dotprompt, DotpromptError, picoschema_to_json_schema

# The compiled template and message splitting Dotprompt's own render uses. Its public render re-resolves
# the front matter (Picoschema, model config) on every call: 0.29 ms CPU against 0.06 ms for these two.
# The pin in requirements.txt keeps these names; the tests render every prompt.
from dotpromptz._helpers import BUILTIN_HELPERS
from dotpromptz._parse import to_messages
from dotpromptz._typing import Role, TextPart
from dotpromptz_handlebars import EscapeFunction, Handlebars, StrictModeError
from pydantic import BaseModel, TypeAdapter, ValidationError

from schema_types import SchemaError, TypeBuilder, model_name
from schemas import CallSpec, GenerationConfig

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
PROMPT_ID = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")  # one path segment: /api/<id>
FRONT_MATTER_KEYS = {"name", "description", "model", "config", "input", "output"}
SAMPLES = {"string": "x", "integer": 1, "number": 1.0, "boolean": True}


class PromptError(Exception):
    """A prompt file that cannot be served; str() is the one line start-up stops with."""


class TextAnswer(BaseModel):
    """The answer of a prompt whose output format is text."""

    text: str


@dataclass(frozen=True, eq=False)
class Prompt:
    id: str
    file: str  # as shown in messages: prompts/<id>.prompt
    description: str
    call: CallSpec
    input_schema: dict[str, Any]  # JSON Schema, as the file says (Picoschema converted)
    input_model: type[BaseModel]  # the request body: exactly the prompt's input schema
    response_model: Any  # what the endpoint answers, for validation and OpenAPI
    answer: TypeAdapter[Any]
    example: dict[str, Any] | None  # the input schema's first `examples` entry (doctor --generate)
    _render: Callable[..., str]

    def messages(self, values: dict[str, Any]) -> tuple[str, str]:
        """The system instruction and the user message for these (validated) input values. Values are
        data: Handlebars prints them, never evaluates them, so template braces in a value reach Gemini as
        typed."""
        return _split(self._render(values))

    def parse_answer(self, text: str) -> Any:
        """Gemini's answer, validated again (structured output makes a fitting answer likely, not certain).
        Raises pydantic's ValidationError."""
        if self.call.response_schema is None:
            return self.answer.validate_python({"text": text})
        return self.answer.validate_json(text)


def _split(rendered: str) -> tuple[str, str]:
    system: list[str] = []
    user: list[str] = []
    for message in to_messages(rendered):
        if message.role not in (Role.SYSTEM, Role.USER):
            raise PromptError(f"a {message.role.value} message: only system and user messages are supported")
        for part in message.content:
            if not isinstance(part, TextPart):
                raise PromptError("only text is supported in messages (no media, sections or history)")
            (system if message.role == Role.SYSTEM else user).append(part.text.strip())
    return "\n\n".join(filter(None, system)), "\n\n".join(filter(None, user))


def _handlebars(strict: bool) -> Handlebars:
    # No HTML escaping: this text goes to a model, not a browser; `<` and `&` must arrive as typed.
    handlebars = Handlebars(escape_fn=EscapeFunction.NO_ESCAPE, strict=strict)
    for name, helper in BUILTIN_HELPERS.items():
        handlebars.register_helper(name, helper)
    return handlebars


def _sample(schema: dict[str, Any]) -> Any:
    """A value of this schema, to render the body once at start-up with every declared variable set."""
    if "anyOf" in schema:
        return _sample(next(option for option in schema["anyOf"] if option != {"type": "null"}))
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next(item for item in kind if item != "null") if isinstance(kind, list) else kind
    if kind == "object":
        return {name: _sample(sub) for name, sub in schema.get("properties", {}).items()}
    if kind == "array":
        return [_sample(schema.get("items", {}))]
    return SAMPLES.get(kind)


def _json_schema(schema: Any) -> dict[str, Any] | None:
    """Picoschema (or JSON Schema, passed through) to JSON Schema. Dotprompt's conversion is async (it may
    resolve named schemas); uvicorn imports the app inside its event loop, so it runs on a loop of its own."""
    if schema is None:
        return None
    with ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, picoschema_to_json_schema(schema)).result()


def load_prompt(path: Path, max_chars: int, render: Handlebars, check: Handlebars, text: str | None = None) -> Prompt:
    """One prompt file; `text` checks a file's text before it is written (scripts/patch_frontend.py's drafts)."""
    source = path.read_text(encoding="utf-8") if text is None else text
    try:
        parsed = Dotprompt().parse(source, source_name=path.name)
    except DotpromptError as exc:
        raise PromptError(str(exc).replace(f" in {path.name}", "")) from None
    unknown = sorted(set(parsed.raw or {}) - FRONT_MATTER_KEYS)
    if unknown:
        raise PromptError(f"unknown front-matter key {unknown[0]!r} (known: {', '.join(sorted(FRONT_MATTER_KEYS))})")
    prompt_id = parsed.name or path.stem
    if not PROMPT_ID.fullmatch(prompt_id):
        raise PromptError(f"id {prompt_id!r} is not a valid path segment (lowercase letters, digits and '-')")
    try:
        config = GenerationConfig.model_validate(parsed.config or {})
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        problem = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise PromptError(f"config: {where}: {problem}") from None
    output_format = parsed.output.format if parsed.output else None
    output_schema = _json_schema(getattr(parsed.output, "schema", None) if parsed.output else None)
    if output_format not in (None, "json", "text") or output_format == "json" and output_schema is None:
        raise PromptError("output: format must be json (with a schema) or text")
    input_schema = _json_schema(getattr(parsed.input, "schema", None) if parsed.input else None)
    if input_schema is None or input_schema.get("type") != "object":
        raise PromptError("input: a schema of an object is required (it is the request body)")
    base = model_name(prompt_id)
    try:
        input_model = TypeBuilder(f"{base}Input", is_input=True, max_chars=max_chars).build(input_schema)
    except SchemaError as exc:
        raise PromptError(f"input schema: {exc}") from None
    response_model: Any = TextAnswer
    if output_format == "text" or output_schema is None:
        output_schema = None
    else:
        try:
            response_model = TypeBuilder(f"{base}Output", is_input=False).build(output_schema)
        except SchemaError as exc:
            raise PromptError(f"output schema: {exc}") from None
    try:
        check.compile(parsed.template)(_sample(input_schema))
        _split(render.compile(parsed.template)(_sample(input_schema)))
    except StrictModeError as exc:
        raise PromptError(f"the body uses {exc.path!r}, which the input schema does not declare") from None
    except (ValueError, TypeError) as exc:  # the body's Handlebars does not parse or render
        raise PromptError(f"body: {exc}") from None
    examples = input_schema.get("examples")
    model = parsed.model.removeprefix("googleai/") if parsed.model else None  # Genkit writes googleai/<model>
    return Prompt(
        id=prompt_id,
        file=f"{path.parent.name}/{path.name}",
        description=parsed.description or f"Calls Gemini with {path.name}.",
        call=CallSpec(name=prompt_id, model=model, config=config, response_schema=output_schema),
        input_schema=input_schema,
        input_model=input_model,
        response_model=response_model,
        answer=TypeAdapter(response_model),
        example=examples[0] if isinstance(examples, list) and examples else None,
        _render=render.compile(parsed.template),
    )


def load_prompts(folder: Path, max_chars: int) -> dict[str, Prompt]:
    """Every prompt of the folder, by id; raises PromptError naming the file of the first problem."""
    render, check = _handlebars(strict=False), _handlebars(strict=True)
    prompts: dict[str, Prompt] = {}
    for path in sorted(folder.glob("*.prompt")):
        try:
            prompt = load_prompt(path, max_chars, render, check)
        except PromptError as exc:
            raise PromptError(f"{folder.name}/{path.name}: {exc}") from None
        if prompt.id in prompts:
            raise PromptError(f"{prompt.file}: id {prompt.id!r} is already used by {prompts[prompt.id].file}")
        prompts[prompt.id] = prompt
    if not prompts:
        raise PromptError(f"{folder}: no .prompt files: there would be nothing to serve")
    return prompts


def load_prompts_or_exit(folder: Path | None, max_chars: int) -> dict[str, Prompt]:
    """load_prompts, or stop the process with one line naming the file and the problem."""
    try:
        return load_prompts(folder or PROMPTS_DIR, max_chars)
    except PromptError as exc:
        raise SystemExit(f"Prompt error: {exc}") from None


def check_prompt_text(path: Path, text: str, max_chars: int) -> Prompt:
    """A prompt file's text as the server would load it, before it is written; raises PromptError."""
    return load_prompt(path, max_chars, _handlebars(strict=False), _handlebars(strict=True), text=text)
