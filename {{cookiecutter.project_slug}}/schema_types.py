"""Pydantic types built once, at start-up, from the JSON Schemas in the prompt files.

FastAPI validates each request body with them and lists them in OpenAPI exactly as the prompt says;
each answer is checked by one prebuilt TypeAdapter. No schema work happens per request.
Only the part of JSON Schema that both Gemini and these checks understand is accepted: anything else
stops start-up, rather than being silently left unchecked.
"""

import keyword
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, create_model

# What a client sends is checked exactly as the OpenAPI schema says, and trimmed only afterwards, so the
# docs and the API agree on every input. What Gemini answers is trimmed first: stray spaces are no error.
ASCII_SPACE = " \t\n\r\x0b\x0c"
Trimmed = AfterValidator(lambda text: text.strip(ASCII_SPACE))
# Dotprompt splits a rendered prompt into messages at these markers: in a value, one would let a caller
# start a system message of their own. Values are data; this is the one sequence they may not hold.
MARKER = "<<<dotprompt:"


def _no_marker(text: str) -> str:
    if MARKER in text:
        raise ValueError(f"must not contain {MARKER!r}")
    return text


NoMarker = AfterValidator(_no_marker)

ANNOTATIONS = {"title", "description", "default", "examples", "$schema"}
KEYWORDS = {
    "type": set(),
    "string": {"minLength", "maxLength", "pattern", "enum", "format"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "enum"},
    "boolean": set(),
    "array": {"items", "minItems", "maxItems"},
    "object": {"properties", "required", "additionalProperties", "propertyOrdering"},
}
SCALARS = {"string": str, "integer": int, "number": float, "boolean": bool}
RESERVED_NAMES = set(dir(BaseModel))


class SchemaError(ValueError):
    """A schema this module cannot turn into a checked type; the message names where."""


def model_name(*parts: str) -> str:
    return "".join(word[:1].upper() + word[1:] for part in parts for word in re.split(r"[^A-Za-z0-9]+", part) if word)


class TypeBuilder:
    """Turns one prompt's input or output schema into a type. `max_chars` bounds input strings that
    have no maxLength of their own (0: such a string is an error)."""

    def __init__(self, name: str, *, is_input: bool, max_chars: int = 0) -> None:
        self._name = name
        self._is_input = is_input
        self._max_chars = max_chars

    def build(self, schema: Any, path: str = "") -> Any:
        where = path or "the schema"
        if not isinstance(schema, dict):
            raise SchemaError(f"{where}: a schema must be a mapping")
        if "anyOf" in schema:  # only the "this, or null" form, which pydantic writes for optional fields
            options = schema["anyOf"]
            others = [option for option in options if option != {"type": "null"}]
            if len(options) != 2 or len(others) != 1:
                raise SchemaError(f"{where}: anyOf is only supported as a schema or null")
            rest = {key: value for key, value in schema.items() if key != "anyOf"}
            return self.build({**rest, **others[0]}, path) | None
        kind = schema.get("type")
        nullable = isinstance(kind, list) and "null" in kind
        if isinstance(kind, list):
            kinds = [item for item in kind if item != "null"]
            if len(kinds) != 1:
                raise SchemaError(f"{where}: type must be one type, optionally with null")
            kind = kinds[0]
        if kind not in SCALARS and kind not in ("array", "object"):
            raise SchemaError(f"{where}: unsupported type {kind!r}")
        unknown = set(schema) - ANNOTATIONS - {"type"} - KEYWORDS[kind]
        if unknown:
            raise SchemaError(f"{where}: unsupported schema keyword {sorted(unknown)[0]!r} for type {kind}")
        built = self._build_kind(kind, schema, where, path)
        return built | None if nullable else built

    def _build_kind(self, kind: str, schema: dict[str, Any], where: str, path: str) -> Any:
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values:
                raise SchemaError(f"{where}: enum must be a non-empty list")
            return Literal[tuple(values)]  # type: ignore[valid-type]
        if kind == "string":
            return self._string(schema, where)
        if kind in ("integer", "number"):
            limits = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}
            bounds = {arg: schema[key] for arg, key in limits.items() if key in schema}
            return Annotated[SCALARS[kind], Field(**bounds)] if bounds else SCALARS[kind]
        if kind == "boolean":
            return bool
        if kind == "array":
            if "items" not in schema:
                raise SchemaError(f"{where}: an array needs items")
            item = self.build(schema["items"], f"{path}[]")
            sizes = {"min_length": schema.get("minItems"), "max_length": schema.get("maxItems")}
            return Annotated[list[item], Field(**{key: value for key, value in sizes.items() if value is not None})]
        return self._object(schema, where, path)

    def _string(self, schema: dict[str, Any], where: str) -> Any:
        max_length = schema.get("maxLength")
        if max_length is None and self._is_input:
            if not self._max_chars:
                raise SchemaError(f"{where}: a string input needs a maxLength (or set PROMPT_INPUT_MAX_CHARS)")
            max_length = self._max_chars
        constraints = StringConstraints(
            strip_whitespace=not self._is_input,
            min_length=schema.get("minLength"),
            max_length=max_length,
            pattern=schema.get("pattern"),
        )
        return Annotated[str, constraints, NoMarker, Trimmed] if self._is_input else Annotated[str, constraints]

    def _object(self, schema: dict[str, Any], where: str, path: str) -> Any:
        properties = schema.get("properties")
        if not isinstance(properties, dict) or not properties:
            if self._is_input:
                raise SchemaError(f"{where}: an input object needs properties")
            return dict[str, Any]
        required = set(schema.get("required", []))
        if required - set(properties):
            raise SchemaError(f"{where}: required names {sorted(required - set(properties))[0]!r}, not a property")
        fields: dict[str, Any] = {}
        for index, (name, sub) in enumerate(properties.items()):
            annotation = self.build(sub, f"{path}.{name}" if path else name)
            info: dict[str, Any] = {"description": sub.get("description")} if isinstance(sub, dict) else {}
            if name not in required:
                info["default"] = sub.get("default") if isinstance(sub, dict) else None
                annotation = annotation | None
            safe = name.isidentifier() and not keyword.iskeyword(name) and not name.startswith("_")
            if not safe or name in RESERVED_NAMES:  # any JSON name works: the model stores it under an alias
                info.update(alias=name, title=name)
                name = f"field_{index}"
            fields[name] = (annotation, Field(**info))
        # Input: a misspelt field is an error, not ignored. Output: extra fields Gemini adds are dropped.
        config = ConfigDict(
            extra="forbid" if self._is_input else "ignore",
            json_schema_extra={"examples": schema["examples"]} if "examples" in schema else None,
        )
        return create_model(model_name(self._name, path or ""), __config__=config, **fields)
