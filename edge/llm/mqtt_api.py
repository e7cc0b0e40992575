"""The LLM over MQTT, on the daemon's own `MqttConnection` (reconnects, TLS, credentials, worker threads).

Request: JSON on `<prefix>/llm/request`: `messages` or `prompt`, optional `max_tokens`, `temperature`,
`seed`, `stream`, `sensor_context`, `id` (echoed), `reply_to`.
Replies go to the MQTT 5 response topic with the correlation data echoed; else to `reply_to` (MQTT
3.1.1 clients); else to `<prefix>/llm/response`. With `stream: true` the answer comes as `chunk`
messages, then always one `final` message (usage, timings, injected sensor context); refusals are
`error` messages. Inference runs on the LLM worker thread, never in an MQTT callback: the handler here
only validates and queues, and the worker publishes (paho's publish only enqueues).

Never answered, never run (a log line says why): retained requests (left on the broker, they would run
on every start), and requests whose response topic or `reply_to` has a wildcard, is empty or is not under
`mqtt.reply_prefix` (default `<prefix>/replies/`). An `id` must be a string or integer of at most 128
characters.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.config.mqtt import MAX_REQUEST_ID_CHARS, default_reply_prefix, reply_topic_problem
from edge.llm.core import LlmCore, NotReadyError
from edge.llm.requests import RequestError, parse_chat_request, parse_json, usage
from edge.llm.sensors import SensorContext
from edge.llm.worker import DoneEvent, ErrorEvent, Event, QueueFullError, TextEvent
from edge.mqtt.connection import IncomingMessage, MqttConnection

log = logging.getLogger(__name__)

Reply = Callable[..., None]  # reply(body, qos=1)


class LlmTopics:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix.rstrip("/")
        self.request = f"{self.prefix}/llm/request"
        self.response = f"{self.prefix}/llm/response"  # when a request names no reply topic
        self.status = f"{self.prefix}/llm/status"  # retained online/offline (also the Last Will)


class MqttLlmApi:
    def __init__(self, core: LlmCore, connection: MqttConnection, topics: LlmTopics, max_payload_bytes: int = 65536) -> None:
        self.core = core
        self.conn = connection
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes
        settings = getattr(connection, "settings", None)
        self.reply_prefix = default_reply_prefix(topics.prefix, getattr(settings, "reply_prefix", None))

    def attach(self, sensors: SensorContext | None) -> None:
        """Subscribes (before or after `connection.start()`; subscriptions survive reconnects)."""
        # no_retained: a request left retained on the broker is never run (MQTT 5 retain handling 2).
        self.conn.subscribe(self.topics.request, self._on_request, qos=1, worker="llm-requests", no_retained=True)
        if sensors is not None:
            self.conn.subscribe(sensors.topic_filter, lambda msg: sensors.on_state(msg.topic, msg.payload), qos=0, worker="llm-sensors")

    def _replier(self, msg: IncomingMessage, reply_to: str | None) -> Reply:
        def reply(body: dict[str, Any], qos: int = 1) -> None:
            payload = json.dumps(body)
            if msg.response_topic:
                self.conn.reply(msg, payload, qos=qos)
            else:
                self.conn.publish(reply_to or self.topics.response, payload, qos=qos)

        return reply

    def _on_request(self, msg: IncomingMessage) -> None:
        """Runs on the connection's `llm-requests` worker thread: validate, queue, return."""
        if msg.retain:  # an MQTT 3.1.1 broker ignores retain handling: drop it here
            log.warning("ignoring retained LLM request on %s: requests are never run from retained messages", msg.topic)
            return
        if msg.response_topic is not None and (problem := reply_topic_problem(msg.response_topic, self.reply_prefix)):
            self.core.metrics.count_request("mqtt", "bad_request")
            log.warning("ignoring LLM request: %s; it was neither run nor answered", problem)
            return
        reply = self._replier(msg, None)
        request_id: Any = None
        if len(msg.payload) > self.max_payload_bytes:
            self.core.metrics.count_request("mqtt", "bad_request")
            self._error(reply, None,
                        RequestError(f"payload of {len(msg.payload)} bytes is over mqtt.max_payload_bytes ({self.max_payload_bytes})",
                                     code="too_large"))
            return
        try:
            body = parse_json(msg.payload)  # deep nesting (RecursionError) is an error reply too
        except RequestError as exc:
            self.core.metrics.count_request("mqtt", "bad_request")
            self._error(reply, None, RequestError(f"{exc}; send e.g. {{\"prompt\": \"Hello\"}}", code="invalid_json"))
            return
        if isinstance(body, dict):
            reply_to = body.get("reply_to")
            if reply_to is not None and not msg.response_topic and (problem := reply_topic_problem(reply_to, self.reply_prefix)):
                self.core.metrics.count_request("mqtt", "bad_request")
                log.warning("ignoring LLM request: 'reply_to': %s; it was neither run nor answered", problem)
                return
            if reply_to is not None and not msg.response_topic:
                reply = self._replier(msg, reply_to)  # the MQTT 5 response topic wins when both are given
            request_id = body.get("id")
            if request_id is not None and (not isinstance(request_id, (str, int)) or isinstance(request_id, bool)
                                           or len(str(request_id)) > MAX_REQUEST_ID_CHARS):
                self.core.metrics.count_request("mqtt", "bad_request")
                self._error(reply, None, RequestError(f"'id' must be a string or integer of at most {MAX_REQUEST_ID_CHARS} characters",
                                                      param="id"))
                return
        try:
            request = parse_chat_request(body, self.core.settings)
        except RequestError as exc:
            self.core.metrics.count_request("mqtt", "bad_request")
            self._error(reply, request_id, exc)
            return
        sink = _StreamSink(reply, request_id, self.core.model_name, request.stream, self.core.settings.mqtt_stream_interval_s)
        try:
            self.core.admit(request, "mqtt", sink)
        except RequestError as exc:
            self._error(reply, request_id, exc)

    @staticmethod
    def _error(reply: Reply, request_id: Any, exc: RequestError) -> None:
        body: dict[str, Any] = {"type": "error", "id": request_id, "error": {"code": exc.code, "message": str(exc)}}
        if isinstance(exc, (QueueFullError, NotReadyError)):
            body["retry_after_s"] = exc.retry_after_s
        log.debug("MQTT LLM request %r refused: %s", request_id, exc)
        reply(body)


class _StreamSink:
    """Turns worker events into MQTT replies (called on the worker thread).

    Streamed text is batched: the first piece goes out at once (time to first token), then at most one
    chunk per `interval_s`, and what is pending goes out just before the final message. At 20-90 tokens
    a second, one message per token would flood a home automation system and cost the broker and every
    subscriber CPU that a busy Pi takes from generation. Chunks are QoS 0, like server-sent events: a lost
    one loses nothing, since the QoS 1 `final` message carries the whole answer (and the broker keeps the
    order of one sender's messages on a topic)."""

    def __init__(self, reply: Reply, request_id: Any, model: str, stream: bool, interval_s: float = 0.1) -> None:
        self.reply = reply
        self.request_id = request_id
        self.model = model
        self.stream = stream
        self.interval_s = interval_s
        self.index = 0
        self._pending: list[str] = []
        self._last_sent: float | None = None

    def _flush(self, now: float) -> None:
        if self._pending:
            self.reply({"type": "chunk", "id": self.request_id, "index": self.index, "delta": "".join(self._pending),
                        "tokens": len(self._pending)}, qos=0)
            self.index += 1
            self._pending = []
            self._last_sent = now

    def __call__(self, event: Event) -> None:
        if isinstance(event, TextEvent):
            if self.stream:
                self._pending.append(event.text)
                now = time.monotonic()
                if self._last_sent is None or now - self._last_sent >= self.interval_s:
                    self._flush(now)
        elif isinstance(event, DoneEvent):
            self._flush(time.monotonic())
            r = event.result
            self.reply({
                "type": "final", "id": self.request_id, "model": self.model, "content": r.text,
                "finish_reason": r.finish_reason, "stopped_by": r.stopped_by, "usage": usage(r),
                "timings": r.timings.as_dict(), "sensor_context": event.sensor_context,
            })
        elif isinstance(event, ErrorEvent):
            self._flush(time.monotonic())
            self.reply({"type": "error", "id": self.request_id, "error": {"code": event.code, "message": event.message}})
