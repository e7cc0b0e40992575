"""Send to devices: the fleet rollout from the Export tab. Thin: the work is in `trainer.studio.send`.

Only from the Studio's own computer (a loopback client): on a LAN the class password lets every student in, and
the signing key the Studio holds would let any of them put a model on the whole class's devices."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from edge.core.hosts import is_loopback
from trainer.studio.context import Studio
from trainer.studio.export import bundle_name
from trainer.studio.http import json_errors, read_json
from trainer.studio.send import SETUP_HINT, Sender, SendError, parse_target


def routes(studio: Studio) -> list[BaseRoute]:
    def sender(request: Request) -> Sender:
        if studio.sender is None:
            raise SendError(f"sending to devices is off: {SETUP_HINT}", 409)
        if request.client is None or not is_loopback(request.client.host):
            raise SendError("models are sent to devices only from the Studio's own computer (the teacher's)", 403)
        return studio.sender

    async def settings(request: Request) -> Response:
        on = studio.sender is not None
        local = request.client is not None and is_loopback(request.client.host)
        return JSONResponse({"enabled": on, "here": local, "setup": None if on else SETUP_HINT})

    async def devices(request: Request) -> Response:
        return JSONResponse({"devices": await run_in_threadpool(sender(request).devices)})

    async def rollout(request: Request) -> Response:
        return JSONResponse({"rollout": sender(request).rollout()})

    async def send(request: Request) -> Response:
        fleet = sender(request)
        project = studio.store.get(request.path_params["project"])
        if not (project.model_dir / "manifest.json").is_file():
            raise SendError(f"project {project.name!r} has no trained model yet: train it first", 404)
        target = parse_target(await read_json(request, studio.limits.max_json_bytes))
        view = await run_in_threadpool(fleet.send, project.name, project.model_dir, bundle_name(project), target)
        return JSONResponse({"rollout": view}, 202)

    async def rollback(request: Request) -> Response:
        fleet = sender(request)
        target = parse_target(await read_json(request, studio.limits.max_json_bytes), rollout=False)
        return JSONResponse({"rollout": await run_in_threadpool(fleet.rollback, target)}, 202)

    return [
        Route("/api/fleet", json_errors(settings), methods=["GET"]),
        Route("/api/fleet/devices", json_errors(devices), methods=["GET"]),
        Route("/api/fleet/rollout", json_errors(rollout), methods=["GET"]),
        Route("/api/fleet/rollback", json_errors(rollback), methods=["POST"]),
        Route("/api/projects/{project}/send", json_errors(send), methods=["POST"]),
    ]
