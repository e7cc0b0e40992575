"""Request reading and error mapping shared by every Studio route module: bounded bodies and JSON errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge.core import httpbody
from trainer.studio.names import BadName
from trainer.studio.projects import ProjectError

Handler = Callable[[Request], Awaitable[Response]]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, bounded (edge/core/httpbody.py); a refusal is a ProjectError with its status."""
    try:
        return await httpbody.read_body(request, limit)
    except httpbody.BodyError as exc:
        raise ProjectError(str(exc), exc.status) from None


async def read_json(request: Request, limit: int) -> dict[str, object]:
    try:
        return await httpbody.read_json_object(request, limit)
    except httpbody.BodyError as exc:
        raise ProjectError(str(exc), exc.status) from None


def json_errors(handler: Handler) -> Handler:
    """`handler` with ProjectError and BadName answered as {"error": text} and their status."""
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ProjectError as exc:
            return JSONResponse({"error": str(exc)}, exc.status)
        except BadName as exc:
            return JSONResponse({"error": str(exc)}, 400)

    return wrapped
