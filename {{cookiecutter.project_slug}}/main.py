"""{{ cookiecutter.project_name }}: the Gemini API key stays here, never in the browser.

Run it with `uvicorn main:app`.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response

import metrics
from caller_check import CallerCheck
from endpoints import add_prompt_routes
from errors import UpstreamError, log_failure, validation_problems
from gemini_calls import GeminiCalls
from gemini_client import GeminiClient
from model_capabilities import row_for
from prompts import load_prompts_or_exit
from request_log import RequestLogMiddleware, logger, setup_logging
from settings import load_settings
from spend_guard import SpendGuard

settings = load_settings()  # a missing GEMINI_API_KEY stops start-up here, with one line
setup_logging()
if row_for(settings.gemini_model) is None:  # new models appear faster than the table changes: not refused
    logger.warning(
        "GEMINI_MODEL is not in model_capabilities.py: its thinking level is not checked before Gemini sees it",
        extra={"fields": {"gemini_model": settings.gemini_model}},
    )
# Every prompts/<id>.prompt, checked: a wrong one stops start-up here, with one line naming it.
prompts = load_prompts_or_exit(settings.prompts_dir, settings.prompt_input_max_chars)
# Who may call the API (caller_check.py). As a dependency of the route it runs before the route's code:
# a refused request never waits for a Gemini slot or makes a Gemini call.
caller_check = CallerCheck(settings)
# Spend limits per caller and for the whole deployment (spend_guard.py): after the caller check, so a
# refused caller costs nothing; before the Gemini call, so a spent budget costs nothing either.
spend_guard = SpendGuard()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    # One client for the process: it keeps its connections to Gemini open between requests.
    client = GeminiClient(settings)
    # One for the process, shared by every prompt endpoint: GEMINI_MAX_CONCURRENCY is one cap.
    app.state.gemini_calls = GeminiCalls(client, settings)
    yield
    # uvicorn runs this after it stopped listening and the requests in flight finished.
    await asyncio.sleep(settings.shutdown_drain_seconds)
    await client.aclose()


app = FastAPI(
    title="{{ cookiecutter.project_name }}",
    description={{ cookiecutter.description | python_text(indent=4, prefix_width=16) }},
    lifespan=lifespan,
    # No redirect from /api/breakdown-task/ to /api/breakdown-task: it would be built from the request's
    # Host header, which Nginx (`server_name _`) passes on from any client. A 404 instead.
    redirect_slashes=False,
)
app.add_middleware(
    CORSMiddleware,
    allow_origins=settings.allowed_origins,
    allow_credentials=False,  # the API needs no cookies
    allow_methods=["GET", "POST"],
    allow_headers=["Content-Type", "X-Request-ID", *caller_check.headers],
    max_age=600,
)
app.add_middleware(RequestLogMiddleware)

ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"description": text, "content": {"application/json": {"example": {"detail": text}}}}
    for code, text in [
        (400, "There was an error parsing the body"),  # FastAPI's answer to a body that is not UTF-8
        (429, "Gemini's rate limit was reached, or this service's daily Gemini quota is spent; retry later."),
        (502, "Gemini failed to answer, or its answer was unusable."),
        (503, "Gemini or this server is busy; retry later."),
        (504, "Gemini did not answer in time."),
        *caller_check.responses.items(),  # a later entry for the same status replaces the one above
    ]
}


@app.exception_handler(UpstreamError)
async def upstream_error(request: Request, exc: UpstreamError) -> JSONResponse:
    # The cause goes to the log; the client gets a short message that holds nothing internal.
    log_failure(exc)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers())


@app.exception_handler(RequestValidationError)
async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    # FastAPI's own answer echoes each wrong value back, and fails (500) on one it cannot encode as JSON,
    # such as a lone surrogate ("\ud800"). Where and what is enough for the client to fix its request.
    return JSONResponse({"detail": validation_problems(exc.errors())}, status_code=422)


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "{{ cookiecutter.project_name }} is running!"}


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness for Docker and Nginx: answers without calling Gemini."""
    return {"status": "ok"}


@app.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """This replica's Prometheus metrics. Nginx does not pass /metrics on: scrape each replica directly."""
    return metrics.metrics_response()


# POST /api/<id> for each prompt file, behind the caller check and the spend guard: a refused request
# never waits for a Gemini slot or makes a Gemini call.
add_prompt_routes(app, prompts, dependencies=[Depends(caller_check), Depends(spend_guard)], responses=ERROR_RESPONSES)
for prompt_id in prompts:
    metrics.register_prompt(prompt_id)
