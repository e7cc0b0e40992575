"""The LLM playground's routes: the listing (models, trick prompts, bounds) and one prompt answered as a stream
of JSON lines, one event per line (trainer/studio/playground.py says which), read by static/playground.js.

A stream ends when both answers have; when the browser goes away first (Stop, another screen, a closed tab) the
next write fails, the stream is closed and the run is cancelled before the models' next token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from trainer.studio.context import Studio
from trainer.studio.http import json_errors, read_json
from trainer.studio.limits import DEFAULT_LLM_MODELS, PlaygroundLimits
from trainer.studio.playground import Event, Playground, parse_question


def routes(studio: Studio) -> list[BaseRoute]:
    limits = PlaygroundLimits()
    playground = Playground(studio.llm_models or Path(DEFAULT_LLM_MODELS), limits)

    async def listing(request: Request) -> Response:
        return JSONResponse(playground.describe(), headers={"cache-control": "no-store"})

    async def ask(request: Request) -> Response:
        body = await read_json(request, limits.max_body_bytes)
        question = parse_question(body, playground.models(), limits)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def emit(event: Event) -> None:  # called from the run's threads
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the event loop is gone: the Studio is stopping, and the run's threads with it
                pass

        run = playground.start(question, emit)

        async def lines() -> AsyncIterator[str]:
            try:
                while True:
                    event = await events.get()
                    yield json.dumps(event) + "\n"
                    if event["event"] == "end":
                        return
            finally:  # also when the browser went away mid-answer
                run.cancel()

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"cache-control": "no-store"})

    return [
        Route("/api/llm", json_errors(listing), methods=["GET"]),
        Route("/api/llm/ask", json_errors(ask), methods=["POST"]),
    ]
