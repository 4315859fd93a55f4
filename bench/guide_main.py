"""The original guide's backend design, kept as the benchmark's baseline (row 4 of bench/run.py).

It calls google-generativeai's synchronous `model.generate_content(...)` inside an `async def`
endpoint. That call blocks the event loop: requests are served one after another, and every
other endpoint (`GET /` here) waits while Gemini thinks. Do not copy it: the generated
backend awaits an async client (or a worker thread) instead.

Mended so it runs at all, and nothing else:
- the guide's `response_schema=[{"title": "string", "description": "string"}]` raises TypeError
  inside the SDK before anything is sent; it is a proper (OpenAPI-style) schema here;
- the SDK is pointed at the fake Gemini (GEMINI_BASE_URL, REST transport) and gets
  `request_options={"retry": None, "timeout": 30}`, so a failure shows up as an error instead of
  minutes of hidden retries.

Run it with `GEMINI_API_KEY=... GEMINI_BASE_URL=http://127.0.0.1:9000 uvicorn guide_main:app`.
"""

import json
import os
import warnings

from fastapi import FastAPI, HTTPException
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel

with warnings.catch_warnings():  # the SDK announces its end of life on import
    warnings.simplefilter("ignore", FutureWarning)
    import google.generativeai as genai

genai.configure(
    api_key=os.environ["GEMINI_API_KEY"],
    transport="rest",
    client_options={"api_endpoint": os.environ["GEMINI_BASE_URL"]},
)
model = genai.GenerativeModel("gemini-2.5-flash")

app = FastAPI()
app.add_middleware(
    CORSMiddleware,
    allow_origins=["http://localhost:5173", "http://localhost:3000"],
    allow_methods=["*"],
    allow_headers=["*"],
)


class TaskRequest(BaseModel):
    title: str
    description: str | None = None


@app.get("/")
async def root() -> dict[str, str]:
    return {"message": "AI Task Manager Backend is running!"}


@app.post("/api/breakdown-task")
async def breakdown_task(task: TaskRequest) -> list[dict[str, str | None]]:
    prompt = (
        "Break the following task into 3 to 5 smaller, actionable sub-tasks.\n"
        f"Task: {task.title}\n"
        f"Description: {task.description or ''}\n"
        "Answer with a JSON list of objects with a title and a description."
    )
    try:
        # The guide's design: a blocking call inside `async def` holds the event loop.
        response = model.generate_content(
            prompt,
            generation_config=genai.GenerationConfig(
                response_mime_type="application/json",
                # Mended: the guide's `[{"title": "string", ...}]` is not a schema the SDK accepts.
                response_schema={
                    "type": "ARRAY",
                    "items": {
                        "type": "OBJECT",
                        "properties": {"title": {"type": "STRING"}, "description": {"type": "STRING"}},
                        "required": ["title"],
                    },
                },
            ),
            request_options={"retry": None, "timeout": 30},
        )
        return json.loads(response.text)
    except Exception as exc:
        raise HTTPException(status_code=500, detail=str(exc)) from exc
