"""One `POST /api/<id>` route per prompt file, all served by the same code.

Each route's request body is the prompt's input model and its response model the prompt's output, so
FastAPI validates requests (422 naming the field) and OpenAPI lists every endpoint with both schemas.
With `Accept: text/event-stream` the same route streams the answer as server-sent events (event_stream.py);
every check before the Gemini call (caller, body, concurrency cap) still answers with its HTTP status.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import Response

from event_stream import MEDIA_TYPE, EventStreamResponse, wants_events
from gemini_calls import GeminiCalls
from prompts import Prompt

STREAM_RESPONSE = {
    "description": "The answer, or with `Accept: text/event-stream` the answer streamed as server-sent events: "
    '`delta` events (`{"text": ...}`, pieces of Gemini\'s text as they arrive), then exactly one `result` '
    '(the JSON body above) or `error` (`{"status": ..., "detail": ...}`, what the plain call would have answered).',
    "content": {MEDIA_TYPE: {"schema": {"type": "string"}}},
}


def endpoint_for(prompt: Prompt) -> Callable[..., Awaitable[Response]]:
    async def endpoint(body: prompt.input_model, request: Request) -> Response:  # type: ignore[name-defined]
        calls: GeminiCalls = request.app.state.gemini_calls
        if wants_events(request.headers.get("accept", "")):
            stream = await calls.open_stream(prompt, body)  # a refusal here is a plain HTTP answer
            return EventStreamResponse(stream.events(), on_close=stream.close)
        value = await calls.answer(prompt, body)
        # Already validated against the output schema: serialised once, not validated again by FastAPI.
        return Response(prompt.answer.dump_json(value), media_type="application/json")

    return endpoint


def add_prompt_routes(
    app: FastAPI, prompts: dict[str, Prompt], dependencies: Sequence[Depends], responses: dict[int | str, Any]
) -> None:
    for prompt in prompts.values():
        app.add_api_route(
            f"/api/{prompt.id}",
            endpoint_for(prompt),
            methods=["POST"],
            name=prompt.id.replace("-", "_"),
            summary=prompt.description.splitlines()[0],
            description=f"{prompt.description}\n\nServed from `{prompt.file}`.",
            response_model=prompt.response_model,
            responses={200: STREAM_RESPONSE, **responses},
            dependencies=dependencies,
        )
