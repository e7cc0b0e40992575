"""uvicorn for the Studio, with the same guards as edge/host/webserver.py (which the trainer may not import,
docs/architecture.md): a connection cap, a keep-alive timeout and a bounded request head."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from trainer.studio.limits import StudioLimits

MAX_HEAD_BYTES = 16 * 1024


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to a LAN address
        return False


class StudioServer:
    """Binds in the constructor (OSError when the port is taken; port 0 picks a free one)."""

    def __init__(self, app: Starlette, host: str, port: int, limits: StudioLimits) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
            self.sock.listen(256)
        except OSError:
            self.sock.close()
            raise
        self.app = app
        config = uvicorn.Config(app, ws="none", lifespan="off", log_config=None, access_log=False, server_header=False,
                                timeout_keep_alive=limits.idle_timeout_s, limit_concurrency=limits.max_connections,
                                h11_max_incomplete_event_size=MAX_HEAD_BYTES, timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def serve_forever(self) -> None:
        """In the calling thread, until Ctrl-C / SIGTERM (uvicorn handles them)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.app.state.trainings.stop()

    def start(self) -> None:
        """On a background thread (tests); returns once it accepts connections."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise OSError("the Studio's HTTP server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
        self.app.state.trainings.stop()
        self.sock.close()
