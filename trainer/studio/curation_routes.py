"""Routes of the curation feature (trainer/studio/curation.py): the class order, the samples behind a cell
of the confusion matrix, and the Advanced panel's choices (trainer/studio/choices.py). Thin handlers."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from trainer.studio import curation
from trainer.studio.choices import advanced_choices
from trainer.studio.context import Studio
from trainer.studio.http import json_errors, read_json


def routes(studio: Studio) -> list[BaseRoute]:
    store, limits = studio.store, studio.limits

    async def class_order(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        if request.method == "GET":
            return JSONResponse({"classes": curation.class_order(project)})
        body = await read_json(request, limits.max_order_json_bytes)
        return JSONResponse({"classes": curation.save_order(store, project, body.get("classes"))})

    async def confusion(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        query = request.query_params
        return JSONResponse(curation.confusion_cell(project, query.get("true"), query.get("predicted")))

    async def choices(request: Request) -> Response:
        return JSONResponse(advanced_choices())

    p = "/api/projects/{project}"
    return [
        Route(f"{p}/class-order", json_errors(class_order), methods=["GET", "PUT"]),
        Route(f"{p}/confusion", json_errors(confusion), methods=["GET"]),
        Route("/api/train-choices", json_errors(choices), methods=["GET"]),
    ]
