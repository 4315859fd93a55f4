"""Server-sent events to the browser: the response that carries a streamed answer.

Starlette's StreamingResponse notices a client that left only when its next write fails; a stream that waits
on Gemini writes nothing for seconds. This response also listens for the disconnect, and stops the stream,
and with it the Gemini call, as soon as the client goes.
"""

from collections.abc import AsyncGenerator, Callable

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from request_log import note

MEDIA_TYPE = "text/event-stream"


def wants_events(accept: str) -> bool:
    """Whether the Accept header asks for server-sent events (`text/event-stream`, not refused with q=0)."""
    for entry in accept.split(","):
        media, _, params = entry.partition(";")
        if media.strip().lower() == MEDIA_TYPE:
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class EventStreamResponse(Response):
    media_type = MEDIA_TYPE

    # Two type arguments: the generated project may target Python 3.11, where the second has no default.
    def __init__(self, events: AsyncGenerator[bytes, None], on_close: Callable[[], None]) -> None:  # noqa: UP043 - see above
        self._events = events
        self._on_close = on_close  # runs once the stream has ended, however it ended
        self._ended = False
        self.status_code = 200
        self.background = None
        # No caching; X-Accel-Buffering turns Nginx's response buffering off for this answer only, so each
        # event reaches the client as it is written.
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(self._stop_when_client_leaves, receive, group.cancel_scope)
                await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
                async for event in self._events:
                    await send({"type": "http.response.body", "body": event, "more_body": True})
                self._ended = True  # from here on, uvicorn reports the finished response as a disconnect
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                group.cancel_scope.cancel()  # done: stop listening
        except* OSError:  # the client left while an event was being written (uvicorn's ClientDisconnected)
            note(client_left=True)
        finally:
            # Closing the generator closes the Gemini call; shielded, so a cancelled stream still gets to.
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
            self._on_close()

    async def _stop_when_client_leaves(self, receive: Receive, scope: anyio.CancelScope) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self._ended:
            note(client_left=True)
            scope.cancel()
