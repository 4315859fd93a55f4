"""Who may call the API: anyone. This project was generated with no caller check.

The API is then a public door to your Gemini budget, guarded only by Nginx's rate limits. To admit
only your app (Firebase App Check) or signed-in users (OpenID Connect ID tokens), generate the
project again with `caller_check` set; this module is where that check goes.
"""

from pydantic_settings import BaseSettings


class CallerSettings(BaseSettings):
    """A caller check's settings (settings.Settings has them too); with no check there are none."""


class CallerCheck:
    """The API route's dependency: with no check, it admits every request."""

    headers: tuple[str, ...] = ()  # request headers the browser may send for it (CORS)
    responses: dict[int | str, str] = {}  # answers it adds to the API's documented errors

    def __init__(self, settings: CallerSettings) -> None:
        pass

    async def __call__(self) -> None:
        return None
