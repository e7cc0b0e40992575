"""The dashboard's chat box: the page's messages checked and bounded, sent to the device's LLM over its own HTTP
API (edge.llm.client.HttpChat, the client `edge llm chat` uses), and the answer streamed back to the page as
JSON lines: {"text": ...} per piece, then {"done": true, "sensor_context": ...} (what the LLM was told about
the sensors) or {"error": ...}."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from edge.dashboard.device import LlmLink
from edge.llm.chat_format import Message
from edge.llm.client import ClientError, HttpChat

log = logging.getLogger(__name__)

MAX_MESSAGES = 20
MAX_MESSAGE_CHARS = 2000
ROLES = ("user", "assistant")


class ChatRequestError(ValueError):
    """A chat request the page should not have sent; the message says what is wrong."""


def parse_messages(body: dict[str, Any]) -> list[Message]:
    """The conversation from the page: {"messages": [{"role": "user"|"assistant", "content": str}, ...]}, the last
    one the user's; at most MAX_MESSAGES of at most MAX_MESSAGE_CHARS each."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError('send {"messages": [{"role": "user", "content": "..."}]}')
    if len(messages) > MAX_MESSAGES:
        raise ChatRequestError(f"at most {MAX_MESSAGES} messages; start a new conversation")
    out: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ChatRequestError(f'message {index}: needs "role" ("user" or "assistant") and a text "content"')
        if len(message["content"]) > MAX_MESSAGE_CHARS:
            raise ChatRequestError(f"message {index} is longer than {MAX_MESSAGE_CHARS} characters; shorten it")
        out.append({"role": message["role"], "content": message["content"]})
    if out[-1]["role"] != "user" or not out[-1]["content"].strip():
        raise ChatRequestError("the last message must be the user's question")
    return out


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")


async def stream_answer(link: LlmLink, messages: list[Message]) -> AsyncIterator[bytes]:
    """The answer as JSON lines, as the LLM streams it. The blocking HTTP client runs on a worker thread; its
    pieces cross to the event loop through a queue."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue[bytes | None] = asyncio.Queue()

    def on_text(text: str) -> None:
        loop.call_soon_threadsafe(pieces.put_nowait, _line({"text": text}))

    def ask() -> None:
        try:
            answer = HttpChat(link.url, link.api_key).stream(messages, on_text, sensor_context=True)
            end: dict[str, Any] = {"done": True, "sensor_context": answer.sensor_context, "finish_reason": answer.finish_reason}
        except ClientError as exc:
            end = {"error": str(exc)}
        except Exception as exc:  # a dropped connection mid-answer, a bad chunk: said on the page, logged here
            log.exception("dashboard chat failed")
            end = {"error": f"the LLM answer broke off ({type(exc).__name__}); the device log has the details"}
        loop.call_soon_threadsafe(pieces.put_nowait, _line(end))
        loop.call_soon_threadsafe(pieces.put_nowait, None)

    worker = loop.run_in_executor(None, ask)
    while (piece := await pieces.get()) is not None:
        yield piece
    await worker
