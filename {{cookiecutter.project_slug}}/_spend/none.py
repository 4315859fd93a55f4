"""Spend limits: none. This project was generated with no spend guard.

Nothing but Nginx's request rates limits what callers spend. To give each caller a quota and the whole
deployment a daily token budget, shared by every replica, generate the project again with
`spend_guard=yes`; this module is where that guard goes.
"""

from schemas import TokenUsage


class SpendGuard:
    """The API route's dependency: with no guard, it admits every request."""

    async def __call__(self) -> None:
        return None

    async def report(self) -> list[tuple[bool, str, str]]:
        return []  # nothing for doctor.py to check


async def record(tokens: TokenUsage) -> None:
    """What a request's Gemini attempts cost (gemini_calls.py): with no guard, nothing counts it."""
