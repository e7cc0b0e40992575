"""A small streaming client for our HTTP API (standard library only, so `edge llm chat` needs nothing
more on the Pi), and the same interface over a model loaded in this process."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from edge.llm.chat_format import Message


class ClientError(RuntimeError):
    pass


@dataclass
class Answer:
    text: str
    finish_reason: str | None = None
    timings: dict[str, Any] = field(default_factory=dict)
    usage: dict[str, Any] = field(default_factory=dict)
    sensor_context: str | None = None
    ttft_s: float | None = None  # measured by this client
    total_s: float = 0.0


OnText = Callable[[str], None]


class HttpChat:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 600.0) -> None:
        parts = urlsplit(base_url if "://" in base_url else f"http://{base_url}")
        if parts.scheme not in ("http", "https"):
            raise ClientError(f"{base_url}: only http:// and https:// URLs are supported")
        self.scheme = parts.scheme
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/").removesuffix("/v1")
        self.api_key = api_key
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def stream(self, messages: list[Message], on_text: OnText, **params: Any) -> Answer:
        body = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        body.update({k: v for k, v in params.items() if v is not None})
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        conn = self._connection()
        started = time.perf_counter()
        try:
            conn.request("POST", f"{self.base_path}/v1/chat/completions", body=json.dumps(body), headers=headers)
            response = conn.getresponse()
        except OSError as exc:
            raise ClientError(f"cannot reach the LLM server at {self.scheme}://{self.host}:{self.port} ({exc}); is "
                              "`edge llm serve` running?") from None
        if response.status != 200:
            raw = response.read()
            try:
                message = json.loads(raw)["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = raw.decode(errors="replace")[:300]
            raise ClientError(f"HTTP {response.status}: {message}")
        answer = Answer(text="")
        pieces: list[str] = []
        try:
            for line in response:
                if not line.startswith(b"data: "):
                    continue
                data = line[6:].strip()
                if data == b"[DONE]":
                    break
                event = json.loads(data)
                if "error" in event:
                    raise ClientError(f"the server stopped the answer: {event['error'].get('message')}")
                for choice in event.get("choices", []):
                    text = choice.get("delta", {}).get("content")
                    if text:
                        if answer.ttft_s is None:
                            answer.ttft_s = time.perf_counter() - started
                        pieces.append(text)
                        on_text(text)
                    if choice.get("finish_reason"):
                        answer.finish_reason = choice["finish_reason"]
                if "timings" in event:
                    answer.timings = event["timings"]
                if "edgeteach" in event:
                    answer.sensor_context = event["edgeteach"].get("sensor_context")
                if event.get("usage"):
                    answer.usage = event["usage"]
        finally:
            conn.close()
        answer.text = "".join(pieces)
        answer.total_s = time.perf_counter() - started
        return answer


class LocalChat:
    """The model loaded in this process (no server, no sensor context)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def stream(self, messages: list[Message], on_text: OnText, max_tokens: int | None = None,
               temperature: float | None = None, seed: int | None = None,
               should_stop: Callable[[], str | None] | None = None, **_: Any) -> Answer:
        """`should_stop` is asked after every token; a reason it returns ends the answer there."""
        from edge.llm.engine import SamplingParams

        settings = self.engine.settings
        started = time.perf_counter()
        first: list[float] = []

        def emit(text: str) -> None:
            if not first:
                first.append(time.perf_counter() - started)
            on_text(text)

        prepared = self.engine.prepare(messages)
        params = SamplingParams(max_tokens=min(max_tokens or settings.max_tokens, settings.max_tokens),
                                temperature=settings.temperature if temperature is None else temperature, seed=seed)
        result = self.engine.generate(prepared, params, emit, should_stop or (lambda: None))
        result.timings.ttft_ms = result.timings.prompt_ms
        return Answer(text=result.text, finish_reason=result.finish_reason, timings=result.timings.as_dict(),
                      usage={"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens},
                      ttft_s=first[0] if first else None, total_s=time.perf_counter() - started)
