"""One `POST /api/<id>` route per prompt file, all served by the same code.

Each route's request body is the prompt's input model and its response model the prompt's output, so
FastAPI validates requests (422 naming the field) and OpenAPI lists every endpoint with both schemas.
"""

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import Response

from gemini_calls import GeminiCalls
from prompts import Prompt


def endpoint_for(prompt: Prompt) -> Callable[..., Awaitable[Response]]:
    async def endpoint(body: prompt.input_model, request: Request) -> Response:  # type: ignore[name-defined]
        calls: GeminiCalls = request.app.state.gemini_calls
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
            responses=responses,
            dependencies=dependencies,
        )
