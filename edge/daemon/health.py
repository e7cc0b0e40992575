"""HTTP health endpoints for supervisors and monitoring, on 127.0.0.1 by default:

- `GET /healthz`: 200 with a JSON body while the daemon's main loop is healthy, 503 otherwise (the body
  says why), for Docker/Kubernetes-style probes and `curl` checks;
- `GET /metrics`: Prometheus text exposition format 0.0.4 (edge.daemon.metrics gathers the families,
  prometheus_client writes them).

A Starlette app under uvicorn (edge.core.webserver): the same framing, timeouts and connection cap as the
LLM API, so a neighbour's slow or half-open sockets cannot hold the probe hostage.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from edge.core.webserver import BackgroundServer, ServerLimits

log = logging.getLogger(__name__)

HealthFn = Callable[[], "tuple[bool, dict[str, Any]]"]
MetricsFn = Callable[[], str]
LIMITS = ServerLimits()  # two cheap endpoints: the defaults


class HealthServer:
    """Serves /healthz and /metrics from a daemon thread. `port=0` picks a free port (see `.port`)."""

    def __init__(self, host: str, port: int, health: HealthFn, metrics: MetricsFn) -> None:
        self._health = health
        self._metrics = metrics
        app = Starlette(routes=[Route("/healthz", self._healthz), Route("/metrics", self._prometheus)])
        app.add_exception_handler(404, _not_found)
        app.add_exception_handler(405, _not_found)
        try:
            self._server = BackgroundServer(app, host, port, LIMITS, name="health-http")
        except OSError as exc:
            raise OSError(f"health server cannot listen on {host}:{port} ({exc.strerror}); pick a free port in health.port or "
                          "set health.enabled: false") from exc

    # Both callbacks read the daemon's state (locks, a registry walk): cheap, but off the event loop all the
    # same, so one slow call never stalls the other connections. A failure is logged, never echoed.
    async def _healthz(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            ok, body = await run_in_threadpool(self._health)
            return Response(json.dumps(body, default=str), 200 if ok else 503, media_type="application/json")
        except Exception:
            log.exception("health endpoint /healthz failed")
            return PlainTextResponse("internal error (the daemon's log has the details)\n", 500)

    async def _prometheus(self, request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        try:
            text = await run_in_threadpool(self._metrics)
            return Response(text, 200, media_type="text/plain; version=0.0.4; charset=utf-8")
        except Exception:
            log.exception("health endpoint /metrics failed")
            return PlainTextResponse("internal error (the daemon's log has the details)\n", 500)

    @property
    def port(self) -> int:
        return self._server.address[1]

    def start(self) -> HealthServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()


async def _not_found(request: Request, exc: Exception) -> Response:
    # The body of a request we do not serve is never read: close, so it cannot be taken for the next request.
    return PlainTextResponse("not found: try /healthz or /metrics\n", 404, headers={"Connection": "close"})
