"""Chat requests (OpenAI's shape, also used over MQTT): validation with errors that say what to fix, and
the OpenAI-compatible response objects."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge.config.llm import LlmSettings
from edge.llm.chat_format import Message
from edge.llm.engine import Generation

ROLES = ("system", "user", "assistant")


class RequestError(ValueError):
    """A request we refuse; `status` is the HTTP status, `code` a stable machine-readable name."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request", param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.param = param

    def as_json(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error" if self.status < 500 else "server_error",
                          "code": self.code, "param": self.param}}


@dataclass
class ChatRequest:
    messages: list[Message]
    max_tokens: int
    max_tokens_capped: bool  # the client asked for more than llm.max_tokens
    temperature: float
    top_p: float
    seed: int | None
    stop: list[str]
    stream: bool
    include_usage: bool
    sensor_context: bool
    extra: dict[str, Any] = field(default_factory=dict)


MAX_JSON_ECHO_CHARS = 40  # how much of a bad value an error message quotes back


def parse_json(raw: bytes) -> Any:
    """The body of an HTTP or MQTT request. Every way JSON can fail is a RequestError (400 / an MQTT error
    reply): invalid text, invalid UTF-8, and nesting so deep that the parser hits Python's recursion limit."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise RequestError("the JSON is nested too deeply", code="invalid_json") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError's text is a position, nothing internal
        raise RequestError(f"the request is not valid JSON ({exc})", code="invalid_json") from None


def _shown(value: Any) -> str:
    """A client's value quoted back in an error, cut short (a 1 MiB string is not echoed)."""
    text = repr(value)
    return text if len(text) <= MAX_JSON_ECHO_CHARS else text[:MAX_JSON_ECHO_CHARS] + "..."


def _number(body: dict[str, Any], key: str, default: Any, lo: float, hi: float, integer: bool = False) -> Any:
    value = body.get(key)
    if value is None:
        return default
    shown = _shown(value)
    kind = "an integer" if integer else "a number"
    try:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not float(value).is_integer()):
            raise RequestError(f"'{key}' must be {kind} between {lo:g} and {hi:g}, got {shown}", param=key)
    except OverflowError:  # an integer too large for a float, e.g. 10**400
        raise RequestError(f"'{key}' must be {kind} between {lo:g} and {hi:g}, got a number too large", param=key) from None
    if not lo <= value <= hi:
        raise RequestError(f"'{key}' must be between {lo:g} and {hi:g}, got {shown}", param=key)
    return int(value) if integer else float(value)


def _content_text(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only text parts make sense for this model
        texts = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise RequestError(f"messages[{index}].content: only text parts ({{'type': 'text', 'text': ...}}) are supported",
                                   param="messages")
        return "".join(texts)
    raise RequestError(f"messages[{index}].content must be a string, got {type(content).__name__}", param="messages")


def parse_messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise RequestError("'messages' must be a non-empty list of {\"role\": \"user\", \"content\": \"...\"} objects", param="messages")
    messages: list[Message] = []
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise RequestError(f"messages[{i}] must be an object with 'role' and 'content'", param="messages")
        role = m.get("role")
        if role == "developer":  # OpenAI's newer name for the system role
            role = "system"
        if role not in ROLES:
            raise RequestError(f"messages[{i}].role must be one of {', '.join(ROLES)}, got {_shown(role)}", param="messages")
        if "content" not in m:
            raise RequestError(f"messages[{i}] has no 'content'", param="messages")
        messages.append({"role": role, "content": _content_text(m.get("content"), i)})
    return messages


def parse_chat_request(body: Any, settings: LlmSettings) -> ChatRequest:
    """Validates an OpenAI chat-completions body (or an MQTT request, which may give `prompt` instead of
    `messages`). Extensions: `sensor_context` (bool), also accepted as `edgeteach: {sensor_context: ...}`."""
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    if "messages" in body:
        messages = parse_messages(body["messages"])
    elif isinstance(body.get("prompt"), str) and body["prompt"].strip():
        messages = [{"role": "user", "content": body["prompt"]}]
        if isinstance(body.get("system"), str) and body["system"]:
            messages.insert(0, {"role": "system", "content": body["system"]})
    else:
        raise RequestError("give 'messages' (a list of {role, content}) or 'prompt' (a non-empty string)", param="messages")
    asked = body.get("max_completion_tokens", body.get("max_tokens"))
    asked = _number({"max_tokens": asked}, "max_tokens", None, 1, 1_000_000, integer=True)
    max_tokens = settings.max_tokens if asked is None else min(asked, settings.max_tokens)
    stop = body.get("stop") or []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise RequestError("'stop' must be a string or a list of up to 4 non-empty strings", param="stop")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise RequestError(f"'stream' must be true or false, got {_shown(stream)}", param="stream")
    options = body.get("stream_options") or {}
    ext_value = body.get("edgeteach")
    ext = ext_value if isinstance(ext_value, dict) else {}
    sensor = body.get("sensor_context", ext.get("sensor_context", settings.sensor_context))
    if not isinstance(sensor, bool):
        raise RequestError(f"'sensor_context' must be true or false, got {_shown(sensor)}", param="sensor_context")
    return ChatRequest(
        messages=messages,
        max_tokens=max_tokens,
        max_tokens_capped=asked is not None and asked > settings.max_tokens,
        temperature=_number(body, "temperature", settings.temperature, 0.0, 2.0),
        top_p=_number(body, "top_p", 0.95, 0.0, 1.0),
        seed=_number(body, "seed", None, -(2**31), 2**32 - 1, integer=True),
        stop=stop,
        stream=stream,
        include_usage=bool(isinstance(options, dict) and options.get("include_usage")),
        sensor_context=sensor,
    )


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(result: Generation) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


def edgeteach_meta(request: ChatRequest, injected: str | None, result: Generation | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"sensor_context": injected, "max_tokens": request.max_tokens}
    if request.max_tokens_capped:
        meta["note"] = "max_tokens was lowered to the server's ceiling (llm.max_tokens)"
    if result is not None and result.stopped_by:
        meta["stopped_by"] = result.stopped_by
    return meta


def completion_object(cid: str, model: str, request: ChatRequest, injected: str | None, result: Generation) -> dict[str, Any]:
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "finish_reason": result.finish_reason, "logprobs": None}],
        "usage": usage(result),
        "timings": result.timings.as_dict(),
        "edgeteach": edgeteach_meta(request, injected, result),
    }


def chunk_object(cid: str, model: str, created: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
