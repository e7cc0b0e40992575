"""Request bodies read with a bound, for the EdgeTeach web apps (the trainer's Studio, the device dashboard): a
body without a Content-Length is refused (411), one that declares more than the limit is refused before a byte
is read (413), and one that sends more than it declared stops at the limit. The LLM API has its own reader
(edge/llm/http_api.py): it also times the body and answers in OpenAI's error shape."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BodyError(ValueError):
    """A body refused; `status` is the HTTP status to answer with, the message says what to send instead."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


async def read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise BodyError("send the data with a Content-Length", 411)
    if int(length) > limit:
        raise BodyError(f"this is {int(length)} bytes; the most accepted here is {limit} bytes", 413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyError(f"more than {limit} bytes; the most accepted here is {limit} bytes", 413)
    return bytes(body)


async def read_json_object(request: Request, limit: int, empty: dict[str, Any] | None = None) -> dict[str, Any]:
    """The body as a JSON object; `empty` (when given) stands for a body of no bytes."""
    raw = await read_body(request, limit)
    if not raw and empty is not None:
        return dict(empty)
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BodyError("send a JSON object") from None
    if not isinstance(value, dict):
        raise BodyError("send a JSON object")
    return value
