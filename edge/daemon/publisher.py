"""Turns pipeline decisions into MQTT messages: retained state, change events, source status.

State policy per pipeline (config `publish:`): a state is published when the decided label changes and
at least every `heartbeat_s`, but never more often than `max_rate_hz`. A change that arrives inside the
rate limit is not lost: it stays pending and goes out as soon as the limit allows (`tick()` flushes it
even when no new decision comes, e.g. while paused). Events (label changes) are never rate-limited or
retained and use QoS 1 by default, so they survive a broker outage in the connection's queue.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.config import PublishSettings
from edge.mqtt.connection import MqttConnection
from edge.mqtt.topics import Topics
from edge.pipelines.base import Decision


def to_json(data: Any) -> bytes:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=str)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a request's "\udcff" escape: as an escape it is valid JSON
        return json.dumps(data, separators=(",", ":"), ensure_ascii=True, allow_nan=False, default=str).encode("ascii")


def decision_payload(decision: Decision) -> dict[str, Any]:
    payload = decision.to_payload()
    payload["confidence"] = round(float(decision.confidence), 4)
    payload["scores"] = {label: round(float(score), 4) for label, score in decision.scores.items()}
    payload["latency_ms"] = round(float(decision.latency_ms), 2)
    payload["ts"] = round(float(decision.ts), 3)
    return payload


@dataclass
class _PipelineState:
    policy: PublishSettings
    latest: Decision | None = None
    dirty: bool = False  # a change not yet published (held back by max_rate_hz)
    last_state_at: float = float("-inf")  # monotonic
    last_label: str | None = None
    states: int = 0
    events: int = 0
    events_dropped: int = 0
    publish_latency_ms: deque[float] = field(default_factory=lambda: deque(maxlen=512))


class DecisionPublisher:
    """Thread-safe: `on_decision` is called from pipeline threads, `tick` from the daemon's main loop."""

    def __init__(self, connection: MqttConnection, topics: Topics, clock: Callable[[], float] = time.monotonic) -> None:
        self._conn = connection
        self._topics = topics
        self._clock = clock
        self._lock = threading.Lock()
        self._pipelines: dict[str, _PipelineState] = {}
        self._source_status: dict[str, dict[str, Any]] = {}
        self.paused: set[str] = set()  # pipelines whose state payload carries "paused": true

    def configure(self, pipeline: str, policy: PublishSettings) -> None:
        with self._lock:
            entry = self._pipelines.get(pipeline)
            if entry is None:
                self._pipelines[pipeline] = _PipelineState(policy=policy)
            else:
                entry.policy = policy

    def remove(self, pipeline: str) -> None:
        """Forgets a pipeline and clears its retained topics, so dashboards do not show a ghost."""
        with self._lock:
            self._pipelines.pop(pipeline, None)
            self._source_status.pop(pipeline, None)
        self._conn.publish(self._topics.state(pipeline), b"", qos=1, retain=True)
        self._conn.publish(self._topics.source_status(pipeline), b"", qos=1, retain=True)

    # -- decisions ---------------------------------------------------------------------------------

    def on_decision(self, decision: Decision) -> None:
        with self._lock:
            entry = self._pipelines.get(decision.pipeline)
            if entry is None:
                entry = self._pipelines[decision.pipeline] = _PipelineState(policy=PublishSettings())
            previous = entry.last_label
            entry.latest = decision
            if decision.changed or previous is None:
                entry.dirty = True
            entry.last_label = decision.label
            policy = entry.policy
        if decision.changed:
            event = decision_payload(decision)
            event["previous"] = previous
            if self._conn.publish(self._topics.event(decision.pipeline), to_json(event), qos=policy.event_qos, retain=False):
                with self._lock:
                    entry.events += 1
            else:
                with self._lock:
                    entry.events_dropped += 1
        self._maybe_publish_state(decision.pipeline)

    def tick(self) -> None:
        """Heartbeats and changes held back by the rate limit; call it a few times a second."""
        with self._lock:
            names = list(self._pipelines)
        for name in names:
            self._maybe_publish_state(name)

    def _maybe_publish_state(self, pipeline: str) -> None:
        now = self._clock()
        with self._lock:
            entry = self._pipelines.get(pipeline)
            if entry is None or entry.latest is None:
                return
            since = now - entry.last_state_at
            due = entry.dirty or since >= entry.policy.heartbeat_s
            if not due or since < 1.0 / entry.policy.max_rate_hz:
                return
            decision = entry.latest
            entry.dirty = False
            entry.last_state_at = now
            policy = entry.policy
            paused = pipeline in self.paused
        payload = decision_payload(decision)
        if paused:
            payload["paused"] = True
        self._conn.publish(self._topics.state(pipeline), to_json(payload), qos=policy.state_qos, retain=policy.retain_state)
        latency = (time.time() - decision.ts) * 1000.0
        with self._lock:
            entry.states += 1
            entry.publish_latency_ms.append(latency)

    # -- source status -----------------------------------------------------------------------------

    def on_status(self, pipeline: str, state: str, detail: str) -> None:
        """A source's state (running, restarting, failed, ended, paused...), retained on `<pipeline>/status`."""
        with self._lock:
            payload = {"pipeline": pipeline, "state": state, "detail": detail, "paused": pipeline in self.paused, "ts": round(time.time(),
                                                                                                                              3)}
            self._source_status[pipeline] = payload
        self._conn.publish(self._topics.source_status(pipeline), to_json(payload), qos=1, retain=True, essential=True)

    def set_paused(self, pipeline: str, paused: bool) -> None:
        """Marks the state as paused (or not) and says so at once on `<pipeline>/status` and `state`."""
        with self._lock:
            (self.paused.add if paused else self.paused.discard)(pipeline)
            status = dict(self._source_status.get(pipeline) or {"pipeline": pipeline, "state": "unknown", "detail": ""})
            status["paused"] = paused
            status["ts"] = round(time.time(), 3)
            self._source_status[pipeline] = status
            entry = self._pipelines.get(pipeline)
            if entry is not None and entry.latest is not None:
                entry.dirty = True
        self._conn.publish(self._topics.source_status(pipeline), to_json(status), qos=1, retain=True, essential=True)
        self._maybe_publish_state(pipeline)

    def republish_retained(self) -> None:
        """After a reconnect: the broker may have restarted and lost retained messages, so the latest
        state and source status go out again."""
        with self._lock:
            statuses = list(self._source_status.values())
            for entry in self._pipelines.values():
                entry.dirty = entry.latest is not None
                entry.last_state_at = float("-inf")
        for payload in statuses:
            self._conn.publish(self._topics.source_status(payload["pipeline"]), to_json(payload), qos=1, retain=True, essential=True)
        self.tick()

    # -- numbers -----------------------------------------------------------------------------------

    def counters(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for name, entry in self._pipelines.items():
                latencies = sorted(entry.publish_latency_ms)
                out[name] = {
                    "states_published": entry.states,
                    "events_published": entry.events,
                    "events_dropped": entry.events_dropped,
                    "label": entry.last_label,
                    "capture_to_publish_p50_ms": _percentile(latencies, 50),
                    "capture_to_publish_p95_ms": _percentile(latencies, 95),
                }
            return out

    def source_status(self, pipeline: str) -> dict[str, Any] | None:
        with self._lock:
            return self._source_status.get(pipeline)


def _percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(pct / 100.0 * (len(sorted_values) - 1)))))
    return round(sorted_values[index], 2)
