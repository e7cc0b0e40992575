"""Runs an ASGI app (Starlette) under uvicorn, guarded for a shared network: the device's LLM API and health
endpoints (in a background thread, `BackgroundServer`) and the trainer's Studio (`guarded_protocol`, `bind`).

uvicorn (with h11) does the HTTP framing: a Content-Length that is not digits, a malformed request line
and request heads over `MAX_HEAD_BYTES` are answered 400 and the connection closed. Two things it does not
do, and this module adds:

- **A deadline for every request head.** uvicorn starts its keep-alive timer only after a response, and
  stops it at the first byte received, so a socket that connects and sends nothing (or half a request
  line, a byte a minute) would be held forever. Here a connection must deliver a complete request head
  within `idle_timeout_s` of opening, and again within `idle_timeout_s` of each response; else it is closed.
- **A connection cap that idle sockets cannot use to starve real clients.** uvicorn's `limit_concurrency`
  counts connections, so 500 silent sockets would make it answer 503 to everyone. Here, when a new
  connection would go over `max_connections`, the connection that has waited longest *without a request in
  flight* is closed to make room (it has not even sent a request; closing it loses nothing). Only when every
  connection has a request in flight does the newcomer get `503` and a closed connection.

The app runs on the thread's own event loop; `stop()` ends it (signals stay with the main thread).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024  # request line + headers; a bigger head is a 400 (h11's incomplete-event limit)
START_TIMEOUT_S = 10.0
_FULL_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
             b"retry-after: 1\r\ncontent-length: 45\r\n\r\ntoo many connections in progress; retry soon\n")


# Page code shared by every EdgeTeach web page (dom.js), served by each app at /static/core/ (before its own /static)
CORE_STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class ServerLimits:
    """What one slow or hostile client can hold. Defaults suit the health endpoints; the LLM API takes its
    own from `llm:` (edge/config/llm.py)."""

    idle_timeout_s: float = 10.0  # to deliver a request head, after connecting or after the last response
    max_connections: int = 64  # open at once; idle ones are closed first to make room


class _QuietUvicorn(logging.Filter):
    """uvicorn logs every malformed request as a WARNING and its start and stop as INFO: on a shared network
    a neighbour could fill the journal with one line per bad request. Those go to DEBUG (`edge -v` shows
    them); errors (an exception in the app, with its traceback) stay errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # Handlers do not re-check the logger's level once a record exists: drop it here unless DEBUG is on.
        return _UVICORN_LOG.isEnabledFor(logging.DEBUG)


_UVICORN_LOG = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _QuietUvicorn) for f in _UVICORN_LOG.filters):
    _UVICORN_LOG.addFilter(_QuietUvicorn())


def guarded_protocol(limits: ServerLimits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the head deadline and the cap (uvicorn accepts a protocol class)."""

    class GuardedH11Protocol(H11Protocol):
        _waiting_since: float = 0.0  # when this connection last started waiting for a request head
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_deadline()
            if len(self.connections) > limits.max_connections and not self._make_room():
                log.warning("HTTP: %d connections, all with a request in flight; refusing %s with 503",
                            len(self.connections) - 1, self.client)
                transport.write(_FULL_503)
                transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            super().connection_lost(exc)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm_deadline()

        def send_400_response(self, msg: str) -> None:
            # uvicorn answers a malformed request itself (e.g. a bad chunk size in a body the app has not read yet)
            # while the app may still be answering that request's head: the app's answer must then be dropped
            # (uvicorn's send skips a disconnected cycle) instead of raising h11's LocalProtocolError after the 400.
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True
                cycle.message_event.set()  # a receive() waiting for the body sees http.disconnect
                if cycle.response_started:  # part of the app's answer is out: no valid 400 can follow it
                    self.transport.close()
                    return
            super().send_400_response(msg)

        @property
        def request_in_flight(self) -> bool:
            return self.cycle is not None and not self.cycle.response_complete

        def _arm_deadline(self) -> None:
            self._waiting_since = time.monotonic()
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = self.loop.call_later(limits.idle_timeout_s, self._on_deadline)

        def _on_deadline(self) -> None:
            # A request that arrived meanwhile is left alone; its response re-arms the deadline.
            if not self.request_in_flight and not self.transport.is_closing():
                log.debug("HTTP: closing %s: no complete request within %g s", self.client, limits.idle_timeout_s)
                self._close()

        def _close(self) -> None:
            try:
                self.conn.send(h11.ConnectionClosed())
            except h11.LocalProtocolError:  # mid-request: nothing more may be sent anyway
                pass
            self.transport.close()

        def _make_room(self) -> bool:
            """Closes the connection idle the longest (not this one); False when none is idle."""
            idle = [c for c in self.connections if c is not self and isinstance(c, GuardedH11Protocol)
                    and not c.request_in_flight and not c.transport.is_closing()]
            if not idle:
                return False
            oldest = min(idle, key=lambda c: c._waiting_since)
            log.debug("HTTP: %d connections (cap %d): closing the idlest, %s", len(self.connections), limits.max_connections,
                      oldest.client)
            oldest._close()
            return True

    return GuardedH11Protocol


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, bound here so that a taken port is an OSError for the caller (uvicorn would exit)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


class BackgroundServer:
    """One ASGI app on one socket, served by uvicorn on a daemon thread. Binds in the constructor (OSError
    if the address is taken); `port=0` picks a free port (see `.address`)."""

    def __init__(self, app: Callable[..., Any], host: str, port: int, limits: ServerLimits, name: str) -> None:
        self._sock = bind(host, port)
        config = uvicorn.Config(
            app,
            http=guarded_protocol(limits),
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,  # our logging setup, not uvicorn's
            access_log=False,
            server_header=False,
            timeout_keep_alive=int(max(1, limits.idle_timeout_s)),
            timeout_graceful_shutdown=2,
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._error: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    def _run(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # reported by start(), or logged if it dies later
            self._error = exc
            log.exception("HTTP server %s stopped", self._thread.name)

    def start(self) -> None:
        """Returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise OSError(f"HTTP server {self._thread.name} failed to start: {self._error}")
            if time.monotonic() > deadline:
                raise OSError(f"HTTP server {self._thread.name} did not start within {START_TIMEOUT_S:g} s")
            time.sleep(0.01)

    def stop(self, timeout: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        self._sock.close()
