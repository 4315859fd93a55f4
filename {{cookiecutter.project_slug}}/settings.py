"""Settings, read once from the environment and an optional `.env` file."""

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from caller_check import CallerSettings
from model_capabilities import thinking_problem


class Settings(CallerSettings):
    """The app's settings, and those of its caller check (CallerSettings, defined with the check)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    # The only secret. It stays on the server: never logged, never returned to a client.
    gemini_api_key: SecretStr = Field(min_length=1)
    gemini_model: str = "{{ cookiecutter.gemini_model }}"
    # How much Gemini 3 models think before answering; empty means the model's own default.
    # Thinking tokens are billed like answer tokens and add latency (google-genai only; see README).
    # Which levels each model accepts: model_capabilities.py, checked at start-up.
    gemini_thinking_level: Literal["minimal", "low", "medium", "high", ""] = "{{ cookiecutter.__thinking_level }}"
    # Unset means Google's endpoint; set it for a proxy, or for the fake Gemini in the tests.
    gemini_base_url: str | None = None
    # The most time one request may spend on Gemini, every attempt and back-off included.
    gemini_timeout_seconds: float = Field(default={{ cookiecutter.gemini_timeout_seconds }}, gt=0, le=600)
    # Attempts per request for transient failures (429, 5xx, dropped connections).
    gemini_max_attempts: int = Field(default=3, ge=1, le=10)
    # The back-off before the first retry when Gemini says nothing of when to come back; it doubles for each
    # further one (at most 4 s), jittered. The tests make it short: they count attempts, not seconds.
    gemini_retry_backoff_seconds: float = Field(default=0.25, ge=0, le=4)
    # Gemini calls one replica runs at once; past it, requests wait briefly, then get 503.
    gemini_max_concurrency: int = Field(default=64, ge=1, le=1024)
    # How long a request waits for one of those slots before its 503. At most 2 s: the timeouts around the
    # backend (uvicorn's graceful stop, Nginx, Compose) allow for 2 s more than GEMINI_TIMEOUT_SECONDS.
    gemini_queue_wait_seconds: float = Field(default=2, gt=0, le=2)
    # Seconds a stopping replica stays up, refusing new connections, after its last request (the
    # Dockerfile sets 2): the load balancer notices the refusal before the replica's address disappears.
    shutdown_drain_seconds: float = Field(default=0, ge=0, le=60)
    # The prompt files served as endpoints (prompts.py); unset means the prompts/ folder beside this file.
    prompts_dir: Path | None = None
    # The most characters a prompt's string input may hold when its schema sets no maxLength; 0 makes such
    # a string an error at start-up instead, so no endpoint ever accepts unbounded text.
    prompt_input_max_chars: int = Field(default=4000, ge=0, le=1_000_000)
    allowed_origins: Annotated[list[str], NoDecode] = ["{{ cookiecutter.allowed_origins.split(',') | join('", "') }}"]

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def split_origins(cls, value: object) -> object:
        # ALLOWED_ORIGINS=http://a.example,http://b.example is easier to write than JSON.
        return [origin.rstrip("/") for origin in split_commas(value)] if isinstance(value, str) else value


def split_commas(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def load_settings() -> Settings:
    """Read the settings, or stop the process with one line that says what to fix."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'_'.join(str(part) for part in error['loc']).upper()} "
            + ("is not set" if error["type"] in ("missing", "too_short", "string_too_short") else error["msg"])
            for error in exc.errors()
        )
        raise SystemExit(f"Configuration error: {problems}. Set it in the environment or in .env.") from None
    # Gemini answers every call with 400 for a level its model refuses: stop now, naming both settings.
    problem = thinking_problem(settings.gemini_model, settings.gemini_thinking_level)
    if problem:
        raise SystemExit(
            f"Configuration error: GEMINI_THINKING_LEVEL={settings.gemini_thinking_level} does not go with "
            f"GEMINI_MODEL={settings.gemini_model} ({problem}). Change one of them in the environment or in .env."
        )
    return settings
