"""What one Gemini call sends and what it returns: the types both SDK adapters and the prompt code share."""

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class GenerationConfig(BaseModel):
    """A prompt's `config:` block: the Gemini generation settings a prompt file may set, spelt as in
    Gemini's API. Any other key stops start-up: a typo must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, alias_generator=to_camel, populate_by_name=True)

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    top_k: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    stop_sequences: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    # Unset: GEMINI_THINKING_LEVEL applies (google-genai only, like that setting).
    thinking_level: Literal["minimal", "low", "medium", "high"] | None = None


@dataclass(frozen=True, eq=False)  # one per prompt, built at start-up; adapters cache SDK objects per instance
class CallSpec:
    """What stays the same for every call of one prompt."""

    name: str  # the prompt id, for logs
    model: str | None  # None: the GEMINI_MODEL setting
    config: GenerationConfig
    response_schema: dict[str, Any] | None  # JSON Schema of a JSON answer; None: the answer is text


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
    """One successful Gemini call: the answer's text (JSON still to be validated, or text) and what it cost."""

    text: str
    usage: TokenUsage | None  # None when Gemini reported no usage
    model_version: str = ""  # the model that answered, as Gemini reports it (modelVersion); "" if it did not


@dataclass(frozen=True)
class Piece:
    """One chunk of a streamed answer: the next bit of its text (may be empty) and the usage Gemini reported
    with it, which is complete only in the last chunk."""

    text: str
    usage: TokenUsage | None
