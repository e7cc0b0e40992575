"""HTTP health endpoints for supervisors and monitoring, on 127.0.0.1 by default:

- `GET /healthz`: 200 with a JSON body while the daemon's main loop is healthy, 503 otherwise (the body
  says why), for Docker/Kubernetes-style probes and `curl` checks;
- `GET /metrics`: Prometheus text exposition format 0.0.4 (edge.daemon.metrics gathers the families,
  prometheus_client writes them).

Stdlib only (http.server in a thread): the device must not need a web framework for two endpoints.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger(__name__)

HealthFn = Callable[[], "tuple[bool, dict[str, Any]]"]
MetricsFn = Callable[[], str]


class HealthServer:
    """Serves /healthz and /metrics from a daemon thread. `port=0` picks a free port (see `.port`)."""

    def __init__(self, host: str, port: int, health: HealthFn, metrics: MetricsFn) -> None:
        self._health = health
        self._metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "edgeteach"

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/healthz":
                        ok, body = outer._health()
                        self._send(200 if ok else 503, "application/json", json.dumps(body, default=str).encode())
                    elif path == "/metrics":
                        self._send(200, "text/plain; version=0.0.4; charset=utf-8", outer._metrics().encode())
                    else:
                        self._send(404, "text/plain", b"not found: try /healthz or /metrics\n")
                except Exception as exc:  # a broken metric must not kill the server thread
                    log.exception("health endpoint %s failed", path)
                    self._send(500, "text/plain", f"internal error: {exc}\n".encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("health: " + format, *args)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:
            raise OSError(f"health server cannot listen on {host}:{port} ({exc.strerror}); pick a free port in health.port or "
                          "set health.enabled: false") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.25}, name="health-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
