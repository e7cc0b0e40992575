"""The dashboard's HTTP server: the app under uvicorn on a daemon thread (edge.core.webserver), with the same
request-head deadline and idlest-first connection cap as the health server and the LLM API."""

from __future__ import annotations

import logging

from edge.config.dashboard import DashboardSettings
from edge.core.hosts import is_loopback
from edge.core.webauth import PasswordError, read_password_file
from edge.core.webserver import BackgroundServer, ServerLimits
from edge.dashboard.app import Dashboard
from edge.dashboard.device import Device

log = logging.getLogger(__name__)

# A phone and a projector each hold a stream or two and poll twice a second: the default cap of 64 is plenty;
# an idle connection gets 10 s to send its request, as on the health server.
LIMITS = ServerLimits()


class DashboardServer:
    """Binds in the constructor (OSError when the port is taken or the password cannot be read; port 0 picks a
    free one, see `.port`)."""

    def __init__(self, settings: DashboardSettings, device: Device) -> None:
        password: str | None = None
        if settings.password_file:
            try:
                password = read_password_file(settings.password_file, "dashboard.password_file")
            except PasswordError as exc:
                raise OSError(f"dashboard not started: {exc}") from None
        elif not is_loopback(settings.host):  # the config check refuses this; a config built in code may not have been checked
            raise OSError(f"dashboard not started: on {settings.host} it needs dashboard.password_file")
        self.dashboard = Dashboard(device, settings.host, password, settings.stream_fps)
        try:
            self._server = BackgroundServer(self.dashboard.app, settings.host, settings.port, LIMITS, name="dashboard-http")
        except OSError as exc:
            raise OSError(f"dashboard cannot listen on {settings.host}:{settings.port} ({exc.strerror}); pick a free port in "
                          "dashboard.port or set dashboard.enabled: false") from exc

    @property
    def port(self) -> int:
        return self._server.address[1]

    def start(self) -> DashboardServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self.dashboard.closing.set()  # open MJPEG streams end now instead of holding the graceful shutdown
        self._server.stop()
