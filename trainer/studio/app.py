"""The Studio's HTTP routes (Starlette): thin handlers over `projects`, `uploads`, `jobs` and `export`.
A feature with routes of its own (preview, playground, ...) has its own module with `routes(studio)`,
listed in FEATURES below."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from edge.core.audio import AudioDecodeError
from edge.core.images import ImageDecodeError
from edge.core.webserver import CORE_STATIC
from trainer.studio import auth, curation_routes, export, preview_routes, send_routes
from trainer.studio.context import Studio
from trainer.studio.http import json_errors, read_body, read_json
from trainer.studio.jobs import TrainingQueue, TrainSettings, parse_settings
from trainer.studio.limits import SOUND_DEFAULTS, StudioLimits
from trainer.studio.playground_routes import routes as playground
from trainer.studio.projects import ProjectError, ProjectStore
from trainer.studio.send import Sender
from trainer.studio.uploads import save_image, save_sound, thumbnail
from trainer.studio.waveform import waveform_svg

STATIC = Path(__file__).parent / "static"

# Features with routes of their own: each module's `routes(studio)` adds its routes under /api/.
FEATURES: tuple[Callable[[Studio], list[BaseRoute]], ...] = (preview_routes.routes, playground, curation_routes.routes,
                                                          send_routes.routes)


def create_app(projects_dir: Path, password: str | None = None, limits: StudioLimits | None = None,
               cache_dir: Path | None = None, llm_models: Path | None = None, sender: Sender | None = None) -> Starlette:
    limits = limits or StudioLimits()
    store = ProjectStore(projects_dir, limits)
    trainings = TrainingQueue(store, cache_dir, limits.max_queue)
    gate = auth.class_password(password, limits)
    studio = Studio(store=store, trainings=trainings, limits=limits, cache_dir=cache_dir, llm_models=llm_models,
                    sender=sender)

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def login(request: Request) -> Response:
        return await auth.login(request, gate)

    async def list_projects(request: Request) -> Response:
        return JSONResponse({"projects": [store.summary(store.get(n)) for n in store.names()]})

    async def create_project(request: Request) -> Response:
        body = await read_json(request, limits.max_json_bytes)
        return JSONResponse(store.summary(store.create(body.get("name"), body.get("task"))), 201)

    async def show_project(request: Request) -> Response:
        return JSONResponse(store.summary(store.get(request.path_params["project"])))

    async def add_class(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        body = await read_json(request, limits.max_json_bytes)
        return JSONResponse({"name": store.add_class(project, body.get("name"))}, 201)

    async def change_class(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        name = request.path_params["class_name"]
        if request.method == "DELETE":
            store.delete_class(project, name)
            return JSONResponse({"deleted": name})
        body = await read_json(request, limits.max_json_bytes)
        return JSONResponse({"name": store.rename_class(project, name, body.get("name"))})

    async def add_sample(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        class_name = request.path_params["class_name"]
        project.sample_dir(class_name)  # 404 before reading a body meant for nothing
        sound = project.task == "sound"
        data = await read_body(request, limits.max_sound_bytes if sound else limits.max_upload_bytes)
        filename = request.query_params.get("filename", "sound" if sound else "image")[:200]
        save = save_sound if sound else save_image
        return JSONResponse({"name": save(store, project, class_name, filename, data)}, 201)

    async def sample(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        class_name, name = request.path_params["class_name"], request.path_params["sample"]
        if request.method == "DELETE":
            store.delete_sample(project, class_name, name)
            return JSONResponse({"deleted": name})
        path = project.sample_path(class_name, name)
        cache = {"cache-control": "private, max-age=3600"}  # a sample never changes under its name
        if request.query_params.get("size") == "thumb" and project.task == "sound":
            try:
                return Response(waveform_svg(path), media_type="image/svg+xml", headers=cache)
            except AudioDecodeError:  # a file put in the folder by hand that is not sound
                raise ProjectError(f"sample {name!r} is not a readable sound", 415) from None
        if request.query_params.get("size") == "thumb":
            try:
                return Response(thumbnail(path), media_type="image/jpeg", headers=cache)
            except ImageDecodeError:  # a file put in the folder by hand that is not an image
                raise ProjectError(f"sample {name!r} is not a readable image", 415) from None
        return FileResponse(path, headers=cache)

    async def train(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        if request.method == "POST":
            trainings.submit(project, parse_settings(await read_json(request, limits.max_json_bytes)))
        # the Advanced panel starts from the trainer's own defaults (trainer/studio/limits.py), sent from here
        # (a sound project: the sound trainer's own)
        defaults = {**vars(TrainSettings()), **(SOUND_DEFAULTS if project.task == "sound" else {})}
        return JSONResponse({"job": trainings.status(project.name), "defaults": defaults})

    async def cancel(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        trainings.cancel(project.name)
        return JSONResponse({"job": trainings.status(project.name)})

    async def report(request: Request) -> Response:
        return JSONResponse(export.report(store.get(request.path_params["project"])))

    async def download(request: Request) -> Response:
        project = store.get(request.path_params["project"])
        data = export.bundle_zip(project)
        return Response(data, media_type="application/zip",
                        headers={"content-disposition": f'attachment; filename="{export.bundle_name(project)}.zip"'})

    class Gate(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            return auth.refuse(request, gate) or await call_next(request)

    p = "/api/projects/{project}"
    routes = [
        Route("/", index),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/api/projects", json_errors(list_projects), methods=["GET"]),
        Route("/api/projects", json_errors(create_project), methods=["POST"]),
        Route(p, json_errors(show_project)),
        Route(f"{p}/classes", json_errors(add_class), methods=["POST"]),
        Route(p + "/classes/{class_name}", json_errors(change_class), methods=["PATCH", "DELETE"]),
        Route(p + "/classes/{class_name}/samples", json_errors(add_sample), methods=["POST"]),
        Route(p + "/classes/{class_name}/samples/{sample}", json_errors(sample), methods=["GET", "DELETE"]),
        Route(f"{p}/train", json_errors(train), methods=["GET", "POST"]),
        Route(f"{p}/train/cancel", json_errors(cancel), methods=["POST"]),
        Route(f"{p}/report", json_errors(report)),
        Route(f"{p}/bundle.zip", json_errors(download)),
        *(route for feature in FEATURES for route in feature(studio)),
        Mount("/static/core", StaticFiles(directory=CORE_STATIC), name="core-static"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Gate)])
    app.state.trainings = trainings
    app.state.store = store
    return app
