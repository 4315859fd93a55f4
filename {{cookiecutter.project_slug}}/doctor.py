"""Check, before going live, that Gemini answers this server with its key and model.

    python doctor.py              # settings, Gemini reachable, key accepted, model served (costs no tokens),
                                  # and the spend guard's store with today's spend, when there is one
    python doctor.py --generate   # and one real call through the API's own code path (costs a few tokens)

It reads the same settings as the app (the environment and `.env`), prints one line per check and
stops at the first failure, saying what to fix. Exit status: 0 all good, 1 a check failed, 2 bad usage.
In the stack: `docker compose run --rm backend python doctor.py`.
"""

import argparse
import asyncio
import sys

from breakdown import SYSTEM_INSTRUCTION, TaskBreakdown
from errors import UpstreamError
from gemini_client import SDK, GeminiClient
from request_log import collecting
from schemas import TaskIn
from settings import Settings, load_settings
from spend_guard import SpendGuard

CURRENT_MODELS = "gemini-3.5-flash-lite, gemini-3.8-flash or gemini-3.1-flash-lite"  # checked 2026-11-27
KEY_HELP = "create a key at https://aistudio.google.com/apikey and put it in .env"
SAMPLE_TASK = TaskIn(title="Plan a team offsite", description="30 people, one day in June")


class CheckFailed(Exception):
    """A check failed; its message says what to fix."""


class Doctor:
    def __init__(self, secret: str = "") -> None:
        self._secret = secret

    def report(self, passed: bool, check: str, verdict: str) -> None:
        line = f"{'ok  ' if passed else 'FAIL'}  {check}: {verdict}"
        if self._secret:  # belt and braces: no message, however it was built, shows the key
            line = line.replace(self._secret, "***")
        print(line, flush=True)

    def fail(self, check: str, verdict: str) -> CheckFailed:
        self.report(False, check, verdict)
        return CheckFailed(verdict)

    async def examine(self, settings: Settings, generate: bool) -> None:
        client = GeminiClient(settings, SYSTEM_INSTRUCTION)
        try:
            await self.check_model(client, settings)
            await self.check_spend()
            if generate:
                await self.generate(client, settings)
        finally:
            await client.aclose()

    async def check_model(self, client: GeminiClient, settings: Settings) -> None:
        """Reachable, key accepted, model served: one models `get` call tells all three, and costs no tokens."""
        try:
            methods, problem = await client.check_model(), None
        except UpstreamError as exc:
            methods, problem = [], exc
        where = settings.gemini_base_url or "Google's Gemini API"
        if problem is not None and problem.setting is None:  # it failed before Gemini looked at key or model
            raise self.fail(
                "Gemini reachable",
                f"no usable answer from {where} ({problem.cause}): check the network, or GEMINI_BASE_URL if set",
            )
        self.report(True, "Gemini reachable", where)
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

    async def generate(self, client: GeminiClient, settings: Settings) -> None:
        """One structured call through TaskBreakdown, exactly as POST /api/breakdown-task makes it."""
        with collecting() as noted:  # what the request's log line would say: tokens, attempts
            try:
                subtasks = await TaskBreakdown(client, settings).suggest(SAMPLE_TASK)
            except UpstreamError as exc:
                raise self.fail("generate", f"{exc.detail} ({exc.cause})") from None
        tokens = noted.get("gemini_tokens", {})
        spent = ", ".join(f"{kind} {count}" for kind, count in tokens.items()) or "none reported"
        self.report(True, "generate", f"{len(subtasks)} sub-tasks for {SAMPLE_TASK.title!r}; tokens: {spent}")
        for subtask in subtasks:
            print(f"      - {subtask.title}", flush=True)


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
    doctor = Doctor(settings.gemini_api_key.get_secret_value())
    level = settings.gemini_thinking_level or "the model's default"
    doctor.report(True, "settings", f"GEMINI_MODEL={settings.gemini_model}, thinking {level}, SDK {SDK}")
    try:
        asyncio.run(doctor.examine(settings, args.generate))
    except CheckFailed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
