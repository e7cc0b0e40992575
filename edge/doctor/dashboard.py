"""The dashboard `edge run` serves: where it will be, whether its password file can be read (else the daemon runs
without the page), and whether its port is free or already answered by a dashboard."""

from __future__ import annotations

import http.client
from typing import TYPE_CHECKING

from edge.core.hosts import is_loopback
from edge.core.webauth import PasswordError, read_password_file
from edge.doctor.base import CheckResult

if TYPE_CHECKING:
    from edge.config import EdgeConfig

PROBE_TIMEOUT_S = 2.0
OUR_STYLESHEET = "/static/dashboard.css"  # served without signing in; a stranger on the port answers 404 or nothing


def probe(host: str, port: int) -> str:
    """"free", "dashboard" (a dashboard answers there: the running daemon's) or "other" (something else does)."""
    target = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    conn = http.client.HTTPConnection(target, port, timeout=PROBE_TIMEOUT_S)
    try:
        conn.request("GET", OUR_STYLESHEET)
        response = conn.getresponse()
        body = response.read(65536)
    except ConnectionRefusedError:
        return "free"
    except (OSError, http.client.HTTPException):
        return "other"
    finally:
        conn.close()
    return "dashboard" if response.status == 200 and b".tile" in body else "other"


def check_dashboard(config: EdgeConfig | None) -> CheckResult:
    if config is None:
        return CheckResult("dashboard", "skip", "no config")
    settings = config.dashboard
    if not settings.enabled:
        return CheckResult("dashboard", "skip", "off (dashboard.enabled: false)")
    url = f"http://{settings.host}:{settings.port}/"
    if settings.password_file:
        try:
            read_password_file(settings.password_file, "dashboard.password_file")
        except PasswordError as exc:
            return CheckResult("dashboard", "fail", f"{exc}: `edge run` would run without its page",
                               "write the password on the file's first line, readable by the service's user (edgeteach)")
        access = "with a password"
    elif is_loopback(settings.host):
        access = "this machine only, no password"
    else:  # the config check refuses this; a row says so all the same
        return CheckResult("dashboard", "fail", f"{url} on the network without dashboard.password_file",
                           "set dashboard.password_file, or dashboard.host: 127.0.0.1")
    state = probe(settings.host, settings.port)
    if state == "other":
        return CheckResult("dashboard", "warn", f"port {settings.port} is answered by another program: `edge run` would run without "
                           "its page", "pick a free dashboard.port, or stop the other program")
    running = "answering (the daemon runs)" if state == "dashboard" else "port free"
    return CheckResult("dashboard", "ok", f"{url} ({access}); {running}")
