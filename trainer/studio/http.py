"""Request reading and error mapping shared by every Studio route module: bounded bodies and JSON errors."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from trainer.studio.names import BadName
from trainer.studio.projects import ProjectError

Handler = Callable[[Request], Awaitable[Response]]


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused before reading when its declared length is over `limit` (413), or when it has none (411)."""
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise ProjectError("send the data with a Content-Length", 411)
    if int(length) > limit:
        raise ProjectError(f"this is {int(length)} bytes; the most accepted here is {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ProjectError(f"more than {limit} bytes; the most accepted here is {limit} bytes", 413)
    return bytes(body)


async def read_json(request: Request, limit: int) -> dict[str, object]:
    try:
        value = json.loads(await read_body(request, limit))
    except (ValueError, UnicodeDecodeError):
        raise ProjectError("send a JSON object") from None
    if not isinstance(value, dict):
        raise ProjectError("send a JSON object")
    return value


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
