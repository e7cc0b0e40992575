"""OpenAI-compatible HTTP API on the standard library's ThreadingHTTPServer.

Why the standard library: the work is one model on one worker thread, so the server handles a handful
of connections at a time; a thread per connection is plenty, needs no dependency on the Pi, and blocking
writes make a disconnected client visible at once (BrokenPipeError) so its generation can be cancelled.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import queue
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge.llm.core import LlmCore, NotReadyError
from edge.llm.requests import (
    ChatRequest,
    RequestError,
    chunk_object,
    completion_object,
    edgeteach_meta,
    new_completion_id,
    parse_chat_request,
    usage,
)
from edge.llm.worker import DoneEvent, ErrorEvent, Event, QueueFullError, TextEvent

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1 << 20
POLL_S = 0.25  # how often a waiting handler checks whether its client is still there
PUBLIC_PATHS = ("/health", "/metrics")  # monitoring works without the API key


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], core: LlmCore) -> None:
        self.core = core
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "edgeteach-llm"

    def setup(self) -> None:
        super().setup()
        self._last_check = time.monotonic()
        # Each SSE event is one small write: without TCP_NODELAY, Nagle + delayed ACK add up to 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # -- plumbing ----------------------------------------------------------------------------------

    @property
    def core(self) -> LlmCore:
        return self.server.core

    def _send_json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, exc: RequestError) -> None:
        headers = {}
        if isinstance(exc, (QueueFullError, NotReadyError)):
            headers["Retry-After"] = str(exc.retry_after_s)
        if exc.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        self._send_json(exc.status, exc.as_json(), headers)

    def _authorised(self) -> bool:
        key = self.core.settings.api_key
        if not key or self.path.split("?")[0] in PUBLIC_PATHS:
            return True
        header = self.headers.get("Authorization", "")
        given = header[7:] if header[:7].lower() == "bearer " else ""
        if hmac.compare_digest(given.encode(), key.encode()):
            return True
        self.core.metrics.count_request("http", "unauthorized")
        self._send_error(RequestError("missing or wrong API key: send `Authorization: Bearer <llm.api_key>`", status=401,
                                      code="invalid_api_key"))
        return False

    def _read_json(self) -> Any:
        length = self.headers.get("Content-Length")
        if length is None:
            raise RequestError("send the JSON body with a Content-Length header", status=411, code="length_required")
        try:
            size = int(length)
        except ValueError:
            raise RequestError(f"bad Content-Length {length!r}") from None
        if size > MAX_BODY_BYTES:
            raise RequestError(f"request body of {size} bytes is over the {MAX_BODY_BYTES} byte limit", status=413, code="too_large")
        raw = self.rfile.read(size)
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON ({exc})", code="invalid_json") from None

    def _client_gone(self) -> bool:
        """True when the client closed its side (readable with nothing to read)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            if not readable:
                return False
            return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    # -- routes ------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not self._authorised():
            return
        path = self.path.split("?")[0]
        if path == "/health":
            self._health()
        elif path == "/metrics":
            data = self.core.metrics.render(self.core.model_name).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        elif path in ("/v1/models", "/models"):
            self._send_json(200, {"object": "list", "data": [self._model_card()]})
        elif path == "/edgeteach/sensors":  # what a request with sensor_context would get right now
            sensors = self.core.sensors
            states = [s.__dict__ for s in sensors.states()] if sensors else []
            self._send_json(200, {"enabled": sensors is not None, "states": states, "summary": self.core.sensor_summary()})
        else:
            self._send_json(404,
                            RequestError(f"no route GET {path}; try /v1/chat/completions, /v1/models, /health, "
                                         "/metrics, /edgeteach/sensors", 404, "not_found").as_json())

    def do_POST(self) -> None:
        if not self._authorised():
            return
        path = self.path.split("?")[0]
        if path not in ("/v1/chat/completions", "/chat/completions"):
            self._send_json(404, RequestError(f"no route POST {path}; chat is POST /v1/chat/completions", 404, "not_found").as_json())
            return
        try:
            request = parse_chat_request(self._read_json(), self.core.settings)
        except RequestError as exc:
            self.core.metrics.count_request("http", "bad_request")
            self._send_error(exc)
            return
        events: queue.Queue[Event] = queue.Queue()
        try:
            admitted = self.core.admit(request, "http", events.put)
        except RequestError as exc:
            self._send_error(exc)
            return
        if request.stream:
            self._stream(request, admitted.job, admitted.sensor_context, events)
        else:
            self._complete(request, admitted.job, admitted.sensor_context, events)

    def _health(self) -> None:
        core = self.core
        if core.ready:
            self._send_json(200, {"status": "ok", "model": core.model_name, "queue_depth": core.worker.depth if core.worker else 0})
        elif core.load_error:
            self._send_json(503, {"status": "error", "error": core.load_error})
        else:
            self._send_json(503, {"status": "loading", "model": core.model_name}, {"Retry-After": "2"})

    def _model_card(self) -> dict[str, Any]:
        core = self.core
        path = core.settings.model or ""
        created = int(os.path.getmtime(path)) if path and os.path.exists(path) else 0
        meta: dict[str, Any] = {"path": path, "loaded": core.ready}
        if core.engine is not None:
            meta.update(context_size=core.engine.context_size, chat_format=core.engine.chat_format)
        return {"id": core.model_name, "object": "model", "created": created, "owned_by": "edgeteach", "meta": meta}

    # -- answering ---------------------------------------------------------------------------------

    def _next_event(self, events: queue.Queue[Event], job: Any) -> Event | None:
        """The job's next event, or None when the client hung up meanwhile (the job is then cancelled).
        The check runs every POLL_S even while events flow, so a non-streaming client that leaves
        mid-generation is noticed too (a streaming one is noticed by the failing write)."""
        while True:
            now = time.monotonic()
            if now - self._last_check >= POLL_S:
                self._last_check = now
                if self._client_gone():
                    job.cancel("cancelled")
                    log.info("request %d: client disconnected; generation cancelled", job.id)
                    return None
            try:
                return events.get(timeout=POLL_S)
            except queue.Empty:
                continue

    def _complete(self, request: ChatRequest, job: Any, injected: str | None, events: queue.Queue[Event]) -> None:
        while True:
            event = self._next_event(events, job)
            if event is None:
                self.close_connection = True
                return
            if isinstance(event, DoneEvent):
                self._send_json(200, completion_object(new_completion_id(), self.core.model_name, request, injected, event.result))
                return
            if isinstance(event, ErrorEvent):
                status = 503 if event.code in ("timeout", "shutdown") else 500
                self._send_error(NotReadyError(event.message) if status == 503 else RequestError(event.message, 500, event.code))
                return

    def _stream(self, request: ChatRequest, job: Any, injected: str | None, events: queue.Queue[Event]) -> None:
        cid, created, model = new_completion_id(), int(time.time()), self.core.model_name
        self.close_connection = True  # the stream's end is the connection's end (no chunked encoding)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self._sse(chunk_object(cid, model, created, {"role": "assistant", "content": ""}))
            while True:
                event = self._next_event(events, job)
                if event is None:
                    return
                if isinstance(event, TextEvent):
                    self._sse(chunk_object(cid, model, created, {"content": event.text}))
                elif isinstance(event, DoneEvent):
                    result = event.result
                    final = chunk_object(cid, model, created, {}, result.finish_reason)
                    final["timings"] = result.timings.as_dict()
                    final["edgeteach"] = edgeteach_meta(request, injected, result)
                    self._sse(final)
                    if request.include_usage:
                        tail = chunk_object(cid, model, created, {})
                        tail["choices"] = []
                        tail["usage"] = usage(result)
                        self._sse(tail)
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
                else:
                    self._sse({"error": {"message": event.message, "type": "server_error", "code": event.code}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    return
        except OSError:  # BrokenPipe / ConnectionReset: the client left mid-stream
            job.cancel("cancelled")
            log.info("request %d: client disconnected mid-stream; generation cancelled", job.id)

    def _sse(self, obj: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")


class LlmHttpServer:
    def __init__(self, core: LlmCore, host: str, port: int) -> None:
        self._server = _Server((host, port), core)
        self._thread = threading.Thread(target=self._server.serve_forever, name="llm-http", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()
        log.info("LLM HTTP API on http://%s:%d/v1 (OpenAI-compatible)", *self.address)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
