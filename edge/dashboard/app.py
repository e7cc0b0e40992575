"""The dashboard's HTTP routes (Starlette), thin: each reads the request, calls the daemon through `Device` or a
module of this package, and answers. Blocking work (the daemon's figures, commands, JPEG encoding) runs on
worker threads, never on the event loop the MJPEG streams share."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from edge.core.hosts import allowed_host_names
from edge.core.httpbody import BodyError, read_json_object
from edge.core.webauth import PagePassword
from edge.core.webserver import CORE_STATIC
from edge.dashboard import auth
from edge.dashboard.chat import ChatRequestError, parse_messages, stream_answer
from edge.dashboard.device import Device
from edge.dashboard.live import FrameThrottle, live_view
from edge.dashboard.models import list_bundles, model_card, report_path
from edge.pipelines.base import Pipeline
from edge.pipelines.latest import LatestClassified

STATIC = Path(__file__).parent / "static"
MAX_JSON_BYTES = 16 * 1024  # a command or a chat turn; the chat's own bounds are in chat.py
PAGE_COMMANDS = frozenset({"pause", "resume", "set", "reload"})  # the snapshot has its own route (it answers a JPEG)
BOUNDARY = "edgeteach-frame"
NO_STORE = {"cache-control": "no-store"}
# The report comes from a bundle, which may come from anywhere: no scripts, only its own inline style and images.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def holder_of(pipeline: Pipeline) -> LatestClassified | None:
    holder = getattr(pipeline, "latest", None)
    return holder if isinstance(holder, LatestClassified) else None


class Dashboard:
    """The app and what its routes share: the device, the password gate, one frame throttle per pipeline."""

    def __init__(self, device: Device, host: str, password: str | None, stream_fps: float) -> None:
        self.device = device
        self.stream_fps = stream_fps
        self.gate = PagePassword(password, auth.COOKIE, auth.CSRF_HEADER)
        self.host_names = allowed_host_names(host, ())
        self.closing = threading.Event()  # set on stop: open streams end, so the server stops at once
        self._throttles: dict[str, FrameThrottle] = {}
        self._lock = threading.Lock()
        self.app = self._build()

    # -- helpers -----------------------------------------------------------------------------------

    def pipeline(self, name: str) -> Pipeline:
        pipeline = self.device.pipelines().get(name)
        if pipeline is None:
            raise BadRequest(f"no pipeline named {name!r} runs now; reload the page", 404)
        return pipeline

    def throttle(self, name: str, holder: LatestClassified) -> FrameThrottle:
        """One per pipeline, shared by its viewers; a new one when the pipeline was rebuilt (config reload)."""
        with self._lock:
            throttle = self._throttles.get(name)
            if throttle is None or throttle.holder is not holder:
                throttle = self._throttles[name] = FrameThrottle(holder, self.stream_fps)
            return throttle

    @staticmethod
    async def read_json(request: Request) -> dict[str, Any]:
        try:
            return await read_json_object(request, MAX_JSON_BYTES, empty={})
        except BodyError as exc:
            raise BadRequest(str(exc), exc.status) from None

    # -- routes ------------------------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers=NO_STORE)

    async def login(self, request: Request) -> Response:
        return await auth.login(request, self.gate, self.device.device_id)

    async def overview(self, request: Request) -> Response:
        """Health at a glance: the very payloads of MQTT `stats` and `/healthz`, plus each pipeline's model card."""
        def gather() -> dict[str, Any]:
            ok, health = self.device.healthz()
            pipelines = self.device.pipelines()
            return {"device_id": self.device.device_id, "healthy": ok, "health": health, "stats": self.device.stats_payload(),
                    "cards": {name: model_card(p) for name, p in pipelines.items()},
                    "kinds": {name: p.kind for name, p in pipelines.items()}, "chat": self.device.llm() is not None}

        return JSONResponse(await run_in_threadpool(gather), headers=NO_STORE)

    async def live(self, request: Request) -> Response:
        def gather() -> dict[str, Any]:
            return {name: live_view(name, p.kind, p.paused, holder_of(p)) for name, p in self.device.pipelines().items()}

        return JSONResponse(await run_in_threadpool(gather), headers=NO_STORE)

    async def stream(self, request: Request) -> Response:
        """MJPEG (multipart/x-mixed-replace): each part a frame the model classified, at most stream_fps a second."""
        pipeline = self.pipeline(request.path_params["name"])
        holder = holder_of(pipeline)
        if pipeline.kind != "camera" or holder is None:
            raise BadRequest(f"{pipeline.name} is a {pipeline.kind} pipeline: only cameras have a picture", 404)
        throttle = self.throttle(pipeline.name, holder)

        async def parts() -> AsyncIterator[bytes]:
            seq = -1
            while not self.closing.is_set():
                # Look first (a lock and a reference, on the event loop); only an encoding goes to a worker thread.
                if not throttle.has_newer(seq):
                    await asyncio.sleep(throttle.period_s / 2)
                    continue
                frame = await run_in_threadpool(throttle.next_after, seq)
                if frame is None:
                    await asyncio.sleep(throttle.period_s / 4)
                    continue
                seq, jpeg = frame
                yield (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n").encode() + jpeg + b"\r\n"

        return StreamingResponse(parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=NO_STORE)

    async def report(self, request: Request) -> Response:
        path = report_path(self.pipeline(request.path_params["name"]))
        if path is None:
            raise BadRequest("this bundle has no report.html (bundles from `trainer train` have one)", 404)
        return FileResponse(path, media_type="text/html", headers={"content-security-policy": REPORT_CSP, **NO_STORE})

    async def command(self, request: Request) -> Response:
        name = request.path_params["command"]
        if name not in PAGE_COMMANDS:
            raise BadRequest(f"the page sends {', '.join(sorted(PAGE_COMMANDS))}; not {name!r}", 404)
        args = await self.read_json(request)
        result = await run_in_threadpool(self.device.command, name, args)
        return JSONResponse(result.reply, 200 if result.ok else 400)

    async def snapshot(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.pipeline(name)
        result = await run_in_threadpool(self.device.command, "snapshot", {"pipeline": name, "raw": True})
        if not result.ok or result.private_bytes is None:
            return JSONResponse(result.reply, 400)
        return Response(result.private_bytes, media_type="image/jpeg",
                        headers={"content-disposition": f'attachment; filename="{name}-snapshot.jpg"', **NO_STORE})

    async def models(self, request: Request) -> Response:
        folder = self.device.models_dir()
        return JSONResponse({"models_dir": str(folder), "bundles": await run_in_threadpool(list_bundles, folder)}, headers=NO_STORE)

    async def chat(self, request: Request) -> Response:
        link = self.device.llm()
        if link is None:
            raise BadRequest("the LLM does not run on this device (llm.enabled in the config)", 404)
        try:
            messages = parse_messages(await self.read_json(request))
        except ChatRequestError as exc:
            raise BadRequest(str(exc)) from None
        return StreamingResponse(stream_answer(link, messages), media_type="application/x-ndjson", headers=NO_STORE)

    # -- wiring ------------------------------------------------------------------------------------

    def _build(self) -> Starlette:
        dashboard = self

        class Gate:
            """Every request passes auth.refuse first. Plain ASGI (not BaseHTTPMiddleware, which would pipe each
            MJPEG part through a stream of its own)."""

            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http":
                    refusal = auth.refuse(Request(scope), dashboard.gate, dashboard.host_names)
                    if refusal is not None:
                        await refusal(scope, receive, send)
                        return
                await self.app(scope, receive, send)

        def guarded(handler: Handler) -> Handler:
            async def wrapped(request: Request) -> Response:
                try:
                    return await handler(request)
                except BadRequest as exc:
                    return JSONResponse({"error": str(exc)}, exc.status)

            return wrapped

        p = "/api/pipelines/{name}"
        routes = [
            Route("/", self.index),
            Route("/login", self.login, methods=["GET", "POST"]),
            Route("/api/overview", guarded(self.overview)),
            Route("/api/live", guarded(self.live)),
            Route("/api/models", guarded(self.models)),
            Route("/api/command/{command}", guarded(self.command), methods=["POST"]),
            Route("/api/chat", guarded(self.chat), methods=["POST"]),
            Route(f"{p}/stream.mjpg", guarded(self.stream)),
            Route(f"{p}/report.html", guarded(self.report)),
            Route(f"{p}/snapshot", guarded(self.snapshot), methods=["POST"]),
            Mount("/static/core", StaticFiles(directory=CORE_STATIC), name="core-static"),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        return Starlette(routes=routes, middleware=[Middleware(Gate)])
