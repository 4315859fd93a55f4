"""Check, before going live, that Gemini answers this server with its key and model.

    python doctor.py              # settings, Gemini reachable, key accepted, model served, every prompt
                                  # file parses and its model and config fit, and the spend guard's store
                                  # with today's spend when there is one (costs no tokens)
    python doctor.py --generate   # and one real call per prompt through the API's own code path, with the
                                  # first `examples` entry of its input schema (costs a few tokens)

It reads the same settings as the app (the environment and `.env`), prints one line per check and
stops at the first failure, saying what to fix. Exit status: 0 all good, 1 a check failed, 2 bad usage.
In the stack: `docker compose run --rm backend python doctor.py`.
"""

import argparse
import asyncio
import json
import sys
from typing import Any

from errors import UpstreamError
from gemini_calls import GeminiCalls
from gemini_client import SDK, GeminiClient
from model_capabilities import row_for, thinking_problem
from prompts import PROMPTS_DIR, Prompt, PromptError, load_prompts
from request_log import collecting
from settings import Settings, load_settings
from spend_guard import SpendGuard

CURRENT_MODELS = "gemini-3.5-flash-lite, gemini-3.8-flash or gemini-3.1-flash-lite"  # checked 2026-11-27
# Since 2026 AI Studio issues "auth keys" (AQ. ...) and Gemini refuses unrestricted standard keys (401).
KEY_HELP = (
    "create a key at https://aistudio.google.com/apikey (an auth key; a standard key must be restricted to "
    "the Generative Language API) and put it in .env"
)


class CheckFailed(Exception):
    """A check failed; its message says what to fix."""


class Doctor:
    def __init__(self, secret: str = "", model: str = "") -> None:
        self._secret = secret
        self._model = model

    def model_version(self, asked: str, served: str) -> None:
        """The model that really answered; a warning when Gemini re-routed the call to another one."""
        asked = asked.removeprefix("models/")
        if served and not served.startswith(asked):
            print(
                f"WARN  model: {asked} was answered by {served} (deprecated ids are re-routed and billed at "
                "the serving model's price): set GEMINI_MODEL to a current model",
                flush=True,
            )
        else:
            print(f"      answered by {served or 'an unreported model version'}", flush=True)

    def report(self, passed: bool, check: str, verdict: str) -> None:
        line = f"{'ok  ' if passed else 'FAIL'}  {check}: {verdict}"
        if self._secret:  # belt and braces: no message, however it was built, shows the key
            line = line.replace(self._secret, "***")
        print(line, flush=True)

    def fail(self, check: str, verdict: str) -> CheckFailed:
        self.report(False, check, verdict)
        return CheckFailed(verdict)

    async def examine(self, settings: Settings, generate: bool) -> None:
        client = GeminiClient(settings)
        try:
            await self.check_model(client, settings)
            prompts = await self.check_prompts(client, settings)
            await self.check_spend()
            if generate:
                calls = GeminiCalls(client, settings)
                for prompt in prompts.values():
                    await self.generate(calls, prompt)
        finally:
            await client.aclose()

    async def check_prompts(self, client: GeminiClient, settings: Settings) -> dict[str, Prompt]:
        """Every prompt file parses, and its model and config fit as far as can be told without a call."""
        try:
            prompts = load_prompts(settings.prompts_dir or PROMPTS_DIR, settings.prompt_input_max_chars)
        except PromptError as exc:
            raise self.fail("prompts", str(exc)) from None
        for prompt in prompts.values():
            model = prompt.call.model or settings.gemini_model
            if prompt.call.model and prompt.call.model != settings.gemini_model:
                try:
                    methods = await client.check_model(model)
                except UpstreamError:
                    methods = []
                if "generateContent" not in methods:
                    raise self.fail("prompts", f"{prompt.file}: model {model} is not served or cannot generate")
            problem = thinking_problem(model, prompt.call.config.thinking_level or settings.gemini_thinking_level)
            if problem:
                raise self.fail("prompts", f"{prompt.file}: {problem}")
        self.report(True, "prompts", f"{len(prompts)} served: " + ", ".join(f"/api/{name}" for name in prompts))
        return prompts

    async def check_model(self, client: GeminiClient, settings: Settings) -> None:
        """Reachable, key accepted, model served: one models `get` call tells all three, and costs no tokens."""
        try:
            methods, problem = await client.check_model(), None
        except UpstreamError as exc:
            methods, problem = [], exc
        where = settings.gemini_base_url or "Google's Gemini API"
        if problem is not None and problem.setting is None and not problem.upstream:
            raise self.fail(
                "Gemini reachable",
                f"could not reach Gemini at {where} ({problem.cause}): check the network, or GEMINI_BASE_URL if set",
            )
        self.report(True, "Gemini reachable", where)
        if problem is not None and problem.setting is None:  # Gemini answered, with an error about neither
            raise self.fail("Gemini", refusal(problem))
        if problem is not None and problem.setting == "GEMINI_API_KEY":
            raise self.fail("API key", f"GEMINI_API_KEY was rejected: {KEY_HELP}")
        self.report(True, "API key", "accepted")
        model = settings.gemini_model
        if problem is not None:
            raise self.fail("model", f"{model} is not served: set GEMINI_MODEL to one of {CURRENT_MODELS}")
        if "generateContent" not in methods:
            raise self.fail(
                "model", f"{model} does not support generateContent: set GEMINI_MODEL to one of {CURRENT_MODELS}"
            )
        self.report(True, "model", f"{model} is served and supports generateContent")
        if row_for(model) is None:  # not refused: new models appear faster than the table changes
            print(
                f"WARN  model: {model} is not in model_capabilities.py: its thinking level is not checked", flush=True
            )

    async def check_spend(self) -> None:
        """The spend guard's store reachable, and today's spend against each budget (spend_guard.py)."""
        try:
            guard = SpendGuard()
        except SystemExit as exc:  # its settings are wrong: one line says which
            raise self.fail("spend guard", str(exc.code)) from None
        for passed, check, verdict in await guard.report():
            if not passed:
                raise self.fail(check, verdict)
            self.report(True, check, verdict)

    async def generate(self, calls: GeminiCalls, prompt: Prompt) -> None:
        """One call through GeminiCalls, exactly as POST /api/<id> makes it, with the prompt's example input."""
        check = f"generate {prompt.id}"
        if prompt.example is None:
            self.report(True, check, "skipped: its input schema has no `examples` entry to send")
            return
        with collecting() as noted:  # what the request's log line would say: tokens, attempts
            try:
                answer = await calls.answer(prompt, prompt.input_model.model_validate(prompt.example))
            except UpstreamError as exc:
                raise self.fail(check, refusal(exc) if exc.upstream else f"{exc.detail} ({exc.cause})") from None
        tokens = noted.get("gemini_tokens", {})
        spent = ", ".join(f"{kind} {count}" for kind, count in tokens.items()) or "none reported"
        value = prompt.answer.dump_python(answer, mode="json")
        items = value if isinstance(value, list) else [value]
        self.report(True, check, f"{len(items)} item{'s' * (len(items) != 1)} in the answer; tokens: {spent}")
        self.model_version(prompt.call.model or self._model, noted.get("gemini_model_version") or "")
        for item in items:
            print(f"      - {summary(item)}", flush=True)


def refusal(exc: UpstreamError) -> str:
    """Gemini answered and refused: its status and reason, and what to do when it is known."""
    todo = exc.advice or (f"fix {exc.setting}" if exc.setting else "see the cause")
    return f"Gemini answered and refused: {exc.upstream} ({exc.cause}): {todo}"


def summary(item: Any) -> str:
    """One answer item on one line: its first text field (a title, say), else its JSON."""
    text = next((value for value in item.values() if isinstance(value, str)), None) if isinstance(item, dict) else None
    line = text if text is not None else json.dumps(item, ensure_ascii=False)
    return line if len(line) <= 100 else line[:99] + "…"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check that Gemini answers with this server's key and model.")
    parser.add_argument(
        "--generate", action="store_true", help="also make one real structured call (costs a few tokens)"
    )
    args = parser.parse_args(argv)  # bad usage: argparse prints it and exits with 2
    try:
        settings = load_settings()
    except SystemExit as exc:  # load_settings stops with one line that says what to fix
        Doctor().report(False, "settings", str(exc.code))
        return 1
    doctor = Doctor(settings.gemini_api_key.get_secret_value(), settings.gemini_model)
    level = settings.gemini_thinking_level or "the model's default"
    doctor.report(True, "settings", f"GEMINI_MODEL={settings.gemini_model}, thinking {level}, SDK {SDK}")
    try:
        asyncio.run(doctor.examine(settings, args.generate))
    except CheckFailed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
