"""Request and response bodies of the API, the schema Gemini must answer in, and what one call returns."""

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter

# What a client sends is checked exactly as the OpenAPI schema says, and trimmed only afterwards, so
# the docs and the API agree on every input. "Not blank" is a pattern (a character that is not an
# ASCII space or control) spelt without \s, which JSON Schema, Python and Rust each read differently.
ASCII_SPACE = " \t\n\r\x0b\x0c"
Trimmed = AfterValidator(lambda text: text.strip(ASCII_SPACE))
TitleIn = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"[^\x00-\x20\x7f]"), Trimmed]
DescriptionIn = Annotated[str, StringConstraints(max_length=2000), Trimmed]


class TaskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo in a field name is an error, not ignored

    title: TitleIn
    description: DescriptionIn | None = None


# What Gemini answers is trimmed first, then checked: stray spaces from a model are not an error.
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class SubTask(BaseModel):
    title: Title
    description: Annotated[str, StringConstraints(strip_whitespace=True, max_length=1000)] | None = None


SubTasks = Annotated[list[SubTask], Field(min_length=2, max_length=5)]

# Built once: validating the model's answer is then one call, with no per-request schema work.
SUBTASKS_ADAPTER: TypeAdapter[list[SubTask]] = TypeAdapter(SubTasks)


def _inline_refs(schema: Any, defs: dict[str, Any]) -> Any:
    """Replace `$ref`s by their definitions: Gemini's schema support is a subset of JSON Schema."""
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inline_refs(defs[schema["$ref"].rsplit("/", 1)[-1]], defs)
        inlined = {key: _inline_refs(value, defs) for key, value in schema.items() if key not in ("$defs", "title")}
        if "properties" in schema:  # property names are data, not the "title" annotation dropped above
            inlined["properties"] = {name: _inline_refs(sub, defs) for name, sub in schema["properties"].items()}
        return inlined
    if isinstance(schema, list):
        return [_inline_refs(item, defs) for item in schema]
    return schema


def _response_json_schema() -> dict[str, Any]:
    schema = SUBTASKS_ADAPTER.json_schema()
    return _inline_refs(schema, schema.get("$defs", {}))


# The JSON Schema of the answer, derived from SubTasks above so the two cannot drift apart.
RESPONSE_JSON_SCHEMA: dict[str, Any] = _response_json_schema()


@dataclass(frozen=True)
class TokenUsage:
    """What Gemini reported it spent on one call (its `usageMetadata`), or the sum over a request's attempts."""

    prompt: int = 0
    answer: int = 0  # candidatesTokenCount: the text it answered
    thinking: int = 0  # thoughtsTokenCount: billed like answer tokens, never shown
    total: int = 0

    def __add__(self, other: "TokenUsage") -> "TokenUsage":
        return TokenUsage(
            prompt=self.prompt + other.prompt,
            answer=self.answer + other.answer,
            thinking=self.thinking + other.thinking,
            total=self.total + other.total,
        )

    def as_fields(self) -> dict[str, int]:
        return {"prompt": self.prompt, "answer": self.answer, "thinking": self.thinking, "total": self.total}


@dataclass(frozen=True)
class Answer:
    """One successful Gemini call: the answer's text (JSON, still to be validated) and what it cost."""

    text: str
    usage: TokenUsage | None  # None when Gemini reported no usage
