"""Preview's routes: what the project's model takes (GET) and one frame or clip classified (POST). Thin: the
work is in `trainer.studio.preview`, run in a worker thread so a model run never stalls the other requests."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from trainer.studio.context import Studio
from trainer.studio.http import json_errors, read_body
from trainer.studio.preview import PreviewLimits, PreviewModels, classify, media_type, model_info


def routes(studio: Studio, limits: PreviewLimits | None = None) -> list[BaseRoute]:
    models = PreviewModels(limits or PreviewLimits())

    async def info(request: Request) -> Response:
        project = studio.store.get(request.path_params["project"])
        return JSONResponse(model_info(models.bundle(project)))

    async def preview(request: Request) -> Response:
        project = studio.store.get(request.path_params["project"])
        variant = request.query_params.get("variant", "fp32")
        content_type = request.headers.get("content-type", "")
        media_type(content_type)  # a 415 before reading a body meant for something else
        data = await read_body(request, models.limits.max_body_bytes)
        result = await run_in_threadpool(classify, models, project, variant, content_type, data)
        return JSONResponse(result.to_dict())

    path = "/api/projects/{project}/preview"
    return [Route(path, json_errors(info), methods=["GET"]), Route(path, json_errors(preview), methods=["POST"])]
