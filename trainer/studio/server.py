"""uvicorn for the Studio, with the guards of the device's own HTTP servers (edge/core/webserver.py): a deadline for
every request head, a connection cap that closes the idlest connection first, and a bounded request head."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn
from starlette.applications import Starlette

from edge.core.webserver import MAX_HEAD_BYTES, ServerLimits, bind, guarded_protocol
from trainer.studio.limits import StudioLimits


class StudioServer:
    """Binds in the constructor (OSError when the port is taken; port 0 picks a free one)."""

    def __init__(self, app: Starlette, host: str, port: int, limits: StudioLimits) -> None:
        self.sock = bind(host, port)
        self.app = app
        guards = ServerLimits(idle_timeout_s=limits.idle_timeout_s, max_connections=limits.max_connections)
        config = uvicorn.Config(app, http=guarded_protocol(guards), ws="none", lifespan="off", log_config=None, access_log=False,
                                server_header=False, timeout_keep_alive=limits.idle_timeout_s,
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
