"""OpenAI-compatible HTTP API: a Starlette app under uvicorn (edge.core.webserver runs it on its own thread).

Why an ASGI server: the model serves one request at a time, but on a classroom network the server also
meets half-open sockets, slow clients and malformed requests; uvicorn + h11 do the HTTP framing, and the
webserver module adds a request-head deadline and a connection cap that idle sockets cannot exhaust.

Order of checks for every request (cheapest and least trusting first): Host header, Transfer-Encoding,
API key, route, Content-Type, Content-Length, body (bounded in size and time), JSON, request fields, then
`LlmCore.admit` (queue bound, prompt length) and only then the model. An error answered before the body
was read carries `Connection: close`, so an unread body can never be parsed as the next request.

The worker is a thread: its events reach the request's coroutine through `loop.call_soon_threadsafe`.
A client that disconnects cancels its job: for a stream, Starlette cancels the response when uvicorn
reports the disconnect; for a plain request, a watcher awaits `http.disconnect` while the answer is made.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.core.hosts import allowed_host_names, host_allowed  # the Host check, shared with the dashboard
from edge.core.webserver import BackgroundServer, ServerLimits
from edge.llm.core import LlmCore, NotReadyError
from edge.llm.requests import (
    ChatRequest,
    RequestError,
    chunk_object,
    completion_object,
    edgeteach_meta,
    new_completion_id,
    parse_chat_request,
    parse_json,
    usage,
)
from edge.llm.worker import DoneEvent, ErrorEvent, Event, Job, QueueFullError, TextEvent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
PUBLIC_PATHS = ("/health", "/metrics")  # monitoring works without the API key (/health then says only the status)
CHAT_PATHS = ("/v1/chat/completions", "/chat/completions")
GET_ROUTES = "/v1/chat/completions (POST), /v1/models, /health, /metrics, /edgeteach/sensors"
CLOSE = {"Connection": "close"}


def _error_response(exc: RequestError, close: bool = False) -> JSONResponse:
    headers = dict(CLOSE) if close else {}
    if isinstance(exc, (QueueFullError, NotReadyError)):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.as_json(), exc.status, headers=headers)


# -- Host header ----------------------------------------------------------------------------------


class _Guard:
    """What every request must pass before any route runs: a Host we answer to, no Transfer-Encoding (bodies
    come with a Content-Length), and the API key. Refusals close the connection (the body is unread)."""

    def __init__(self, app: ASGIApp, core: LlmCore, host_names: frozenset[str]) -> None:
        self.app = app
        self.core = core
        self.host_names = host_names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal: RequestError | None = None
        if not host_allowed(headers.get("host", ""), self.host_names):
            refusal = RequestError("the Host header names neither this device nor one of llm.allowed_hosts", 400, "invalid_host")
        elif "transfer-encoding" in headers:
            refusal = RequestError("Transfer-Encoding is not accepted: send the body with a Content-Length header",
                                   411, "length_required")
        elif not self._authorised(scope["path"], headers):
            self.core.metrics.count_request("http", "unauthorized")
            refusal = RequestError("missing or wrong API key: send `Authorization: Bearer <llm.api_key>`", 401, "invalid_api_key")
        if refusal is not None:
            log.debug("HTTP %s %s refused: %s", scope["method"], scope["path"], refusal.code)
            await _error_response(refusal, close=True)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorised(self, path: str, headers: dict[str, str]) -> bool:
        return path in PUBLIC_PATHS or key_matches(self.core.settings.api_key, headers.get("authorization", ""))


def key_matches(key: str | None, authorization: str) -> bool:
    """True when no key is configured or the Bearer token equals it (compared in constant time)."""
    if key is None:
        return True
    given = authorization[7:] if authorization[:7].lower() == "bearer " else ""
    return hmac.compare_digest(given.encode(), key.encode())


# -- the app --------------------------------------------------------------------------------------


class _Api:
    def __init__(self, core: LlmCore) -> None:
        self.core = core

    async def health(self, request: Request) -> Response:
        core = self.core
        status, code = ("ok", 200) if core.ready else ("error", 503) if core.load_error else ("loading", 503)
        body: dict[str, Any] = {"status": status}
        # With a key set, a caller without it learns only the status; nobody learns the load error's text
        # (it names files): the server's log has it.
        if key_matches(core.settings.api_key, request.headers.get("authorization", "")):
            body["model"] = core.model_name
            if core.ready:
                body["queue_depth"] = core.worker.depth if core.worker else 0
        headers = {"Retry-After": "2"} if status == "loading" else None
        return JSONResponse(body, code, headers=headers)

    async def metrics(self, request: Request) -> Response:
        return Response(self.core.metrics.render(self.core.model_name), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def models(self, request: Request) -> Response:
        core = self.core
        path = core.settings.model or ""
        created = int(os.path.getmtime(path)) if path and os.path.exists(path) else 0
        meta: dict[str, Any] = {"loaded": core.ready}  # never the file's path: it says how the device is laid out
        if core.engine is not None:
            meta.update(context_size=core.engine.context_size, chat_format=core.engine.chat_format)
        card = {"id": core.model_name, "object": "model", "created": created, "owned_by": "edgeteach", "meta": meta}
        return JSONResponse({"object": "list", "data": [card]})

    async def sensors(self, request: Request) -> Response:
        sensors = self.core.sensors
        states = [s.__dict__ for s in sensors.states()] if sensors else []
        return JSONResponse({"enabled": sensors is not None, "states": states, "summary": self.core.sensor_summary()})

    async def not_found(self, request: Request, exc: Exception) -> Response:
        return _error_response(RequestError(f"no route {request.method} {request.url.path}; try {GET_ROUTES}", 404, "not_found"),
                               close=True)

    async def chat(self, request: Request) -> Response:
        try:
            body = await self._read_json(request)
        except RequestError as exc:
            self.core.metrics.count_request("http", "bad_request")
            return _error_response(exc, close=True)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[Event] = asyncio.Queue()

        def sink(event: Event) -> None:  # on the worker thread
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop is closed: the server is stopping, nobody waits for this
                pass

        try:
            chat = parse_chat_request(body, self.core.settings)
        except RequestError as exc:
            self.core.metrics.count_request("http", "bad_request")
            return _error_response(exc)
        try:
            # Off the event loop: admission may tokenize up to the prompt bound, and other clients wait meanwhile.
            admitted = await run_in_threadpool(self.core.admit, chat, "http", sink)
        except RequestError as exc:  # counted by admit
            return _error_response(exc)
        if chat.stream:
            return StreamingResponse(self._stream(chat, admitted.job, admitted.sensor_context, events), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", **CLOSE})
        return await self._complete(request, chat, admitted.job, admitted.sensor_context, events)

    async def _read_json(self, request: Request) -> Any:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise RequestError("send the body as JSON with `Content-Type: application/json`", 415, "unsupported_media_type")
        length = request.headers.get("content-length")
        if length is None:
            raise RequestError("send the JSON body with a Content-Length header", 411, "length_required")
        if not length.isdigit() or not length.isascii():  # h11 checks it too; a negative size must never reach a read
            raise RequestError("Content-Length must be a number of bytes", 400, "invalid_request")
        size = int(length)
        if size > MAX_BODY_BYTES:
            raise RequestError(f"request body of {size} bytes is over the {MAX_BODY_BYTES} byte limit", 413, "too_large")
        raw = bytearray()

        async def read() -> None:
            async for chunk in request.stream():
                raw.extend(chunk)
                if len(raw) > size:
                    raise RequestError("the body is longer than its Content-Length", 400, "invalid_request")

        try:  # a body sent a byte a minute must not hold the connection
            await asyncio.wait_for(read(), self.core.settings.http_idle_timeout_s)
        except ClientDisconnect:
            raise RequestError("the client left while sending the body", 400, "invalid_request") from None
        except asyncio.TimeoutError:
            raise RequestError(f"the body did not arrive within {self.core.settings.http_idle_timeout_s:g} s "
                               "(llm.http_idle_timeout_s)", 408, "request_timeout") from None
        return parse_json(bytes(raw))

    async def _complete(self, request: Request, chat: ChatRequest, job: Job, injected: str | None,
                        events: asyncio.Queue[Event]) -> Response:
        # Nothing is written until the answer is complete, so only http.disconnect says the client left.
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            while True:
                next_event = asyncio.ensure_future(events.get())
                await asyncio.wait({next_event, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not next_event.done():
                    next_event.cancel()
                    job.cancel("cancelled")
                    log.info("request %d: client disconnected; generation cancelled", job.id)
                    return Response(status_code=503)  # nobody reads it: uvicorn drops it
                event = next_event.result()
                if isinstance(event, DoneEvent):
                    return JSONResponse(completion_object(new_completion_id(), self.core.model_name, chat, injected, event.result))
                if isinstance(event, ErrorEvent):
                    if event.code in ("timeout", "shutdown"):
                        return _error_response(NotReadyError(event.message))
                    return _error_response(RequestError(event.message, 500, event.code))
        except asyncio.CancelledError:  # the server is stopping: the model need not finish for nobody
            job.cancel("cancelled")
            raise
        finally:
            gone.cancel()

    async def _stream(self, chat: ChatRequest, job: Job, injected: str | None, events: asyncio.Queue[Event]) -> AsyncIterator[bytes]:
        cid, created, model = new_completion_id(), int(time.time()), self.core.model_name
        finished = False
        try:
            yield _sse(chunk_object(cid, model, created, {"role": "assistant", "content": ""}))
            while True:
                event = await events.get()
                if isinstance(event, TextEvent):
                    yield _sse(chunk_object(cid, model, created, {"content": event.text}))
                    continue
                finished = True
                if isinstance(event, DoneEvent):
                    result = event.result
                    final = chunk_object(cid, model, created, {}, result.finish_reason)
                    final["timings"] = result.timings.as_dict()
                    final["edgeteach"] = edgeteach_meta(chat, injected, result)
                    tail = b""
                    if chat.include_usage:
                        extra = chunk_object(cid, model, created, {})
                        extra["choices"] = []
                        extra["usage"] = usage(result)
                        tail = _sse(extra)
                    yield _sse(final) + tail + b"data: [DONE]\n\n"
                else:
                    yield _sse({"error": {"message": event.message, "type": "server_error", "code": event.code}}) + b"data: [DONE]\n\n"
                return
        finally:
            # Starlette cancels this generator when uvicorn reports the disconnect (or the server stops).
            if not finished:
                job.cancel("cancelled")
                log.info("request %d: client disconnected mid-stream; generation cancelled", job.id)


async def _disconnected(receive: Callable[[], Awaitable[Any]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def build_app(core: LlmCore) -> ASGIApp:
    api = _Api(core)
    app = Starlette(routes=[
        Route("/health", api.health, methods=["GET"]),
        Route("/metrics", api.metrics, methods=["GET"]),
        Route("/v1/models", api.models, methods=["GET"]),
        Route("/models", api.models, methods=["GET"]),
        Route("/edgeteach/sensors", api.sensors, methods=["GET"]),
        *(Route(path, api.chat, methods=["POST"]) for path in CHAT_PATHS),
    ])
    app.add_exception_handler(404, api.not_found)
    app.add_exception_handler(405, api.not_found)
    return _Guard(app, core, allowed_host_names(core.settings.host, core.settings.allowed_hosts))


class LlmHttpServer:
    """The API on host:port (binds at construction: OSError if taken), limits from `llm:`."""

    def __init__(self, core: LlmCore, host: str, port: int) -> None:
        limits = ServerLimits(idle_timeout_s=core.settings.http_idle_timeout_s, max_connections=core.settings.http_max_connections)
        self._server = BackgroundServer(build_app(core), host, port, limits, name="llm-http")

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    def start(self) -> None:
        self._server.start()
        log.info("LLM HTTP API on http://%s:%d/v1 (OpenAI-compatible)", *self.address)

    def stop(self) -> None:
        self._server.stop()
