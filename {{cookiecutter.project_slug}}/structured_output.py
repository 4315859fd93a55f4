"""The response schema as Gemini is sent it: only the JSON Schema keywords Google documents for structured
output (https://ai.google.dev/gemini-api/docs/structured-output, "JSON Schema support", read 2026-12-02).

Others (minLength, maxLength, pattern, default, examples, ...) are at best ignored by Gemini and at worst
refused by some models. Nothing is lost: every answer is validated against the prompt's full schema here
(prompts.py), bounds included.
"""

from typing import Any

DOCUMENTED = {
    "type", "title", "description", "enum", "format", "anyOf", "$ref", "$defs",  # any type
    "minimum", "maximum",  # number, integer
    "items", "prefixItems", "minItems", "maxItems",  # array
    "properties", "required", "additionalProperties", "propertyOrdering",  # object
}  # fmt: skip


def gemini_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    """A copy of `schema` with only the documented keywords, at every depth."""
    if schema is None:
        return None
    return _reduce(schema)


def _reduce(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    reduced: dict[str, Any] = {}
    for key, value in schema.items():
        if key not in DOCUMENTED:
            continue
        if key in ("properties", "$defs"):
            value = {name: _reduce(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            value = _reduce(value)
        elif key in ("anyOf", "prefixItems"):
            value = [_reduce(sub) for sub in value]
        reduced[key] = value
    return reduced
